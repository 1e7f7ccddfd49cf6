"""The one engine job runner: `python -m engine.job_runner --folder DIR --kind KIND --params JSON`.

A job is a function of engine/ taking a progress callback (engine.protocol.ProgressFn) and keyword
parameters, returning its result record (engine.jobs.record_fields); JOB_KINDS names the function of each
kind. The runner runs it inside an engine.jobs.Job on DIR (status running -> finished/failed, throttled
progress events, the record as the last result event), so every job reports the same way (design.md
section 1). A kind may declare two more things: `reports` (the function also takes result=ResultFn, and
each finished step it hands over is a result event at once: the export's steps) and `prepare` (a function
of the same parameters run before the Job starts, so a bad request leaves no log in DIR: the export's
checks and its output folder).

The runner is started detached by the cockpit (tui.jobs.start_job) with its output in an early log
beside DIR; once the job's event log exists it writes engine.json (its pid: the run list shows the job
live) and moves its output to DIR/cockpit/engine.log. A failure before the job's Job started (an
unknown kind, bad parameters) still ends the log with a failed status, so no screen waits on a dead job.
This module imports no torch: the job function's module is imported when the job runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.files import file_mode
from engine.protocol import (
    FAILED,
    FINISHED,
    STOPPED,
    ProgressFn,
    ResultFn,
    RunPaths,
    StatusEvent,
    UserError,
    load_events,
)


@dataclass(frozen=True)
class JobKind:
    """One kind of job: its function and prepare step as "module:function", imported when the job runs."""

    target: str
    prepare: str = ""
    reports: bool = False

    def function(self) -> Callable[..., Any]:
        return _load(self.target)


JOB_KINDS = {
    "transfer": JobKind("engine.weights.run:transfer_weights"),
    "subset": JobKind("engine.job_kinds:subset"),
    "rank": JobKind("engine.job_kinds:rank"),
    "promote": JobKind("engine.job_kinds:promote"),
    "report": JobKind("engine.job_kinds:report"),
    "export": JobKind("engine.job_kinds:export", prepare="engine.job_kinds:prepare_export", reports=True),
}
FINAL_STATUSES = frozenset({FINISHED, FAILED, STOPPED})


def early_log(folder: Path) -> Path:
    """Where a job's output goes until its event log exists (beside its folder, not in it)."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.start.log"


def job_command(folder: Path, kind: str, params: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "engine.job_runner", "--folder", str(folder), "--kind", kind,
            "--params", json.dumps(params)]


def _load(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def job_kind(kind: str) -> JobKind:
    spec = JOB_KINDS.get(kind)
    if spec is None:
        raise UserError(f"no such job kind: {kind}", f"one of {', '.join(sorted(JOB_KINDS))}")
    return spec


def run_job(folder: Path, kind: str, params: dict[str, Any], progress: ProgressFn | None = None,
            result: ResultFn | None = None) -> Any:
    """Run one job on folder; progress and result (if given) hear its progress and its steps too.
    Returns what the job function returned (its record)."""
    from engine.jobs import run_in_job

    spec = job_kind(kind)
    function = spec.function()
    if spec.prepare:
        _load(spec.prepare)(**params)

    def work(both: ProgressFn, step: ResultFn) -> Any:
        return function(both, result=step, **params) if spec.reports else function(both, **params)

    return run_in_job(Path(folder), kind, params, work, progress=progress, result=result)


class _Adopter:
    """Once the job's event log exists: engine.json with our pid, output moved to cockpit/engine.log."""

    def __init__(self, folder: Path, kind: str) -> None:
        self.paths = RunPaths(folder)
        self.kind = kind
        self.started = time.time()
        self.done = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="job-adopter", daemon=True).start()

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
            self.paths.announce(started=self.started, job=self.kind, argv=sys.argv, root=str(Path.cwd()))
            self._move_output()

    def _move_output(self) -> None:
        early = early_log(self.paths.root)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
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


def ensure_final(paths: RunPaths, kind: str, error: str, hint: str = "", tb: str = "") -> None:
    """End the log with a failed status unless the job's own Job already wrote a final one."""
    try:
        events = load_events(paths.events).events
    except OSError:
        events = []
    if any(isinstance(e, StatusEvent) and e.status in FINAL_STATUSES for e in events):
        return
    from engine.events import EventWriter
    from engine.files import private_dir

    private_dir(paths.cockpit)
    writer = EventWriter(paths.events, source=f"job:{kind}")
    writer.emit(StatusEvent(status=FAILED, job=kind, error=error, hint=hint or None, traceback=tb or None))
    writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.job_runner", description="run one engine job")
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--params", default="{}", help="the job function's keyword parameters, as JSON")
    opts = parser.parse_args(argv)
    paths = RunPaths(opts.folder)
    adopter = _Adopter(opts.folder, opts.kind)
    try:
        params = json.loads(opts.params)
        if not isinstance(params, dict):
            raise UserError(f"--params {opts.params}: not a JSON object")
        run_job(opts.folder, opts.kind, params)
        return 0
    except (UserError, json.JSONDecodeError) as error:
        print(f"srcockpit job: error: {error}", file=sys.stderr)
        message, hint = (error.message, error.hint) if isinstance(error, UserError) else (str(error), "")
        ensure_final(paths, opts.kind, message, hint)
        return 2
    except BaseException as error:  # the log must say why the job ended
        traceback.print_exc()
        ensure_final(paths, opts.kind, f"{type(error).__name__}: {error}", tb=traceback.format_exc())
        return 1
    finally:
        adopter.adopt()


if __name__ == "__main__":
    sys.exit(main())
