"""Start engines detached from the terminal (design.md section 1): they outlive the cockpit and SSH.

The engine runs as `python -m engine.launch ...` in its own session, its output in
cockpit/engine.log. Until it has taken the run's lock and announced itself in engine.json, its
output goes to a temporary file here, so an error at start-up (bad options, a run already being
trained) reaches the user as a message instead of vanishing into a background process. After that
the launcher waits (bounded) for the engine's first decisive status: an engine that fails while it
builds its data or model (an unreadable image, a bad state) fails the start with its own message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from engine.files import file_mode, run_umask
from engine.options_yaml import read_yaml
from engine.protocol import (
    FAILED,
    STARTING,
    AnyEvent,
    EventFollower,
    RunPaths,
    Status,
    StatusEvent,
    UserError,
    load_events,
)

E = TypeVar("E")

START_TIMEOUT_S = 120.0
# How long a detached start waits, once the engine has announced itself, for it to run or fail.
DECIDE_TIMEOUT_S = 300.0


def engine_command(options: Path | Sequence[Path], *, overrides: Sequence[str] = (), root: Path,
                   auto_resume: bool = False, debug: bool = False, vgg_weights: Path | None = None) -> list[str]:
    stages = [options] if isinstance(options, Path) else list(options)
    cmd = [sys.executable, "-m", "engine.launch", *(str(p.resolve()) for p in stages), "--root", str(root.resolve())]
    for entry in overrides:
        cmd += ["--set", entry]
    if auto_resume:
        cmd.append("--auto-resume")
    if debug:
        cmd.append("--debug")
    if vgg_weights:
        cmd += ["--vgg-weights", str(vgg_weights.resolve())]
    return cmd


@dataclass
class Started:
    """A detached engine that has announced itself, and what it said up to its first decisive status."""

    pid: int
    events: list[AnyEvent] = field(default_factory=list)

    def last(self, kind: type[E]) -> E | None:
        return next((e for e in reversed(self.events) if isinstance(e, kind)), None)

    @property
    def status(self) -> Status | None:
        """The engine's status once it decided (running, paused, stopped, finished), None while starting."""
        event = self.last(StatusEvent)
        return event.status if event and event.status != STARTING else None


class NewEvents:
    """The events an engine started at `since` writes: followed by offset, and from the start of a new file
    once the old run has been moved aside (its log with it)."""

    def __init__(self, path: Path, since: float) -> None:
        self.path = path
        self.since = since
        self.inode = self._inode()
        self.follower = EventFollower(path, path.stat().st_size if self.inode else 0)

    def _inode(self) -> int | None:
        try:
            return self.path.stat().st_ino
        except FileNotFoundError:
            return None

    def poll(self) -> list[AnyEvent]:
        inode = self._inode()
        if inode != self.inode:
            self.inode, self.follower = inode, EventFollower(self.path, 0)
        return [e for e in self.follower.poll() if e.t >= self.since]


def spawn_detached(cmd: list[str], paths: RunPaths, *, root: Path, timeout: float = START_TIMEOUT_S,
                   decide_timeout: float = DECIDE_TIMEOUT_S) -> Started:
    """Start cmd in a new session; wait until it announces itself in engine.json, then (at most decide_timeout)
    until its first decisive status: a start that fails raises the engine's own message and hint."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w+b", prefix=".srcockpit-start-", suffix=".log", dir=root,
                                     delete=False) as early:
        early_log = Path(early.name)
        env = dict(os.environ, SRCOCKPIT_ENGINE_LOG=str(paths.engine_log), PYTHONUNBUFFERED="1")
        started = time.time()
        news = NewEvents(paths.events, started)
        process = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, stdout=early, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=env, umask=run_umask())
    deadline = time.monotonic() + timeout
    while paths.engine_info().get("pid") != process.pid:
        if process.poll() is not None:
            raise start_failure(paths, early_log, started, process.returncode)
        if time.monotonic() > deadline:
            raise UserError(f"the engine did not start within {timeout:.0f} s (pid {process.pid} still running)",
                            f"see {early_log}")
        time.sleep(0.1)
    early_log.unlink(missing_ok=True)
    return await_decision(Started(process.pid), process, news, paths, decide_timeout)


def await_decision(start: Started, process: subprocess.Popen, news: NewEvents, paths: RunPaths,
                   timeout: float) -> Started:
    """Follow the new engine's events until it runs (or pauses, stops, finishes) or fails; a failure becomes
    the engine's message and hint. Past the bound the engine is still starting: the caller says so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = process.poll() is not None
        start.events += news.poll()
        last = start.last(StatusEvent)
        if last and last.status == FAILED:
            raise UserError(last.error or "the engine failed", last.hint or f"the engine's output: {paths.engine_log}")
        if start.status is not None:
            return start
        if exited:
            raise UserError(f"the engine exited with status {process.returncode} before it ran",
                            f"see {paths.engine_log}")
        time.sleep(0.1)
    return start


