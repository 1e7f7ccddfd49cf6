"""Start one training engine: options, lock, event log, engine.json, control socket, telemetry, loop.

`python -m engine.launch OPTIONS.yml [...]` is what `srcockpit train` runs detached (its own
session, output to cockpit/engine.log); `srcockpit --no-ui train` calls run_engine() in its own
process with a listener that prints every event. Either way one code path trains.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from engine.options import apply_override, load_options, read_yaml
from engine.protocol import FAILED, LOG, STARTING, STATUS, RunPaths, UserError

# torch caches downloaded weights here; basicsr looks in its own relative path first.
VGG19_FILE = "vgg19-dcbb9e9d.pth"
# A second Ctrl-C within this many seconds aborts instead of waiting for the graceful stop.
ABORT_WINDOW_S = 3.0
# Set by tui/launcher.py for a detached engine: where its output goes once it owns the run.
ENGINE_LOG_ENV = "SRCOCKPIT_ENGINE_LOG"


def experiment_paths(opt: dict[str, Any]) -> RunPaths:
    return RunPaths(Path(opt["path"]["experiments_root"]))


def acquire_lock(paths: RunPaths) -> int:
    """An exclusive flock on cockpit/engine.lock, held for the engine's life (the kernel drops it on
    any death, so a killed engine never leaves a stale lock)."""
    paths.cockpit.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(paths.cockpit.stat().st_mode) & 0o077:  # another user must not read or steer the run
        os.chmod(paths.cockpit, 0o700)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        info = paths.engine_info()
        raise UserError(f"run {paths.root.name} is already being trained (pid {info.get('pid', '?')} on "
                        f"{info.get('host', '?')})", "attach to it with `srcockpit attach "
                        f"{paths.root.name}` or stop it with `srcockpit stop {paths.root.name}`") from None
    return fd


def resumable(opt: dict[str, Any]) -> bool:
    """Whether this start continues the run in its folder rather than starting it anew."""
    states = Path(opt["path"]["training_states"])
    return bool(opt["path"].get("resume_state")) or (opt["auto_resume"] and any(states.glob("*.state")))


def archive_old_run(paths: RunPaths) -> Path | None:
    """A fresh start moves an earlier run of the same name aside, as basicsr does (name_archived_TIME)."""
    if not paths.root.is_dir() or not any(paths.root.iterdir()):
        return None
    os.close(acquire_lock(paths))  # refuses while an engine still trains it
    target = paths.root.with_name(f"{paths.root.name}_archived_{time.strftime('%Y%m%d_%H%M%S')}")
    paths.root.rename(target)
    return target


def vgg_weights_problem(opt: dict[str, Any], vgg_weights: Path | None) -> str | None:
    """Why the perceptual loss cannot be built offline, or None when it can."""
    if not opt["train"].get("perceptual_opt"):
        return None
    import basicsr.archs.vgg_arch as vgg_arch
    import torch

    if vgg_weights is not None:
        if not vgg_weights.is_file():
            return f"--vgg-weights {vgg_weights} does not exist"
        vgg_arch.VGG_PRETRAIN_PATH = str(vgg_weights)
        return None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    if Path(vgg_arch.VGG_PRETRAIN_PATH).is_file() or cached.is_file():
        return None
    return (f"the perceptual loss needs torchvision's VGG19 ImageNet weights ({VGG19_FILE}), which are not on "
            f"this machine (looked in {vgg_arch.VGG_PRETRAIN_PATH} and {cached})")


def write_engine_json(paths: RunPaths, opt: dict[str, Any], argv: Sequence[str]) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "name": opt["name"],
            "root": opt["root_path"],
            "socket": str(paths.socket()), "argv": list(argv), "options": str(paths.cockpit / "options.yml")}
    partial = paths.engine_json.with_suffix(".partial")
    partial.write_text(json.dumps(info, indent=2))
    partial.replace(paths.engine_json)


def keep_options(paths: RunPaths, options: Path, overrides: Sequence[str]) -> None:
    """The options as this run uses them (file + overrides), so `srcockpit resume` needs nothing else."""
    opt = read_yaml(options)
    for entry in overrides:
        apply_override(opt, entry)
    target = paths.cockpit / "options.yml"
    if target.resolve() != options.resolve():
        target.write_text(yaml.safe_dump(opt, sort_keys=False))


def redirect_output(log: str | None) -> None:
    """A detached engine writes its output to cockpit/engine.log once it owns the run."""
    if not log:
        return
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def install_signal_handlers(request_stop: Callable[[str], None]) -> None:
    """SIGTERM and the first SIGINT ask for a graceful stop; a second SIGINT soon after aborts."""
    last_interrupt = [0.0]

    def on_signal(signum: int, _frame: Any) -> None:
        now = time.monotonic()
        if signum == signal.SIGINT and now - last_interrupt[0] < ABORT_WINDOW_S:
            raise KeyboardInterrupt
        last_interrupt[0] = now
        request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # an SSH hang-up must not end a run


def run_engine(options: Path, *, root: Path, overrides: Sequence[str] = (), auto_resume: bool = False,
               debug: bool = False, vgg_weights: Path | None = None,
               listener: Callable[[dict[str, Any]], None] | None = None, argv: Sequence[str] = ()) -> str:
    """Train one run to its end, a stop, or a failure; returns the final status."""
    import torch

    from engine.control import ControlServer
    from engine.events import EventWriter
    from engine.loop import Commands, Trainer
    from engine.protocol import SYSTEM
    from engine.telemetry import TelemetryThread

    opt = load_options(options, root=root, overrides=overrides, debug=debug, auto_resume=auto_resume,
                       num_gpu=torch.cuda.device_count())
    paths = experiment_paths(opt)
    archived = None if resumable(opt) else archive_old_run(paths)
    lock_fd = acquire_lock(paths)
    events = EventWriter(paths.events, source="engine", listener=listener)
    redirect_output(os.environ.pop(ENGINE_LOG_ENV, None))
    if archived:
        events.emit(LOG, level="info", message=f"an earlier run of this name was moved to {archived}")
    commands = Commands(control=None)
    trainer = Trainer(opt, events, commands)
    install_signal_handlers(commands.request_stop)
    control = telemetry = None
    try:
        events.emit(STATUS, status=STARTING, pid=os.getpid(), host=socket.gethostname(), options=str(options))
        problem = vgg_weights_problem(opt, vgg_weights)
        if problem:
            raise UserError(problem, "download vgg19-dcbb9e9d.pth on a machine with internet (torchvision "
                            "model zoo) and pass --vgg-weights FILE, or remove train.perceptual_opt")
        keep_options(paths, options, overrides)
        write_engine_json(paths, opt, argv)
        control = ControlServer(paths.socket(), trainer.state)
        commands.control = control
        telemetry = TelemetryThread(lambda **fields: events.emit(SYSTEM, **fields)).start()
        events.emit(SYSTEM, **telemetry.sample())
        return trainer.run()
    except UserError as error:
        events.emit(STATUS, status=FAILED, iter=trainer.current_iter, error=error.message, hint=error.hint)
        raise
    except BaseException as error:
        events.emit(STATUS, status=FAILED, iter=trainer.current_iter, error=f"{error.__class__.__name__}: {error}",
                    traceback=traceback.format_exc())
        raise
    finally:
        if telemetry:
            telemetry.stop()
        if control:
            control.close()
        events.close()
        os.close(lock_fd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine.launch", description="Run one srcockpit engine.")
    parser.add_argument("options", type=Path)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--auto-resume", action="store_true")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--vgg-weights", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        status = run_engine(args.options, root=args.root, overrides=args.overrides, auto_resume=args.auto_resume,
                            debug=args.debug, vgg_weights=args.vgg_weights, argv=argv)
    except UserError as error:
        print(f"srcockpit engine: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srcockpit engine: aborted", file=sys.stderr)
        return 130
    return 0 if status in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
