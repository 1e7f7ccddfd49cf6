"""Start engines detached from the terminal (design.md section 1): they outlive the cockpit and SSH.

The engine runs as `python -m engine.launch ...` in its own session, its output in
cockpit/engine.log. Until it has taken the run's lock and announced itself in engine.json, its
output goes to a temporary file here, so an error at start-up (bad options, a run already being
trained) reaches the user as a message instead of vanishing into a background process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from engine.options import load_options, read_yaml
from engine.protocol import FAILED, RunPaths, StatusEvent, UserError, load_events

START_TIMEOUT_S = 120.0


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


def spawn_detached(cmd: list[str], paths: RunPaths, *, root: Path, timeout: float = START_TIMEOUT_S) -> int:
    """Start cmd in a new session; wait until it announces itself in engine.json. Returns its pid."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w+b", prefix=".srcockpit-start-", suffix=".log", dir=root,
                                     delete=False) as early:
        early_log = Path(early.name)
        env = dict(os.environ, SRCOCKPIT_ENGINE_LOG=str(paths.engine_log), PYTHONUNBUFFERED="1")
        started = time.time()
        process = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, stdout=early, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if paths.engine_info().get("pid") == process.pid:
            early_log.unlink(missing_ok=True)
            return process.pid
        if process.poll() is not None:
            raise start_failure(paths, early_log, started, process.returncode)
        time.sleep(0.1)
    raise UserError(f"the engine did not start within {timeout:.0f} s (pid {process.pid} still running)",
                    f"see {early_log}")


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


def resume_run(paths: RunPaths, overrides: Sequence[str] = ()) -> None:
    """A new engine for a stopped (or crashed) run, from its newest valid training state."""
    options = paths.cockpit / "options.yml"
    if not options.is_file():
        raise UserError(f"{paths.root.name} has no cockpit/options.yml", "start it with `srcockpit train OPTIONS`")
    root = Path(paths.engine_info().get("root") or paths.root.parent.parent)
    spawn_detached(engine_command(options, overrides=overrides, root=root, auto_resume=True), paths, root=root)


def start_demo(root: Path | None = None) -> RunPaths:
    """The demo journey as a detached job in root (default: the current folder); see tui/commands/demo.py."""
    from tui.commands.demo import start_demo_detached

    return start_demo_detached(root or Path.cwd())
