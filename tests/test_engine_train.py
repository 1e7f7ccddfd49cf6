"""The engine trains for real (basicsr + Real-ESRGAN on the CPU) and keeps its contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.protocol import RunPaths, read_events
from tests.conftest import TINY_OPTIONS, srcockpit, wait_for

TRAINING_EVENTS = {"header", "status", "run", "iter", "system", "val", "checkpoint"}
LOSSES = {"l_g_pix", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake"}


def events_of(root: Path, name: str = "tiny_cpu") -> list[dict]:
    return list(read_events(RunPaths(root / "experiments" / name).events))


def test_headless_training_writes_every_event_type(run_root: Path):
    result = srcockpit("--no-ui", "train", str(TINY_OPTIONS), cwd=run_root)
    events = events_of(run_root)
    assert {e["type"] for e in events} >= TRAINING_EVENTS
    iters = [e for e in events if e["type"] == "iter"]
    assert [e["iter"] for e in iters] == list(range(1, 9))
    assert set(iters[-1]["losses"]) >= LOSSES
    assert all(e["it_s"] > 0 and e["data_s"] >= 0 and e["compute_s"] > 0 for e in iters)
    vals = [e for e in events if e["type"] == "val"]
    assert [v["iter"] for v in vals] == [4, 8]
    assert 15 < vals[-1]["metrics"]["psnr"] < 60 and 0 < vals[-1]["metrics"]["ssim"] <= 1
    assert vals[-1]["settings"]["psnr"] == {"crop_border": 2, "test_y_channel": True}
    baselines = vals[-1]["baselines"]
    assert set(baselines) == {"nearest", "bicubic"}
    assert 15 < baselines["nearest"]["psnr"] < baselines["bicubic"]["psnr"] < 60
    system = next(e for e in events if e["type"] == "system")
    assert system["gpus"] == [] and system["rss"] > 0 and system["ram_total"] > 0
    assert [e["iter"] for e in events if e["type"] == "checkpoint"] == [4, 8]
    assert events[-1]["type"] == "status" and events[-1]["status"] == "finished"
    threads = [e["message"] for e in events if e["type"] == "log" and e["message"].startswith("torch uses")]
    assert len(threads) == 1 and "cores this process may use" in threads[0]  # set from the free cores, said so
    copied = run_root / "experiments/tiny_cpu" / TINY_OPTIONS.name  # basicsr's habit, kept
    assert copied.read_bytes() == TINY_OPTIONS.read_bytes() and copied.stat().st_mode & 0o777 == 0o600
    models = run_root / "experiments/tiny_cpu/models"
    assert {"net_g_4.pth", "net_g_8.pth", "net_g_latest.pth", "net_d_8.pth"} <= {p.name for p in models.iterdir()}
    # piped output: plain timestamped lines, no escape codes
    assert "\x1b[" not in result.stdout
    assert "status finished at iter 8" in result.stdout
    assert "val demo_val @ iter 8: psnr" in result.stdout


def test_detached_stop_then_resume_continues_at_next_iteration(run_root: Path):
    srcockpit("train", str(TINY_OPTIONS), "--set", "train.total_iter=100000", "--set", "val.val_freq=1000000",
              cwd=run_root)
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    wait_for(lambda: any(e["type"] == "iter" and e["iter"] >= 3 for e in read_events(paths.events)),
             what="three iterations")
    assert "live" in srcockpit("status", cwd=run_root).stdout
    srcockpit("stop", "tiny_cpu", cwd=run_root)
    events = list(read_events(paths.events))
    stopped = events[-1]
    assert stopped["status"] == "stopped" and stopped["resumable_from"] == stopped["iter"]
    k = stopped["iter"]
    saved = torch.load(paths.models / f"net_g_{k}.pth", weights_only=True)
    assert (paths.training_states / f"{k}.state").is_file()

    # Resume with total_iter = k: the engine loads the stopped state and, with nothing left to train,
    # writes net_g_latest from exactly what it loaded.
    srcockpit("resume", "tiny_cpu", "--no-ui", "--set", f"train.total_iter={k}", cwd=run_root)
    latest = torch.load(paths.models / "net_g_latest.pth", weights_only=True)
    for key in ("params", "params_ema"):
        assert saved[key].keys() == latest[key].keys()
        assert all(torch.equal(saved[key][name], latest[key][name]) for name in saved[key])

    srcockpit("resume", "tiny_cpu", "--no-ui", "--set", f"train.total_iter={k + 2}", cwd=run_root)
    events = list(read_events(paths.events))
    runs = [e for e in events if e["type"] == "run"]
    assert runs[-1]["start_iter"] == k
    after = [e["iter"] for e in events[events.index(runs[-1]):] if e["type"] == "iter"]
    assert after == [k + 1, k + 2]


def test_stop_of_a_run_without_engine_is_a_clear_error(run_root: Path):
    srcockpit("--no-ui", "train", str(TINY_OPTIONS), "--set", "train.total_iter=1", cwd=run_root)
    result = srcockpit("stop", "tiny_cpu", cwd=run_root, check=False)
    assert result.returncode == 2
    assert "no live engine" in result.stderr and "Traceback" not in result.stderr
    result = srcockpit("resume", "tiny_cpu", cwd=run_root, check=False)
    assert result.returncode == 2 and "has finished" in result.stderr


def test_two_engines_on_one_run_are_refused(run_root: Path):
    srcockpit("train", str(TINY_OPTIONS), "--set", "train.total_iter=100000", cwd=run_root)
    try:
        result = srcockpit("train", str(TINY_OPTIONS), "--auto-resume", cwd=run_root, check=False)
        assert result.returncode == 2
        assert "already being trained" in result.stderr
        result = srcockpit("--no-ui", "train", str(TINY_OPTIONS), cwd=run_root, check=False)
        assert result.returncode == 2 and "already being trained" in result.stderr
    finally:
        srcockpit("stop", "tiny_cpu", cwd=run_root)


@pytest.mark.parametrize("override, message", [
    ("train.total_iter=0", "total_iter: must be a positive number of iterations"),
    ("queue_size=5", "queue_size 5 is not a multiple of batch_size_per_gpu 2"),
    ("datasets.train.dataroot_gt=datasets/nowhere", "folder not found: datasets/nowhere"),
])
def test_bad_options_are_refused_before_launch(run_root: Path, override: str, message: str):
    result = srcockpit("train", str(TINY_OPTIONS), "--set", override, cwd=run_root, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (run_root / "experiments/tiny_cpu/cockpit/engine.json").exists()


def test_a_finished_in_process_run_closes_its_train_log(tiny_run: Path):
    """The demo trains, ranks and reports in one process: what basicsr logs after a run ends (a network built
    for ranking, another test's model) must not land in that run's train log."""
    from basicsr.utils import get_root_logger

    marker = "logged after the run ended"
    get_root_logger().info(marker)
    get_root_logger().warning(marker)
    logs = list((tiny_run / "experiments" / "tiny_cpu").glob("train_tiny_cpu_*.log"))
    assert logs
    assert not any(marker in path.read_text() for path in logs)


@pytest.mark.parametrize("ending", ["finished", "stopped"])
def test_the_final_status_is_the_event_logs_last_line(run_root: Path, monkeypatch: pytest.MonkeyPatch, ending: str):
    """Telemetry sampling every 1 ms: the thread is stopped and joined before the final status is written, so
    no system event lands after it (a sample in flight used to, 6 ms after a finish, under torchrun)."""
    import os
    import signal

    import engine.launch
    from engine.launch import run_engine
    from engine.protocol import IterEvent

    monkeypatch.setattr(engine.launch, "TELEMETRY_S", 0.001)
    overrides = ["train.total_iter=3", "val=~", "logger.save_checkpoint_freq=100"]

    def stop_at_two(event) -> None:  # as `srcockpit stop` or a scheduler's SIGTERM would
        if ending == "stopped" and isinstance(event, IterEvent) and event.iter == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    assert run_engine(TINY_OPTIONS, root=run_root, overrides=overrides, listener=stop_at_two) == ending
    events = list(read_events(RunPaths(run_root / "experiments" / "tiny_cpu").events))
    assert sum(e["type"] == "system" for e in events) >= 2  # the thread did sample during the run
    assert events[-1]["type"] == "status" and events[-1]["status"] == ending
