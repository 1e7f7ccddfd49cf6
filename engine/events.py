"""Append events to events.jsonl: one write per line, flushed; important ones fsynced."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.protocol import SCHEMA_VERSION, CheckpointEvent, Event, HeaderEvent, StatusEvent, encode_event

_DURABLE = (StatusEvent, CheckpointEvent, HeaderEvent)
E = TypeVar("E", bound=Event)


class EventWriter:
    """Thread-safe appender; the main loop and the telemetry thread share one writer."""

    def __init__(self, path: Path, source: str, listener: Callable[[Event], None] | None = None) -> None:
        self.listener = listener
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()
        self.path = path
        if fresh:
            self.emit(HeaderEvent(schema_version=SCHEMA_VERSION, source=source))
        else:
            self._seal_torn_line()

    def _seal_torn_line(self) -> None:
        # A killed writer may have left half a line; start ours on a fresh one so it stays readable.
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                os.write(self._fd, b"\n")

    def emit(self, event: E) -> E:
        data = encode_event(event)
        with self._lock:
            os.write(self._fd, data)
            if isinstance(event, _DURABLE):
                os.fsync(self._fd)
        if self.listener is not None:
            self.listener(event)
        return event

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
