"""Start engine jobs detached, find job folders, read their state (the cockpit's side of engine.job_runner).

design.md section 1: every long job (subset, transfer, ranking, export) is an engine job with its own
event log, so the cockpit shows each the same way and a job outlives the screen (and the cockpit) that
started it. A job folder is experiments/job-<kind>-<timestamp>/ (an export's is its output folder), so
the run list finds it like a run: cockpit/events.jsonl, cockpit/engine.json (pid), cockpit/engine.log.

The child is `python -m engine.job_runner --folder DIR --kind KIND --params JSON`: it runs the job
function of that kind (engine.job_runner.JOB_KINDS) and writes the job's events; this module only
starts it and reads what it wrote.

This module imports neither Textual nor torch, nor the job functions' modules.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.files import file_mode, run_umask
from engine.job_runner import FINAL_STATUSES, early_log, job_command
from engine.protocol import (
    FAILED,
    AnyEvent,
    ProgressEvent,
    ResultEvent,
    RunPaths,
    StatusEvent,
    load_events,
)

EXPERIMENTS = "experiments"
_STARTED: dict[tuple[str, str], Path] = {}  # (root, kind) -> the newest job this process started


def job_folder(root: Path, kind: str, name: str | None = None, when: float | None = None) -> Path:
    """A new, unused folder experiments/job-<kind>-<YYYYmmdd-HHMMSS>[-n] (or experiments/<name>)."""
    base = root / EXPERIMENTS
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when if when is not None else time.time()))
    stem = name or f"job-{kind}-{stamp}"
    folder, number = base / stem, 1
    while folder.exists() or early_log(folder).exists():
        number += 1
        folder = base / f"{stem}-{number}"
    return folder


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


def start_job(root: Path, kind: str, params: dict[str, Any], *, folder: Path | None = None) -> StartedJob:
    """Start the job function of this kind with params (JSON values) in its own session (leaving the screen
    or the cockpit leaves it running); returns at once. Relative paths in params are relative to root."""
    root = Path(root)
    folder = Path(folder) if folder is not None else job_folder(root, kind)
    folder.parent.mkdir(parents=True, exist_ok=True)
    early = early_log(folder)
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="160")
    env.pop("TEXTUAL", None)
    with os.fdopen(os.open(early, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode()), "wb") as log:
        process = subprocess.Popen(job_command(folder, kind, params), cwd=root,
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
    early = early_log(Path(folder))
    return early.exists() and time.time() - early.stat().st_mtime < 30  # starting: no engine.json yet


@dataclass
class JobState:
    """What a job's log says so far (status, last progress, results in order)."""

    status: str = ""
    kind: str = ""
    error: str = ""
    progress: ProgressEvent | None = None
    results: list[ResultEvent] = field(default_factory=list)
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
            self.results.append(event)


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
    for path in (RunPaths(folder).engine_log, early_log(folder)):
        try:
            text = path.read_bytes()[-16384:].decode("utf-8", "replace")
        except OSError:
            continue
        return [line.rstrip("\r") for line in text.splitlines() if line.strip()][-lines:]
    return []