def start_failure(paths: RunPaths, early_log: Path, started: float, returncode: int) -> UserError:
    """What stopped an engine at start-up: its failed status event, else the last line it printed."""
    failed = [e for e in load_events(paths.events).events
              if isinstance(e, StatusEvent) and e.status == FAILED and e.t >= started]
    if failed:
        early_log.unlink(missing_ok=True)
        return UserError(failed[-1].error or "the engine failed", failed[-1].hint or "")
    output = early_log.read_text(errors="replace").strip()
    marker = "srcockpit engine: error: "
    if marker in output:  # a UserError before the event log existed (e.g. the run is locked)
        early_log.unlink(missing_ok=True)
        message, _, hint = output.rsplit(marker, 1)[1].partition("\n  hint: ")
        return UserError(message.strip(), hint.strip())
    last = output.splitlines()[-1] if output else f"the engine exited with status {returncode}"
    return UserError(last, f"its output: {early_log}")


def start_run(options: Path | Sequence[Path], *, overrides: Sequence[str] = (), root: Path | None = None,
              auto_resume: bool = False, debug: bool = False, vgg_weights: Path | None = None) -> RunPaths:
    """Check the options here (fast, clear errors), then start their engine detached.
    Several option files train as stages (engine/stages.py); the first stage's run is returned."""
    from engine.options import load_options  # pydantic and the schema: only when a run starts

    root = (root or Path.cwd()).resolve()
    stages = [options] if isinstance(options, Path) else list(options)
    opt = load_options(stages[0], root=root, overrides=overrides, debug=debug, auto_resume=auto_resume)
    for later in stages[1:]:  # their pretrained weights come from the stage before: checked when it ends
        read_yaml(later)
    paths = RunPaths(Path(opt["path"]["experiments_root"]))
    cmd = engine_command(options, overrides=overrides, root=root, auto_resume=auto_resume, debug=debug,
                         vgg_weights=vgg_weights)
    spawn_detached(cmd, paths, root=root)
    return paths


def resume_target(paths: RunPaths, overrides: Sequence[str] = ()) -> tuple[Path, list[str]]:
    """The project root and overrides that make the engine train this very folder, wherever it now lies.

    engine.json's root and the options' name are where the run was made; a folder copied or moved since
    (or renamed) would train that old place. The engine trains ROOT/experiments/NAME, so both are read
    from the folder itself, and the options are checked here for a fast, clear error.
    """
    from engine.options import load_options  # pydantic and the schema: only when a run resumes

    options = paths.cockpit / "options.yml"
    if not options.is_file():
        raise UserError(f"{paths.root.name} has no cockpit/options.yml", "start it with `srcockpit train OPTIONS`")
    folder = paths.root.resolve()
    if folder.parent.name != "experiments":
        raise UserError(f"{folder} is not in an experiments/ folder, so no engine can train it there",
                        f"move it to PROJECT/experiments/{folder.name} and resume it from there")
    name = read_yaml(options).get("name")
    renamed = [] if name == folder.name else [f"name={folder.name}"]
    overrides = [*renamed, *overrides]
    root = folder.parent.parent
    opt = load_options(options, root=root, overrides=overrides, auto_resume=True)
    if Path(opt["path"]["experiments_root"]).resolve() != folder:
        raise UserError(f"these overrides would train {opt['path']['experiments_root']}, not {folder}",
                        "leave `name` alone when resuming")
    return root, overrides


def resume_run(paths: RunPaths, overrides: Sequence[str] = ()) -> Started:
    """A new engine for a stopped (or crashed) run, from its newest valid training state (or from iteration 0
    in its folder when it has none yet)."""
    root, overrides = resume_target(paths, overrides)
    return spawn_detached(engine_command(paths.cockpit / "options.yml", overrides=overrides, root=root,
                                         auto_resume=True), paths, root=root)


def start_demo(root: Path | None = None, *, fast: bool = False, vgg_weights: Path | None = None,
               timeout: float = START_TIMEOUT_S) -> RunPaths:
    """The demo journey (engine/demo.py) in its own session in root (default: the current folder): it outlives
    the cockpit. Returns its job folder once the demo has written its first event; a demo already running
    there, or one that exits first (its folder locked, a bad --root), is a UserError with what it said."""
    from tui.runs import engine_alive

    root = (root or Path.cwd()).resolve()
    job = RunPaths(root / "experiments" / "demo")
    if engine_alive(job):
        raise UserError(f"the demo is already running in {root}", "its steps and stages are in the run list")
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tui.cli", "--no-ui", "demo", "--root", str(root)]
    if fast:
        cmd.append("--fast")
    if vgg_weights:
        cmd += ["--vgg-weights", str(vgg_weights.resolve())]
    log_path = root / "demo.log"
    news = NewEvents(job.events, time.time())
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, file_mode()), "ab") as log:
        start = log.tell()
        process = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + timeout
    while not news.poll():
        if process.poll() is not None:
            said = log_path.read_bytes()[start:].decode("utf-8", "replace").strip().splitlines()
            reason = next((line for line in reversed(said) if "error:" in line), said[-1] if said else "")
            raise UserError(f"the demo exited at once (status {process.returncode}): {reason}", f"see {log_path}")
        if time.monotonic() > deadline:
            raise UserError(f"the demo wrote nothing within {timeout:.0f} s (pid {process.pid})", f"see {log_path}")
        time.sleep(0.1)
    return job
