"""Append events to events.jsonl: one write per line, flushed; important ones fsynced."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.protocol import (
    CHECKPOINT,
    HEADER,
    SCHEMA_VERSION,
    STATUS,
    encode_event,
    make_event,
)

_DURABLE = frozenset({STATUS, CHECKPOINT, HEADER})


def _json_safe(value: Any) -> Any:
    """NaN and inf have no JSON literal; they travel as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


class EventWriter:
    """Thread-safe appender; the main loop and the telemetry thread share one writer."""

    def __init__(self, path: Path, source: str, listener: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.listener = listener
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()
        self.path = path
        if fresh:
            self.emit(HEADER, schema_version=SCHEMA_VERSION, source=source)
        else:
            self._seal_torn_line()

    def _seal_torn_line(self) -> None:
        # A killed writer may have left half a line; start ours on a fresh one so it stays readable.
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                os.write(self._fd, b"\n")

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = _json_safe(make_event(kind, **fields))
        data = encode_event(event)
        with self._lock:
            os.write(self._fd, data)
            if kind in _DURABLE:
                os.fsync(self._fd)
        if self.listener is not None:
            self.listener(event)
        return event

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
