"""`--notify CMD` (options: `srcockpit.notify`): a user command that hears of alerts and of the run's end.

The command runs through /bin/sh with the event's JSON line on stdin (ntfy, mail, a webhook script),
in a thread of its own with a time limit, so a slow or broken command never holds up nor ends the run;
its failure is written to the event log as a warning.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from engine.protocol import FAILED, FINISHED, AlertEvent, Event, LogEvent, StatusEvent, encode_event

NOTIFY_TIMEOUT_S = 30.0
Listener = Callable[[Event], None]


def worth_telling(event: Event) -> bool:
    return isinstance(event, AlertEvent) or (isinstance(event, StatusEvent) and event.status in (FAILED, FINISHED))


class Notifier:
    """An event listener that runs `command` for each alert, failure and finish."""

    def __init__(self, command: str, timeout: float = NOTIFY_TIMEOUT_S) -> None:
        self.command = command
        self.timeout = timeout
        self.emit: Listener | None = None  # where a failed notification is reported (the run's event writer)
        self._threads: list[threading.Thread] = []

    def __call__(self, event: Event) -> None:
        if not worth_telling(event):
            return
        thread = threading.Thread(target=self._run, args=(encode_event(event),), name="srcockpit-notify", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _run(self, line: bytes) -> None:
        try:
            done = subprocess.run(["/bin/sh", "-c", self.command], input=line, capture_output=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            self._report(f"--notify command ran over {self.timeout:.0f} s and was killed: {self.command}")
            return
        except OSError as error:
            self._report(f"--notify command could not start ({error.strerror}): {self.command}")
            return
        if done.returncode:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            self._report(f"--notify command exited {done.returncode}: {self.command}"
                         + (f" ({said[-1][:200]})" if said else ""))

    def _report(self, message: str) -> None:
        if self.emit is not None:
            with contextlib.suppress(Exception):  # a full disk or a closed log: the run must not hear of it
                self.emit(LogEvent(level="warning", message=message))

    def close(self) -> None:
        """Wait for the notifications under way (the last one tells of the run's end), each within its limit."""
        for thread in self._threads:
            thread.join(self.timeout + 1)


def chained(first: Listener | None, second: Listener) -> Listener:
    """Both listeners, in order."""
    if first is None:
        return second

    def both(event: Event) -> None:
        first(event)
        second(event)

    return both


def notify_command(opt: dict[str, Any]) -> str | None:
    section = opt.get("srcockpit") or {}
    command = section.get("notify") if isinstance(section, dict) else None
    return command or None
