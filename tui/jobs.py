"""Start a `srcockpit ...` command as a detached engine job, find job folders, read their state.

design.md section 1: every long job (subset, transfer, ranking, export) is an engine job with its own
event log, so the cockpit shows each the same way and a job outlives the screen (and the cockpit) that
started it. A job folder is experiments/job-<kind>-<timestamp>/ (an export's is its output folder), so
the run list finds it like a run: cockpit/events.jsonl, cockpit/engine.json (pid), cockpit/engine.log.

The child is `python -m tui.jobs --folder DIR --kind KIND [--wrap] [--report FILE] -- CLI ARGS`:
- it runs the command line of tui.cli in-process; a command that writes its own job events (--job DIR,
  or export's OUTDIR) is left to do so; with --wrap the command runs inside an engine.jobs.Job, its
  progress bars also become progress events and the JSON --report file becomes the result event;
- once the event log exists it writes engine.json (its pid: the run list shows the job live) and moves
  its output from the early log (experiments/.<job>.start.log) to cockpit/engine.log;
- a failure before the command's own Job started (bad arguments, a UserError while checking) still
  ends the log with a failed status and the message, so the screen never waits on a dead job.

This module imports neither Textual nor torch: the child loads only what its command needs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.files import file_mode, run_umask
from engine.protocol import (
    FAILED,
    FINISHED,
    STOPPED,
    AnyEvent,
    ProgressEvent,
    ResultEvent,
    RunPaths,
    StatusEvent,
    load_events,
)

EXPERIMENTS = "experiments"
FINAL_STATUSES = frozenset({FINISHED, FAILED, STOPPED})
_STARTED: dict[tuple[str, str], Path] = {}  # (root, kind) -> the newest job this process started


# ---------------------------------------------------------------------------------------------- parent

def job_folder(root: Path, kind: str, name: str | None = None, when: float | None = None) -> Path:
    """A new, unused folder experiments/job-<kind>-<YYYYmmdd-HHMMSS>[-n] (or experiments/<name>)."""
    base = root / EXPERIMENTS
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when if when is not None else time.time()))
    stem = name or f"job-{kind}-{stamp}"
    folder, number = base / stem, 1
    while folder.exists() or _early_log(folder).exists():
        number += 1
        folder = base / f"{stem}-{number}"
    return folder


def _early_log(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.start.log"


def job_command(folder: Path, kind: str, argv: Sequence[str], *, wrap: bool = False,
                report: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "tui.jobs", "--folder", str(folder), "--kind", kind]
    if wrap:
        cmd.append("--wrap")
    if report is not None:
        cmd += ["--report", str(report)]
    return [*cmd, "--", *map(str, argv)]


@dataclass
class StartedJob:
    folder: Path
    kind: str
    pid: int
    process: subprocess.Popen | None = None

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.folder)

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return job_alive(self.folder)


def start_job(root: Path, kind: str, argv: Sequence[str], *, folder: Path | None = None, wrap: bool = False,
              report: Path | None = None) -> StartedJob:
    """Start `srcockpit ARGV` as a job in its own session (leaving the screen or the cockpit leaves it
    running); returns at once. Relative paths in argv are relative to root (the child's folder)."""
    root = Path(root)
    folder = Path(folder) if folder is not None else job_folder(root, kind)
    folder.parent.mkdir(parents=True, exist_ok=True)
    early = _early_log(folder)
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="160")
    env.pop("TEXTUAL", None)
    with os.fdopen(os.open(early, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode()), "wb") as log:
        process = subprocess.Popen(job_command(folder, kind, argv, wrap=wrap, report=report), cwd=root,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=env, umask=run_umask())
    _STARTED[(str(root.resolve()), kind)] = folder
    return StartedJob(folder, kind, process.pid, process)


def started_here(root: Path, kind: str) -> Path | None:
    """The newest job of this kind started by this process on root (a screen reopened finds it)."""
    return _STARTED.get((str(Path(root).resolve()), kind))


