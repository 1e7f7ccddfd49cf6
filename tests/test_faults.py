"""Fault tests (issues 9 and 17): the real engine is killed with SIGKILL at 100 random moments and resumed.

Each kill is a real `kill -9` of a real engine process (engine.launch.main in its own session, as
`srcockpit train` starts it). Starting Python + torch + basicsr costs ~4 s, so after the first start
through the real CLI, the engines are forked from a "zygote" process that has already imported the
engine and filled its caches (the same code path, imports paid once). The runs are tiny (gt_size 32,
a 4-conv generator, an 8-feature discriminator, no validation, a checkpoint every 2 iterations), one
torch thread each. Kill moments, drawn from a seeded RNG and timed on what the engine writes rather
than on the clock where that is possible: a random delay after the fork (start-up), right after the
`run` or the `running` status event, after the k-th iteration (k random), after the n-th checkpoint
event, and while the n-th checkpoint is being written (a fresh `.*.partial` temp file on disk). Every
run's first kill lands before its first checkpoint. After every kill the run is resumed as
`srcockpit resume NAME` resumes it (its cockpit/options.yml, --auto-resume), and we check:

- every net_*.pth and *.state on disk loads with torch.load(weights_only=True) (no torn checkpoint, so
  none is ever loaded), and a leftover `.*.partial` temp file is gone once the next engine runs;
- the event log reads (read_events); every line parses but possibly a torn last one, which the next
  engine seals (torn tails are also injected by hand, since a real single `write` is rarely caught);
- the next engine that gets as far as its `run` event starts from the newest training state on disk,
  which is never older than the last `checkpoint` event before the kill: at most one checkpoint
  interval is lost; a run killed before its first checkpoint starts again from 0 in its own folder;
- the stale control socket left by the killed engine answers "no live engine";
- each run then finishes from its newest state (the last one through the real CLI).

Measured (seed 9, 2 shared cores): see the figures this test prints with -s and fault-report.json.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.protocol import RunPaths, UserError, decode_line, read_events
from tests.conftest import TINY_OPTIONS, srcockpit
from tests.zygote import Zygote

KILLS = 100
RUNS = 5  # the kills are spread over this many runs, each started afresh
SEED = 9
CHECKPOINT_FREQ = 2
MODES = ("startup", "after_run", "after_status", "after_iter", "after_checkpoint", "during_save")
OVERRIDES = ["train.total_iter=100000", f"logger.save_checkpoint_freq={CHECKPOINT_FREQ}", "val=~",
             "logger.print_freq=1", "network_g.num_conv=4", "network_g.num_feat=16", "network_d.num_feat=8"]
TORN_TAIL = b'{"v":1,"t":1.0,"type":"iter","iter":99999,"los'

# The engines' zygote (tests/zygote.py) imports the engine and fills its caches once, then forks one engine
# per start, each in its own session with its output in cockpit/engine.log, as `python -m engine.launch ...`
# runs. One torch thread: the tensors are tiny, and a second thread only spins on two shared cores.
PRELUDE = """
import torch
import engine.launch, engine.loop, engine.control, engine.events, engine.telemetry, engine.dist, engine.options
torch.set_num_threads(1)
for registry in ("ARCH_REGISTRY", "MODEL_REGISTRY", "DATASET_REGISTRY", "LOSS_REGISTRY"):
    engine.options.registered(registry)  # the option checks read basicsr's sources once (functools.cache)
"""


class Engines:
    """Engines forked from the zygote."""

    def __init__(self) -> None:
        self.zygote = Zygote(PRELUDE)

    def start(self, argv: list[str], root: Path, paths: RunPaths) -> int:
        from engine.launch import ENGINE_LOG_ENV

        return self.zygote.start("engine.launch", argv, cwd=root, stdout=root / "engine-early.log", setsid=True,
                                 env={ENGINE_LOG_ENV: str(paths.engine_log)})

    def wait(self, pid: int) -> int:
        return self.zygote.wait(pid)

    def close(self) -> None:
        self.zygote.close()


@dataclass
class Ledger:
    """What the kills did, for the checks and the report."""

    kills: int = 0
    modes: dict[str, int] = field(default_factory=dict)
    before_first_checkpoint: int = 0
    partial_at_kill: int = 0
    resumes: int = 0
    resumes_from_options_yml: int = 0
    resumes_verified: int = 0
    restarts_from_zero: int = 0
    leftovers_removed: int = 0
    torn_injected: int = 0
    stale_sockets: int = 0
    files_loaded: int = 0
    torn_files_loaded: int = 0
    max_lost: int = 0
    runs_finished: int = 0
    verified: set = field(default_factory=set, repr=False)
    log: list = field(default_factory=list, repr=False)


class Tail:
    """Follows events.jsonl by offset (the way the cockpit does) to time kills on fresh lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [e for e in map(decode_line, complete.splitlines()) if e is not None]


