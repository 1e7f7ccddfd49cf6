"""Start one training engine: options, lock, event log, engine.json, control socket, telemetry, loop.

`python -m engine.launch OPTIONS.yml [...]` is what `srcockpit train` runs detached (its own
session, output to cockpit/engine.log); `srcockpit --no-ui train` calls run_engine() in its own
process with a listener that prints every event. Either way one code path trains.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.files import private_dir, restrict_new_files
from engine.notify import Notifier, chained, notify_command
from engine.options import apply_override, load_options, read_yaml
from engine.protocol import (
    FAILED,
    FINISHED,
    STARTING,
    STOPPED,
    Event,
    LogEvent,
    RunPaths,
    Status,
    StatusEvent,
    SystemEvent,
    UserError,
)

# torch caches downloaded weights here; basicsr looks in its own relative path first.
VGG19_FILE = "vgg19-dcbb9e9d.pth"
# How long a start retries the run's lock before it says another engine trains the run.
LOCK_PROBE_S = 1.0
# A second Ctrl-C within this many seconds aborts instead of waiting for the graceful stop.
ABORT_WINDOW_S = 3.0
# Set by tui/launcher.py for a detached engine: where its output goes once it owns the run.
ENGINE_LOG_ENV = "SRCOCKPIT_ENGINE_LOG"
# Kept free beside the event log for the line that says why a run on a full disk ended.
EVENT_RESERVE_BYTES = 256 << 10
# Seconds between two system events (host, process tree and GPU readings).
TELEMETRY_S = 2.0


def experiment_paths(opt: dict[str, Any]) -> RunPaths:
    return RunPaths(Path(opt["path"]["experiments_root"]))


def _try_lock(fd: int) -> bool:
    """An exclusive flock, retried for LOCK_PROBE_S: a cockpit's liveness probe (engine.protocol.engine_holds_lock)
    holds a shared lock for an instant, which must not read as another engine."""
    deadline = time.monotonic() + LOCK_PROBE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def acquire_lock(paths: RunPaths) -> int:
    """An exclusive flock on cockpit/engine.lock, held for the engine's life (the kernel drops it on
    any death, so a killed engine never leaves a stale lock)."""
    private_dir(paths.root)  # another user must not read or steer the run
    private_dir(paths.cockpit)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    if not _try_lock(fd):
        os.close(fd)
        info = paths.engine_info()
        raise UserError(f"run {paths.root.name} is already being trained (pid {info.get('pid', '?')} on "
                        f"{info.get('host', '?')})", "attach to it with `srcockpit attach "
                        f"{paths.root.name}` or stop it with `srcockpit stop {paths.root.name}`") from None
    return fd


def resumable(opt: dict[str, Any]) -> bool:
    """Whether this start continues the run in its folder rather than starting it anew. An auto-resume
    always stays in the folder: without a usable state yet (killed before its first checkpoint) the run
    starts again from iteration 0 there, its cockpit/options.yml and event log kept (engine/loop.py)."""
    return bool(opt["path"].get("resume_state")) or bool(opt["auto_resume"])


def check_contained(paths: RunPaths) -> None:
    """A run folder is one plain folder inside an experiments/ folder; nothing else is ever archived or
    written (the options' name must not reach outside it)."""
    root = paths.root
    if root.parent.name != "experiments" or root.name in ("", ".", "..") or root.resolve().parent != \
            root.parent.resolve():
        raise UserError(f"refusing to train in {root}: a run folder must be experiments/NAME with NAME one plain "
                        "folder name", "set `name:` in the options to a name without '/' or '..'")


def archive_old_run(paths: RunPaths) -> Path | None:
    """A fresh start moves an earlier run of the same name aside, as basicsr does (name_archived_TIME)."""
    check_contained(paths)
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
        from engine.perceptual import with_weights_file

        opt["train"]["perceptual_opt"] = with_weights_file(opt["train"]["perceptual_opt"], vgg_weights)
        return None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    if Path(vgg_arch.VGG_PRETRAIN_PATH).is_file() or cached.is_file():
        return None
    return (f"the perceptual loss needs torchvision's VGG19 ImageNet weights ({VGG19_FILE}), which are not on "
            f"this machine (looked in {vgg_arch.VGG_PRETRAIN_PATH} and {cached})")


def write_engine_json(paths: RunPaths, opt: dict[str, Any], argv: Sequence[str],
                      extra: dict[str, Any] | None = None) -> None:
    paths.announce(name=opt["name"], root=opt["root_path"], socket=str(paths.socket()), argv=list(argv),
                   options=str(paths.cockpit / "options.yml"), **(extra or {}))


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


def install_signal_handlers(request_stop: Callable[[str], None]) -> dict[int, Any]:
    """SIGTERM and the first SIGINT ask for a graceful stop; a second SIGINT soon after aborts. Returns the
    handlers they replace, for restore_signal_handlers."""
    last_interrupt = [0.0]

    def on_signal(signum: int, _frame: Any) -> None:
        now = time.monotonic()
        if signum == signal.SIGINT and now - last_interrupt[0] < ABORT_WINDOW_S:
            raise KeyboardInterrupt
        last_interrupt[0] = now
        request_stop(signal.Signals(signum).name)

    # an SSH hang-up must not end a run
    handlers = ((signal.SIGTERM, on_signal), (signal.SIGINT, on_signal), (signal.SIGHUP, signal.SIG_IGN))
    return {signum: signal.signal(signum, handler) for signum, handler in handlers}


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """After a run in a process that goes on (the demo's stages, then its report and export): a signal must
    reach that process's own handling again, not a stop request that no training loop reads any more."""
    for signum, handler in previous.items():
        if handler is not None:  # None: a handler installed from C, which Python cannot put back
            signal.signal(signum, handler)


def claim_run(opt: dict[str, Any], paths: RunPaths, world: Any) -> tuple[Path | None, int]:
    """Rank 0 (or the only process) moves an earlier run aside and takes the lock; the other ranks hear
    how that went, so a refusal ends every rank with the same message. Returns (archived, lock fd or -1)."""
    archived, lock_fd, problem = None, -1, None
    if world is None or world.is_main:
        try:
            check_contained(paths)
            archived = None if resumable(opt) else archive_old_run(paths)
            lock_fd = acquire_lock(paths)
        except UserError as error:
            problem = error
    if world is not None:
        shared = world.share((problem.message, problem.hint) if problem else None)
        problem = problem or (UserError(*shared) if shared else None)
        if problem:
            world.close()
    if problem:
        raise problem
    return archived, lock_fd


def torchrun_info(world: Any, ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """engine.json under torchrun: pid is torchrun's (rank 0's parent: it lives as long as the run and
    `srcockpit train` waits for it), with every rank's pid and host and how to launch the run again."""
    return {"pid": os.getppid(), "engine_pid": os.getpid(), "world_size": world.world_size,
            "backend": world.backend, "ranks": ranks,
            "torchrun": {"nproc_per_node": world.local_world_size,
                         "nnodes": max(1, world.world_size // max(1, world.local_world_size))}}


def report_failure(events: Any, trainer: Any, **fields: Any) -> None:
    """The failed status line, resumable from the newest checkpoint; a disk too full even for this line must not
    hide the failure it reports."""
    from engine.files import DiskFull

    with contextlib.suppress(DiskFull):
        events.emit(StatusEvent(status=FAILED, iter=trainer.current_iter, resumable_from=trainer.resumable_from,
                                **fields))


def record_failure(error: BaseException, events: Any, trainer: Any, *, root: Path, world: Any,
                   name: str) -> BaseException:
    """The failed status line for error; returns what the engine raises: a full disk anywhere (a checkpoint,
    the event log, a validation image) becomes one DiskFull naming the disk, never a traceback."""
    from engine import dist
    from engine.files import disk_full

    problem = error if isinstance(error, UserError) else disk_full(error, root)
    if problem is not None:
        report_failure(events, trainer, error=problem.message, hint=problem.hint)
        return problem
    if world and dist.is_collective_failure(error):  # a rank died mid-iteration: no consistent state to save
        report_failure(events, trainer, error=dist.describe_loss(error, f" during iteration {trainer.current_iter}"),
                       hint=f"`srcockpit resume {name}` continues from the newest checkpoint",
                       traceback=traceback.format_exc())
    else:
        report_failure(events, trainer, error=f"{error.__class__.__name__}: {error}",
                       traceback=traceback.format_exc())
    return error


def telemetry_emitter(events: Any) -> Callable[..., None]:
    """system events from the telemetry thread; on a full disk they are dropped (the loop's disk guard and its
    own writes end the run with one message, a dying thread would print a traceback)."""
    from engine.files import DiskFull

    def emit(**fields: Any) -> None:
        with contextlib.suppress(DiskFull):
            events.emit(SystemEvent(**fields))

    return emit


@dataclass
class _Engine:
    """One engine's hold on its run: options, folder, lock, event log, and (under torchrun) its world."""

    opt: dict[str, Any]
    paths: RunPaths
    world: Any
    lock_fd: int
    events: Any
    control: Any = None
    telemetry: Any = None
    notifier: Any = None  # the --notify command's runner (engine/notify.py), rank 0 only

    @property
    def main(self) -> bool:
        """Rank 0 (or the only rank) owns the lock, the events, engine.json and the socket."""
        return self.world is None or self.world.is_main

    def stop_telemetry(self) -> None:
        """Stop the telemetry thread and wait for it: a sample it took before is written now or never."""
        if self.telemetry:
            self.telemetry.stop()
            self.telemetry = None

    def close(self) -> None:
        self.stop_telemetry()
        if self.control:
            self.control.close()
        if self.notifier:
            self.notifier.close()  # after the last events, so the finish reaches the user's command
        self.events.close()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
        if self.world:
            self.world.close()


def _claim(options: Path, *, root: Path, overrides: Sequence[str], auto_resume: bool, debug: bool,
           listener: Callable[[Event], None] | None) -> _Engine:
    """Check the options for this machine, join the torchrun world if any, lock the run, open its event log."""
    import torch

    from engine import dist
    from engine.events import EventWriter

    restrict_new_files()
    opt = load_options(options, root=root, overrides=overrides, debug=debug, auto_resume=auto_resume,
                       num_gpu=torch.cuda.device_count())
    paths = experiment_paths(opt)
    world = dist.start(opt, dist.torchrun_env()) if opt["dist"] else None  # launched by torchrun
    archived, lock_fd = claim_run(opt, paths, world)
    main = world is None or world.is_main
    notify = notify_command(opt) if main else None
    notifier = Notifier(notify) if notify else None
    events = (EventWriter(paths.events, source="engine", listener=chained(listener, notifier) if notifier else listener,
                          reserve=EVENT_RESERVE_BYTES) if main else dist.NullEvents())
    if notifier:
        notifier.emit = events.emit
    redirect_output(os.environ.pop(ENGINE_LOG_ENV, None))
    if archived:
        events.emit(LogEvent(level="info", message=f"an earlier run of this name was moved to {archived}"))
    return _Engine(opt, paths, world, lock_fd, events, notifier=notifier)


def _serve(engine: _Engine, trainer: Any, commands: Any, options: Path, overrides: Sequence[str],
           argv: Sequence[str]) -> None:
    """What clients find: the options copies, engine.json, the control socket and telemetry (rank 0)."""
    from engine.control import ControlServer
    from engine.loop import copy_options_file
    from engine.telemetry import TelemetryThread, own_gpu_readings

    world, paths = engine.world, engine.paths
    ranks = world.gather({"rank": world.rank, "pid": os.getpid(), "host": socket.gethostname()}) if world else []
    if engine.main:
        keep_options(paths, options, overrides)
        copy_options_file(options, paths.root)
        write_engine_json(paths, engine.opt, argv, torchrun_info(world, ranks) if world else None)
        engine.control = ControlServer(paths.socket(), trainer.state)
        commands.control = engine.control
        engine.telemetry = TelemetryThread(telemetry_emitter(engine.events), interval=TELEMETRY_S,
                                           gpus=world.gpu_readings if world else None).start()
        trainer.before_end = engine.stop_telemetry
        engine.events.emit(SystemEvent(**engine.telemetry.sample()))
    if world:
        world.watch_gpus(own_gpu_readings())


def run_engine(options: Path, *, root: Path, overrides: Sequence[str] = (), auto_resume: bool = False,
               debug: bool = False, vgg_weights: Path | None = None,
               listener: Callable[[Event], None] | None = None, argv: Sequence[str] = (),
               stage: str | None = None) -> Status:
    """Train one run to its end, a stop, or a failure; returns the final status."""
    from engine import dist
    from engine.loop import Commands, Trainer
    from engine.speed import set_torch_threads

    engine = _claim(options, root=root, overrides=overrides, auto_resume=auto_resume, debug=debug,
                    listener=listener)
    opt, events, world = engine.opt, engine.events, engine.world
    commands = Commands(control=None, world=world)
    trainer = Trainer(opt, events, commands, stage=stage)
    previous_handlers = install_signal_handlers(commands.request_stop)
    try:
        events.emit(StatusEvent(status=STARTING, pid=os.getpid(), host=socket.gethostname(), options=str(options)))
        problem = vgg_weights_problem(opt, vgg_weights)
        if problem:
            raise UserError(problem, "download vgg19-dcbb9e9d.pth on a machine with internet (torchvision "
                            "model zoo) and pass --vgg-weights FILE, or remove train.perceptual_opt")
        threads, why = set_torch_threads()
        events.emit(LogEvent(level="info", message=f"torch uses {threads} thread(s): {why}"))
        _serve(engine, trainer, commands, options, overrides, argv)
        status = trainer.run()
        dist.dump_networks(getattr(trainer, "model", None), opt["rank"], trainer.current_iter)  # tests only
        return status
    except BaseException as error:
        engine.stop_telemetry()
        raised = record_failure(error, events, trainer, root=engine.paths.root, world=world, name=opt["name"])
        if raised is error:
            raise
        raise raised from error
    finally:
        restore_signal_handlers(previous_handlers)
        engine.close()


def run_stages(options: Sequence[Path], *, root: Path, overrides: Sequence[str] = (), auto_resume: bool = False,
               **engine_args: Any) -> str:
    """Train the option files in turn, each stage from the best checkpoint of the one before (engine/stages.py)."""
    from engine.stages import run_chain

    def experiment_dir(path: Path, stage_overrides: Sequence[str]) -> Path:
        return experiment_paths(load_options(path, root=root, overrides=stage_overrides)).root

    def start(path: Path, *, overrides: Sequence[str], stage: str) -> str:
        return run_engine(path, root=root, overrides=overrides, stage=stage, auto_resume=auto_resume, **engine_args)

    return run_chain(options, overrides=overrides, keep_finished=auto_resume, start=start,
                     experiment_dir=experiment_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine.launch", description="Run one srcockpit engine.")
    parser.add_argument("options", type=Path, nargs="+", help="one options file, or several to train as stages")
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
        status = run_stages(args.options, root=args.root, overrides=args.overrides, auto_resume=args.auto_resume,
                            debug=args.debug, vgg_weights=args.vgg_weights, argv=argv)
    except UserError as error:
        print(f"srcockpit engine: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srcockpit engine: aborted", file=sys.stderr)
        return 130
    return 0 if status in (FINISHED, STOPPED) else 1


if __name__ == "__main__":
    sys.exit(main())
