"""Append events to events.jsonl: whole lines only, flushed; important ones fsynced.

A line is written in full or not at all: short writes are continued, and a write that fails part-way
(a full disk) is cut back to the line's start, so no torn line ever stands before a later one. The
engine keeps a small reserve file beside the log and gives it up when the disk is full, so that the
final status line, the one that says why the run ended, still lands.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.files import FULL_ERRNOS, disk_full
from engine.protocol import SCHEMA_VERSION, CheckpointEvent, Event, HeaderEvent, StatusEvent, encode_event

_DURABLE = (StatusEvent, CheckpointEvent, HeaderEvent)
RESERVE_NAME = ".events.reserve"
E = TypeVar("E", bound=Event)


class EventWriter:
    """Thread-safe appender; the main loop and the telemetry thread share one writer. With `reserve` bytes, a
    file of that size is kept beside the log and deleted the first time the disk is full."""

    def __init__(self, path: Path, source: str, listener: Callable[[Event], None] | None = None,
                 reserve: int = 0) -> None:
        self.listener = listener
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()
        self._torn = False  # a failed write could not be cut back: the next line starts on a fresh one
        self.path = path
        self._reserve = self._make_reserve(path.with_name(RESERVE_NAME), reserve) if reserve else None
        if fresh:
            self.emit(HeaderEvent(schema_version=SCHEMA_VERSION, source=source))
        else:
            self._seal_torn_line()

    @staticmethod
    def _make_reserve(path: Path, size: int) -> Path | None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except OSError:  # already too full for it (or a filesystem without allocation): no reserve
            path.unlink(missing_ok=True)
            return None
        return path

    def _seal_torn_line(self) -> None:
        # A killed writer may have left half a line; start ours on a fresh one so it stays readable.
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                self._torn = True

    def emit(self, event: E) -> E:
        """Append one event; a full disk raises engine.files.DiskFull (and leaves the log as it was)."""
        data = encode_event(event)
        with self._lock:
            try:
                self._append(data, isinstance(event, _DURABLE))
            except OSError as error:
                full = disk_full(error, self.path.parent)
                if full is None:
                    raise
                raise full from error
        if self.listener is not None:
            self.listener(event)
        return event

    def _append(self, data: bytes, durable: bool) -> None:
        try:
            self._write_line(data, durable)
        except OSError as error:
            if error.errno not in FULL_ERRNOS or self._reserve is None:
                raise
            self._reserve.unlink(missing_ok=True)
            self._reserve = None
            self._write_line(data, durable)  # once more, in the room the reserve held

    def _write_line(self, data: bytes, durable: bool) -> None:
        """Every byte of the line or none of it."""
        if self._torn:
            data = b"\n" + data
        start = os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
            if durable:
                os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._torn = True
            raise
        self._torn = False

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._reserve is not None:
                self._reserve.unlink(missing_ok=True)
                self._reserve = None