def partial_files(paths: RunPaths) -> list[Path]:
    return [p for folder in (paths.models, paths.training_states) if folder.is_dir()
            for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")]


def partial_keys(paths: RunPaths) -> set:
    keys = set()
    for partial in partial_files(paths):
        try:
            keys.add((partial.name, partial.stat().st_mtime_ns))
        except FileNotFoundError:  # renamed meanwhile: the write just finished
            continue
    return keys


@dataclass
class Moment:
    """When to kill: a mode and its seeded parameters (a delay, or which iteration / checkpoint)."""

    mode: str
    delay: float = 0.0
    nth: int = 1

    @classmethod
    def draw(cls, mode: str, rng: random.Random) -> Moment:
        if mode == "startup":
            return cls(mode, delay=rng.uniform(0.0, 0.8))
        if mode == "after_status":
            return cls(mode, delay=rng.uniform(0.0, 0.5))
        return cls(mode, nth=rng.randint(1, 6) if mode == "after_iter" else rng.randint(1, 2))


def kill_when(moment: Moment, pid: int, paths: RunPaths, tail: Tail, deadline_s: float = 30.0) -> str:
    """SIGKILL pid at the moment asked for, timed on the engine's events where possible (a delay counts from
    the fork for start-up, from the `running` status otherwise); returns what actually triggered the kill."""
    start = time.monotonic()
    leftovers = partial_keys(paths)
    counts = {"run": 0, "iter": 0, "checkpoint": 0}
    running_at = None
    trigger = "timeout"
    while time.monotonic() - start < deadline_s:
        for event in tail.poll():
            counts[event["type"]] = counts.get(event["type"], 0) + 1
            if event["type"] == "status" and event.get("status") == "running" and running_at is None:
                running_at = time.monotonic()
        mode = moment.mode
        if mode == "startup" and time.monotonic() - start >= moment.delay:
            trigger = "startup"
        elif mode == "after_run" and counts["run"]:
            trigger = "run"
        elif mode == "after_status" and running_at is not None and time.monotonic() - running_at >= moment.delay:
            trigger = "status"
        elif mode == "after_iter" and counts["iter"] >= moment.nth:
            trigger = "iter"
        elif mode == "after_checkpoint" and counts["checkpoint"] >= moment.nth:
            trigger = "checkpoint"
        elif (mode == "during_save" and counts["checkpoint"] >= moment.nth - 1
              and partial_keys(paths) - leftovers):
            trigger = "partial"
        if trigger != "timeout":
            break
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    return trigger


def load_weights_only(file: Path) -> None:
    """torch.load with weights_only=True and no allow-list: the states this engine writes hold plain numbers."""
    import torch

    torch.load(file, map_location="cpu", weights_only=True)


def check_files_load(paths: RunPaths, ledger: Ledger) -> None:
    """Every checkpoint file a resume could pick loads; partial temp files are the only unfinished ones."""
    for folder, pattern in ((paths.models, "net_*.pth"), (paths.training_states, "*.state")):
        for file in folder.glob(pattern):
            key = (file.name, file.stat().st_mtime_ns, file.stat().st_size)
            if key in ledger.verified:
                continue
            try:
                load_weights_only(file)
            except Exception as error:
                ledger.torn_files_loaded += 1
                raise AssertionError(f"{file} does not load: {error}") from error
            ledger.verified.add(key)
            ledger.files_loaded += 1


def state_iters(paths: RunPaths) -> list[int]:
    return sorted(int(p.stem) for p in paths.training_states.glob("*.state") if p.stem.isdigit())


def prune(paths: RunPaths, keep: int = 2) -> None:
    """Keep the disk small: drop all but the newest checkpoints (the engine is dead meanwhile)."""
    for old in state_iters(paths)[:-keep]:
        for file in (paths.training_states / f"{old}.state", paths.models / f"net_g_{old}.pth",
                     paths.models / f"net_d_{old}.pth"):
            file.unlink(missing_ok=True)


def check_event_log(paths: RunPaths, torn_expected: int) -> list[dict]:
    """read_events works; every complete line but sealed torn tails parses; at most the last line is torn."""
    events = list(read_events(paths.events))
    raw = paths.events.read_bytes().split(b"\n")
    complete, last = raw[:-1], raw[-1]
    bad = [line for line in complete if decode_line(line) is None]
    assert len(bad) <= torn_expected, f"{len(bad)} unreadable lines, {torn_expected} torn tails made: {bad[:3]}"
    assert all(line.startswith(TORN_TAIL[:20]) for line in bad), bad[:3]
    assert last == b"" or decode_line(last) is None or last.startswith(TORN_TAIL[:20])
    return events


def run_events(events: list[dict]) -> list[tuple[int, dict]]:
    return [(i, e) for i, e in enumerate(events) if e["type"] == "run"]


@dataclass
class FaultRun:
    """One tiny run under fire: where it lives, how it is resumed, and what the last kill left."""

    root: Path
    name: str
    sets: list[str]
    torn: int = 0
    expected_start: int = 0
    events_seen: int = 0
    leftovers: set = field(default_factory=set)

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.root / "experiments" / self.name)

    def fresh_argv(self) -> list[str]:
        """`srcockpit train tiny_cpu.yml --set ...`"""
        return [str(TINY_OPTIONS), "--root", str(self.root), *self.set_args]

    @property
    def set_args(self) -> list[str]:
        return [arg for entry in self.sets for arg in ("--set", entry)]

    def resume_argv(self, *extra: str) -> list[str]:
        """What `srcockpit resume NAME` runs: the run's own cockpit/options.yml with --auto-resume; before the
        first engine wrote that file, `srcockpit train tiny_cpu.yml --auto-resume --set ...` instead."""
        kept = self.paths.cockpit / "options.yml"
        if kept.is_file():
            return [str(kept), "--root", str(self.root), "--auto-resume", *extra]
        return [*self.fresh_argv(), "--auto-resume", *extra]


