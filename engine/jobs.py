"""Non-training engine jobs (subset, transfer, ranking, export) with their own event log.

A job folder gets the same cockpit/ layout as a training run, so the cockpit and the headless
console show every job the same way (design.md section 1).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from engine.events import EventWriter
from engine.files import private_dir, restrict_new_files
from engine.protocol import (
    FAILED,
    FINISHED,
    RUNNING,
    Event,
    ProgressEvent,
    ProgressFn,
    ResultEvent,
    ResultFn,
    RunPaths,
    StatusEvent,
    StepResult,
)


class Job:
    """Context manager: status running -> finished, or failed with the traceback."""

    def __init__(self, folder: Path, kind: str, listener: Callable[[Event], None] | None = None,
                 **params: Any) -> None:
        self.paths = RunPaths(folder)
        self.kind = kind
        self.params = params
        restrict_new_files()  # a job's folder and files are its user's alone, as a training run's are
        private_dir(self.paths.cockpit)
        self.events = EventWriter(self.paths.events, source=f"job:{kind}", listener=listener)
        self._last_progress = 0.0
        self._step = (0, 0)

    def __enter__(self) -> Job:
        self.paths.announce(job=self.kind, argv=sys.argv, root=str(Path.cwd()))
        self.events.emit(StatusEvent(status=RUNNING, job=self.kind, pid=os.getpid(), host=socket.gethostname(),
                                     params=self.params))
        return self

    def progress(self, done: int, total: int, message: str = "") -> None:
        """A ProgressFn; throttled to 10 events a second, the last step always written."""
        now = time.monotonic()
        if done < total and now - self._last_progress < 0.1:
            return
        self._last_progress = now
        step, steps = self._step
        self.events.emit(ProgressEvent(job=self.kind, done=done, total=total, message=message, step=step,
                                       steps=steps))

    def begin_step(self, number: int, steps: int, title: str) -> None:
        """Step `number` (from 1) of `steps` begins: its own progress() calls are counted within it."""
        self._step = (number, steps)
        self._last_progress = 0.0
        self.progress(0, 0, title)

    def result(self, **fields: Any) -> None:
        self.events.emit(ResultEvent(job=self.kind, figures=fields))

    def step(self, step: StepResult) -> None:
        """A ResultFn: one finished step as a result event, written at once."""
        self.result(**step.fields())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.events.emit(StatusEvent(status=FINISHED, job=self.kind))
        else:
            self.events.emit(StatusEvent(status=FAILED, job=self.kind, error=str(exc),
                                         traceback="".join(traceback.format_exception(exc_type, exc, tb))))
        self.events.close()


def record_fields(record: Any) -> dict[str, Any]:
    """A job's result record as its result event's figures: a dict, a msgspec Struct, or an object with
    to_dict() (engine.rank's RankResult); None is an empty record."""
    if record is None:
        return {}
    if isinstance(record, dict):
        return record
    if isinstance(record, msgspec.Struct):
        return msgspec.to_builtins(record)
    return record.to_dict()


def run_in_job(folder: Path, kind: str, params: dict[str, Any], work: Callable[[ProgressFn, ResultFn], Any],
               record: Callable[[Any], dict[str, Any]] = record_fields, progress: ProgressFn | None = None,
               result: ResultFn | None = None) -> Any:
    """work(progress, result) inside a Job on folder: its progress becomes the job's progress events, each
    step it hands to result a result event (both reach `progress` and `result` too), and record(what it
    returned) the last result event. Returns what work returned."""
    with Job(Path(folder), kind, **params) as job:

        def both(done: int, total: int, message: str) -> None:
            job.progress(done, total, message)
            if progress is not None:
                progress(done, total, message)

        def step(finished: StepResult) -> None:
            job.step(finished)
            if result is not None:
                result(finished)

        returned = work(both, step)
        job.result(**record(returned))
        return returned
