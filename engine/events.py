"""Append events to events.jsonl: whole lines only, flushed; important ones fsynced.

A line is written in full or not at all: short writes are continued, and a write that fails part-way
(a full disk) is cut back to the line's start, so no torn line ever stands before a later one. The
engine keeps a small reserve file beside the log and gives it up when the disk is full, so that the
final status line, the one that says why the run ended, still lands.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.files import FULL_ERRNOS, disk_full
from engine.protocol import (
    SCHEMA_VERSION,
    CheckpointEvent,
    Event,
    HeaderEvent,
    IterEvent,
    StatusEvent,
    decode_series_header,
    encode_event,
    encode_series_header,
    series_path,
    series_paths,
    series_row,
)

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
        self.index = IterIndex(path, fresh)
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
                end = self._append(data, isinstance(event, _DURABLE))
            except OSError as error:
                full = disk_full(error, self.path.parent)
                if full is None:
                    raise
                raise full from error
            if isinstance(event, IterEvent):
                self.index.add(event, end - len(data), end)
        if self.listener is not None:
            self.listener(event)
        return event

    def _append(self, data: bytes, durable: bool) -> int:
        try:
            return self._write_line(data, durable)
        except OSError as error:
            if error.errno not in FULL_ERRNOS or self._reserve is None:
                raise
            self._reserve.unlink(missing_ok=True)
            self._reserve = None
            return self._write_line(data, durable)  # once more, in the room the reserve held

    def _write_line(self, data: bytes, durable: bool) -> int:
        """Every byte of the line or none of it; returns the log's offset just after the line."""
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
        return os.lseek(self._fd, 0, os.SEEK_CUR)  # where the kernel put it: O_APPEND, whoever else appends

    def close(self) -> None:
        with self._lock:
            self.index.close()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._reserve is not None:
                self._reserve.unlink(missing_ok=True)
                self._reserve = None


class IterIndex:
    """The log's iter index (engine.protocol's series format): a row appended after each iter line. It is a
    cache, so a write that fails (a full disk) switches it off for this writer and never fails the event;
    a reader finds the lines it lacks in the log."""

    def __init__(self, log: Path, fresh: bool) -> None:
        self.log = log
        self.off = False
        self._fd, self._size, self._number = -1, 0, -1
        self._losses: tuple[str, ...] | None = None
        paths = series_paths(log)
        if fresh:  # a new log: rows of an old one would point into it
            for path in paths:
                path.unlink(missing_ok=True)
        elif paths:
            self._continue(paths[-1])

    def _continue(self, path: Path) -> None:
        """A resumed writer appends to the last file, cut back to whole rows (a kill may tear the last)."""
        self._number = int(path.stem.rpartition("-")[2])
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except OSError:
            return  # the next iter line starts a file of its own
        try:
            found = decode_series_header(os.pread(fd, 1 << 16, 0))
            if found is None:
                os.close(fd)
                return
            header, start = found
            row = 8 * header.width
            self._size = start + max(0, os.fstat(fd).st_size - start) // row * row
            os.ftruncate(fd, self._size)
        except OSError:
            os.close(fd)
            self.off = True
            return
        self._fd, self._losses = fd, header.losses

    def add(self, event: IterEvent, start: int, end: int) -> None:
        if self.off:
            return
        losses = tuple(event.losses)
        try:
            if losses != self._losses:
                self._next_file(losses)
            self._write(series_row(event, start, end, losses))
        except OSError:
            self._switch_off()

    def _next_file(self, losses: tuple[str, ...]) -> None:
        self.close()
        self._number += 1
        self._fd = os.open(series_path(self.log, self._number), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                           0o600)
        os.fchmod(self._fd, 0o600)
        self._size, self._losses = 0, None
        self._write(encode_series_header(losses))
        self._losses = losses

    def _write(self, data: bytes) -> None:
        if os.write(self._fd, data) != len(data):  # a short write: the disk is full
            raise OSError(errno.ENOSPC, "short write")
        self._size += len(data)

    def _switch_off(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # no torn row for a resumed writer to build on
        self.close()
        self.off = True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