def after_kill(run: FaultRun, ledger: Ledger, trigger: str) -> None:
    """What a kill left on disk: loadable checkpoints, a readable log, at most one interval of work lost."""
    paths = run.paths
    ledger.kills += 1
    ledger.modes[trigger] = ledger.modes.get(trigger, 0) + 1
    ledger.partial_at_kill += trigger == "partial"
    events = check_event_log(paths, run.torn) if paths.events.exists() else []
    last_checkpoint = max((e["iter"] for e in events if e["type"] == "checkpoint"), default=0)
    last_iter = max((e["iter"] for e in events if e["type"] == "iter"), default=0)
    if paths.models.is_dir():
        check_files_load(paths, ledger)
    states = state_iters(paths) if paths.training_states.is_dir() else []
    ledger.before_first_checkpoint += not states
    run.expected_start = states[-1] if states else 0
    assert run.expected_start >= last_checkpoint, (states, last_checkpoint)
    # a kill never costs more than one checkpoint interval of finished iterations
    lost = last_iter - run.expected_start
    assert lost <= CHECKPOINT_FREQ, (ledger.kills, last_iter, run.expected_start)
    ledger.max_lost = max(ledger.max_lost, lost)
    run.leftovers = partial_keys(paths)
    if paths.models.is_dir():
        prune(paths)
    if paths.socket().exists():
        ledger.stale_sockets += 1
        if ledger.kills % 8 == 1:  # a client sees a dead engine, not a hang or a traceback
            from tui.control_client import send_command

            with pytest.raises(UserError, match="no live engine"):
                send_command(paths, "ping", timeout=2)
    if ledger.kills % 6 == 0 and paths.events.exists():  # a torn tail as a crash mid-write would leave it
        with open(paths.events, "ab") as handle:
            handle.write(TORN_TAIL)
        run.torn += 1
        ledger.torn_injected += 1
        check_event_log(paths, run.torn)
    run.events_seen = len(events)


