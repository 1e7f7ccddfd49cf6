"""Resuming: a stopped and resumed run follows the run that never stopped (issue 9, on the CPU with num_worker
0); a run killed before its first checkpoint, a torn newest state and a start that fails (issue 17)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from engine.launch import run_engine
from engine.protocol import RunPaths, read_events
from tests.conftest import TINY_OPTIONS, srcockpit, wait_for, write_tiny_dataset
from tui.runs import pid_alive

# The resume tests below are about files and folders, not the model: the smallest nets train fastest.
SMALL_NETS = ("network_g.num_conv=4", "network_g.num_feat=16", "network_d.num_feat=8")


def losses_by_iter(root: Path) -> dict[int, dict[str, float]]:
    events = read_events(RunPaths(root / "experiments/tiny_cpu").events)
    return {e["iter"]: e["losses"] for e in events if e["type"] == "iter"}


def test_resume_mid_epoch_reproduces_the_uninterrupted_losses(tmp_path: Path, monkeypatch):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for root in (straight, resumed):
        write_tiny_dataset(root)
    monkeypatch.chdir(straight)
    # the same thread count for every run: the engine takes it from the cores free at its start, and another
    # thread count sums in another order (losses then differ in the last bit, ~1e-7)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    run_engine(TINY_OPTIONS, root=straight, overrides=["train.total_iter=8"])
    # a process that goes on after a run (the demo: report, export) gets its own signal handling back
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    monkeypatch.chdir(resumed)
    # 5 is mid-epoch (2 batches per epoch) and between validations (every 4): the hardest place to stop
    run_engine(TINY_OPTIONS, root=resumed, overrides=["train.total_iter=5"])
    assert run_engine(TINY_OPTIONS, root=resumed, overrides=["train.total_iter=8"], auto_resume=True) == "finished"

    a, b = losses_by_iter(straight), losses_by_iter(resumed)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    worst = max(abs(a[i][name] - b[i][name]) for i in a for name in a[i])
    assert worst == 0.0, f"resumed losses differ by up to {worst}"
    assert os.path.getsize(resumed / "experiments/tiny_cpu/models/net_g_8.pth") > 0


def test_resume_before_the_first_checkpoint_starts_again_in_place(run_root: Path):
    """Issue 17.3: a run SIGKILLed before its first save resumes from iteration 0 in its own folder (nothing
    archived, cockpit/options.yml kept, the event log appended to), and both the CLI and the log say so."""
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    sets = [arg for entry in ("train.total_iter=100000", "logger.save_checkpoint_freq=100000", "val=~", *SMALL_NETS)
            for arg in ("--set", entry)]
    srcockpit("train", str(TINY_OPTIONS), *sets, cwd=run_root)
    wait_for(lambda: any(e["type"] == "iter" for e in read_events(paths.events)), what="a first iteration")
    pid = paths.engine_info()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the killed engine to be gone")
    head = paths.events.read_bytes()

    result = srcockpit("resume", "tiny_cpu", cwd=run_root)
    assert "no checkpoint yet: starting tiny_cpu again from iteration 0" in result.stdout
    assert sorted(p.name for p in (run_root / "experiments").iterdir()) == ["tiny_cpu"]
    assert (paths.cockpit / "options.yml").is_file()
    assert paths.events.read_bytes().startswith(head)
    events = list(read_events(paths.events))
    restart = [e for e in events if e["type"] == "alert" and e.get("code") == "restart"]
    assert [e["message"] for e in restart] == ["no checkpoint yet: starting tiny_cpu again from iteration 0"]
    assert [e["start_iter"] for e in events if e["type"] == "run"] == [0, 0]

    srcockpit("stop", "tiny_cpu", cwd=run_root)  # saves: the next resume continues from that state
    stopped = list(read_events(paths.events))[-1]
    assert stopped["status"] == "stopped" and stopped["resumable_from"] > 0
    result = srcockpit("resume", "tiny_cpu", cwd=run_root)
    assert f"tiny_cpu: resumed from iteration {stopped['resumable_from']}" in result.stdout
    srcockpit("stop", "tiny_cpu", cwd=run_root)


def test_a_torn_newest_state_falls_back_to_the_previous_good_one(run_root: Path):
    """The newest training state torn, and the one before it with a torn discriminator: the resume takes the
    newest state whose every network file loads, and says what it skipped."""
    run_engine(TINY_OPTIONS, root=run_root, overrides=["train.total_iter=6", "logger.save_checkpoint_freq=2", "val=~",
                                                        *SMALL_NETS])
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    for torn in (paths.training_states / "6.state", paths.models / "net_d_4.pth"):
        torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    assert run_engine(TINY_OPTIONS, root=run_root, overrides=["train.total_iter=7", "val=~", *SMALL_NETS],
                      auto_resume=True) == "finished"
    events = list(read_events(paths.events))
    assert [e["start_iter"] for e in events if e["type"] == "run"] == [0, 2]
    skipped = [e["message"] for e in events if e["type"] == "alert" and e.get("code") == "resume_skip"]
    assert [m.split(":")[0] for m in skipped] == ["skipped training state 6.state", "skipped training state 4.state"]
    assert [e["iter"] for e in events if e["type"] == "iter"][-5:] == [3, 4, 5, 6, 7]


def test_a_detached_start_that_fails_in_the_engine_exits_non_zero_with_its_reason(run_root: Path):
    """The engine refuses a resume_state that does not load only after it has started: the detached `train`
    waits for that verdict, prints the engine's message and hint and exits 2; `status` says why it failed."""
    (run_root / "bad.state").write_text("not a training state")
    result = srcockpit("train", str(TINY_OPTIONS), "--set", "path.resume_state=bad.state", cwd=run_root, check=False)
    assert result.returncode == 2, result
    assert "started" not in result.stdout and "Traceback" not in result.stderr
    assert "cannot resume from bad.state" in result.stderr and "hint: " in result.stderr
    status = srcockpit("status", cwd=run_root).stdout
    assert "tiny_cpu failed: cannot resume from bad.state" in status