def find_jobs(root: Path, kind: str) -> list[Path]:
    """Job folders of this kind under root/experiments, newest first (by the time in their name)."""
    base = Path(root) / EXPERIMENTS
    pattern = re.compile(rf"^job-{re.escape(kind)}-(\d{{8}}-\d{{6}})(?:-(\d+))?$")
    found = []
    with contextlib.suppress(OSError):
        for folder in base.iterdir():
            match = pattern.match(folder.name)
            if match and folder.is_dir():
                found.append((match[1], int(match[2] or 1), folder))
    return [folder for *_, folder in sorted(found, reverse=True)]


def running_job(root: Path, kind: str) -> Path | None:
    """The newest job of this kind that is still at work, if any (read from the folders)."""
    for folder in find_jobs(root, kind)[:20]:
        if job_alive(folder):
            return folder
    return None


def job_alive(folder: Path) -> bool:
    """Is a job process at work on this folder? Its log not final and its pid alive (or just started)."""
    from tui.runs import pid_alive

    paths = RunPaths(Path(folder))
    state = read_job(folder)
    if state.final:
        return False
    info = paths.engine_info()
    if info.get("pid") is not None:
        host = info.get("host")
        return bool(host and host != socket.gethostname()) or pid_alive(info.get("pid"))
    early = _early_log(Path(folder))
    return early.exists() and time.time() - early.stat().st_mtime < 30  # starting: no engine.json yet


@dataclass
class JobState:
    """What a job's log says so far (status, last progress, results in order)."""

    status: str = ""
    kind: str = ""
    error: str = ""
    progress: ProgressEvent | None = None
    results: list[dict[str, Any]] = field(default_factory=list)  # each result's figures (ResultEvent.as_dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def apply(self, event: AnyEvent) -> None:
        if isinstance(event, StatusEvent):
            self.status = event.status
            self.kind = event.job or self.kind
            if event.params:
                self.params = dict(event.params)
            if self.status == FAILED:
                self.error = event.error or "failed"
        elif isinstance(event, ProgressEvent):
            self.progress = event
        elif isinstance(event, ResultEvent):
            self.results.append(event.as_dict())


def read_job(folder: Path) -> JobState:
    state = JobState()
    try:
        events = load_events(RunPaths(Path(folder)).events).events
    except OSError:  # unreadable: nothing known about the job
        return state
    for event in events:
        state.apply(event)
    return state


def log_tail(folder: Path, lines: int = 12) -> list[str]:
    """The last lines the job printed (cockpit/engine.log, or the early log while it starts)."""
    folder = Path(folder)
    for path in (RunPaths(folder).engine_log, _early_log(folder)):
        try:
            text = path.read_bytes()[-16384:].decode("utf-8", "replace")
        except OSError:
            continue
        return [line.rstrip("\r") for line in text.splitlines() if line.strip()][-lines:]
    return []


# ---------------------------------------------------------------------------------------------- child

class _Adopter:
    """Once the job's event log exists: engine.json with our pid, output moved to cockpit/engine.log."""

    def __init__(self, folder: Path, kind: str, argv: Sequence[str]) -> None:
        self.paths = RunPaths(folder)
        self.kind, self.argv = kind, list(argv)
        self.started = time.time()
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="job-adopter", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self.done.is_set():
            if self.paths.events.exists():
                self.adopt()
                return
            self.done.wait(0.05)

    def adopt(self) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.done.set()
            self.paths.announce(started=self.started, job=self.kind, argv=["srcockpit", *self.argv],
                                root=str(Path.cwd()))
            early = _early_log(self.paths.root)
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            try:
                fd = os.open(self.paths.engine_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, file_mode())
            except OSError:
                return
            with contextlib.suppress(OSError):
                os.write(fd, early.read_bytes())
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            with contextlib.suppress(OSError):
                early.unlink()


def _ensure_final(paths: RunPaths, kind: str, error: str, hint: str = "", tb: str = "") -> None:
    """End the log with a failed status unless the command's own Job already wrote a final one."""
    state = read_job(paths.root)
    if state.final:
        return
    from engine.events import EventWriter

    writer = EventWriter(paths.events, source=f"job:{kind}")
    writer.emit(StatusEvent(status=FAILED, job=kind, error=error, hint=hint or None, traceback=tb or None))
    writer.close()