def check_resumed(run: FaultRun, ledger: Ledger) -> None:
    """The engines since the last kill that got as far as their `run` event started from the newest state;
    one that found none started again from 0 in place and said so; the killed engine's temp files are gone."""
    events = check_event_log(run.paths, run.torn)
    for index, event in run_events(events):
        if index < run.events_seen:
            continue
        assert event["start_iter"] == run.expected_start, (ledger.kills, event["start_iter"], run.expected_start)
        ledger.resumes_verified += 1
        assert not run.leftovers & partial_keys(run.paths), "a killed engine's .partial file outlived the resume"
        ledger.leftovers_removed += len(run.leftovers)
        run.leftovers = set()
        starts = [i for i, e in enumerate(events[:index]) if e["type"] == "status" and e["status"] == "starting"]
        if run.expected_start == 0 and len(starts) >= 2:  # not the run's very first engine: it says so
            assert any(e["type"] == "alert" and e.get("code") == "restart" for e in events[starts[-1]:index])
            ledger.restarts_from_zero += 1
    failed = [e for e in events[run.events_seen:] if e["type"] == "status" and e.get("status") == "failed"]
    assert not failed, failed
    assert sorted(p.name for p in (run.root / "experiments").iterdir() if "_archived_" in p.name) == []


def assert_killed(status: int, run: FaultRun, context: tuple) -> None:
    """The engine died of our SIGKILL, not of anything else (its output says what, if so)."""
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        early = run.root / "engine-early.log"
        output = early.read_text(errors="replace")[-3000:] if early.exists() else ""
        engine_log = run.paths.engine_log.read_text(errors="replace")[-3000:] if run.paths.engine_log.exists() else ""
        raise AssertionError(f"{context}: wait status {status}\n{output}\n{engine_log}")


def resume_and_kill(zygote: Engines, run: FaultRun, ledger: Ledger, moment: Moment) -> None:
    tail = Tail(run.paths.events)
    argv = run.resume_argv()
    ledger.resumes += 1
    ledger.resumes_from_options_yml += argv[0].endswith("cockpit/options.yml")
    started = time.monotonic()
    pid = zygote.start(argv, run.root, run.paths)
    trigger = kill_when(moment, pid, run.paths, tail)
    assert_killed(zygote.wait(pid), run, (ledger.kills, moment))
    ledger.log.append((ledger.kills + 1, moment.mode, trigger, round(time.monotonic() - started, 2)))
    check_resumed(run, ledger)
    after_kill(run, ledger, trigger)


def first_start(zygote: Engines | None, run: FaultRun, ledger: Ledger, rng: random.Random) -> None:
    """A fresh run: the first through the real detached CLI, killed after its first checkpoint; the others
    forked, killed before their first checkpoint (at start-up, at its run or running event, or at iter 1)."""
    tail = Tail(run.paths.events)
    if zygote is None:
        srcockpit("train", str(TINY_OPTIONS), *run.set_args, cwd=run.root)
        pid = run.paths.engine_info()["pid"]
        check_permissions(run.paths)
        trigger = kill_when(Moment("after_checkpoint"), pid, run.paths, tail, deadline_s=120)
        wait_gone(pid)
    else:
        moment = Moment.draw(rng.choice(("startup", "after_run", "after_status", "after_iter")), rng)
        moment.nth = 1
        pid = zygote.start(run.fresh_argv(), run.root, run.paths)
        trigger = kill_when(moment, pid, run.paths, tail)
        assert_killed(zygote.wait(pid), run, (run.name, moment))
    after_kill(run, ledger, trigger)


def finish(zygote: Engines, run: FaultRun, ledger: Ledger, *, through_cli: bool) -> None:
    """The run still finishes from its newest state (the last run through the real CLI)."""
    newest = run.expected_start
    ledger.resumes += 1
    if through_cli:
        srcockpit("resume", run.name, "--no-ui", "--set", f"train.total_iter={newest + 2}", cwd=run.root)
    else:
        pid = zygote.start(run.resume_argv("--set", f"train.total_iter={newest + 1}"), run.root, run.paths)
        assert zygote.wait(pid) == 0
    check_resumed(run, ledger)
    events = check_event_log(run.paths, run.torn)
    assert run_events(events)[-1][1]["start_iter"] == newest
    assert [e["status"] for e in events if e["type"] == "status"][-1] == "finished"
    check_files_load(run.paths, ledger)
    ledger.runs_finished += 1


def test_engine_survives_100_sigkills(run_root: Path):
    """100 real SIGKILLs (seeded) over 5 tiny runs, each followed by a resume: no torn file is ever on disk to be
    loaded, and no kill loses more than one checkpoint interval."""
    rng = random.Random(SEED)
    ledger = Ledger()
    runs = [FaultRun(run_root, "tiny_cpu" if r == 0 else f"tiny_cpu_{r}",
                     OVERRIDES + ([] if r == 0 else [f"name=tiny_cpu_{r}"])) for r in range(RUNS)]
    first_start(None, runs[0], ledger, rng)
    zygote = Engines()
    try:
        for number, run in enumerate(runs):
            if number:
                first_start(zygote, run, ledger, rng)
            for cycle in range(1, KILLS // RUNS):
                mode = MODES[cycle % len(MODES)] if cycle <= len(MODES) else rng.choice(MODES)
                resume_and_kill(zygote, run, ledger, Moment.draw(mode, rng))
            finish(zygote, run, ledger, through_cli=number == RUNS - 1)
    finally:
        zygote.close()
        print(f"\nfault test: {ledger}\n{ledger.log}")  # shown with -s; figures for the report
        report = {k: v for k, v in vars(ledger).items() if k != "verified"}
        (run_root / "fault-report.json").write_text(json.dumps(report))
    assert ledger.kills == KILLS and ledger.resumes == KILLS and ledger.torn_files_loaded == 0
    assert ledger.runs_finished == RUNS and ledger.before_first_checkpoint >= RUNS - 1
    assert ledger.resumes_verified >= KILLS // 2 and ledger.partial_at_kill >= 1
    assert ledger.max_lost <= CHECKPOINT_FREQ


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """A SIGKILLed engine started by the CLI is an orphan: wait until it is gone or a zombie, every thread of
    it (the main thread turns zombie first; the others, and the open sockets, go a moment later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
        if all(state in ("Z", "X") for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"engine {pid} still alive after SIGKILL")


def check_permissions(paths: RunPaths) -> None:
    """Nothing in cockpit/ is open to other users: the folder 0700, socket, log and events 0600."""
    assert stat.S_IMODE(paths.cockpit.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket().stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.events.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.engine_log.stat().st_mode) == 0o600


def test_control_socket_folder_is_made_private_and_a_stale_socket_replaced(tmp_path: Path):
    """A group/world-readable cockpit/ is closed to 0700; a dead engine's socket is replaced, a file is not."""
    import socket as socketlib

    from engine.control import ControlServer

    cockpit = tmp_path / "run" / "cockpit"
    cockpit.mkdir(parents=True, mode=0o755)
    os.chmod(cockpit, 0o755)
    stale = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    stale.bind(str(cockpit / "control.sock"))
    stale.close()  # what a SIGKILLed engine leaves: a socket file nobody listens on
    paths = RunPaths(tmp_path / "run")
    from tui.control_client import send_command

    with pytest.raises(UserError, match="no live engine"):
        send_command(paths, "ping", timeout=2)
    server = ControlServer(cockpit / "control.sock", lambda: {"status": "running", "iter": 3})
    try:
        assert stat.S_IMODE(cockpit.stat().st_mode) == 0o700
        assert stat.S_IMODE((cockpit / "control.sock").stat().st_mode) == 0o600
        assert send_command(paths, "ping")["ok"]
    finally:
        server.close()
    (cockpit / "control.sock").write_text("not a socket")
    with pytest.raises(UserError, match="is not a socket"):
        ControlServer(cockpit / "control.sock", lambda: {})