@contextlib.contextmanager
def _job_progress_bars(job: Any) -> Any:
    """The progress bars of tui.commands.weights also become the job's progress events."""
    try:
        from tui.commands import weights
    except ImportError:
        yield
        return
    original = getattr(weights, "_progress", None)
    if original is None:
        yield
        return

    @contextlib.contextmanager
    def both(console: Any, label: str) -> Any:
        with original(console, label) as update:

            def forward(done: int, total: int, message: str) -> None:
                update(done, total, message)
                job.progress(done, total, f"{label}: {message}" if message else label)

            yield forward

    weights._progress = both
    try:
        yield
    finally:
        weights._progress = original


def _last_output_line(folder: Path) -> str:
    lines = log_tail(folder, 3)
    return lines[-1] if lines else ""


def child_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.jobs", description="run a srcockpit command as a job")
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--wrap", action="store_true", help="run the command inside an engine Job")
    parser.add_argument("--report", type=Path, help="JSON file the command writes; becomes the result event")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    paths = RunPaths(opts.folder)
    adopter = _Adopter(opts.folder, opts.kind, command)
    from engine.protocol import UserError

    code = 0
    try:
        if opts.kind == "promote" and command[:1] == ["promote"]:
            _promote(opts.folder, command[1:])
        else:
            from tui.cli import build_parser

            args = build_parser().parse_args(command)
            if not getattr(args, "handler", None):
                raise UserError(f"not a command: srcockpit {' '.join(command)}")
            if opts.wrap:
                from engine.jobs import Job

                with Job(opts.folder, opts.kind, argv=["srcockpit", *command]) as job, _job_progress_bars(job):
                    code = int(args.handler(args) or 0)
                    if code:
                        raise RuntimeError(f"srcockpit {' '.join(command)} exited with status {code}")
                    if opts.report is not None and opts.report.is_file():
                        job.result(**json.loads(opts.report.read_text()))
            else:
                code = int(args.handler(args) or 0)
                if code:
                    _ensure_final(paths, opts.kind, f"exited with status {code}: {_last_output_line(opts.folder)}")
    except UserError as error:
        print(f"srcockpit: error: {error}", file=sys.stderr)
        _ensure_final(paths, opts.kind, error.message, error.hint)
        code = 2
    except SystemExit as exit_:  # argparse refused the command line (its message is in the log)
        code = exit_.code if isinstance(exit_.code, int) else 2
        if code:
            sys.stderr.flush()
            _ensure_final(paths, opts.kind, f"the command line was refused: {_last_output_line(opts.folder)}")
    except BaseException as error:  # the log must say why the job ended
        traceback.print_exc()
        _ensure_final(paths, opts.kind, f"{type(error).__name__}: {error}", tb=traceback.format_exc())
        code = 1
    finally:
        adopter.adopt()
    return code


def _promote(folder: Path, argv: Sequence[str]) -> None:
    """Promote one ranked candidate (not only the best): rank again from the cache, then promote it."""
    parser = argparse.ArgumentParser(prog="promote")
    parser.add_argument("run", type=Path)
    parser.add_argument("--file", required=True)
    parser.add_argument("--entry", required=True)
    parser.add_argument("--to", type=Path, default=None)
    parser.add_argument("--original", default="auto")
    args = parser.parse_args(list(argv))
    from engine.jobs import Job
    from engine.protocol import UserError
    from engine.rank import DEFAULT_TARGET, promote, rank_run, sidecar_path

    with Job(folder, "promote", run=str(args.run), file=args.file, entry=args.entry) as job:
        original = None if args.original == "none" else args.original
        result = rank_run(args.run, original=original, progress=job.progress)
        chosen = next((c for c in result.candidates
                       if str(c.file) == args.file and c.entry == args.entry), None)
        if chosen is None:
            raise UserError(f"{args.file} [{args.entry}] is not a checkpoint of {args.run}", "rank the run again")
        target = promote(result, args.to or DEFAULT_TARGET, chosen)
        job.result(weights=str(target), sidecar=str(sidecar_path(target)), label=chosen.label, iter=chosen.iter,
                   rank=chosen.rank, psnr=chosen.psnr, ssim=chosen.ssim)


if __name__ == "__main__":
    sys.exit(child_main())
