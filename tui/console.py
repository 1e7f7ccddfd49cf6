"""Headless rendering of engine events: `srcockpit --no-ui ...` and `srcockpit watch --headless`.

On a terminal: one live status line (iteration, it/s, ETA, last losses) with every other event
printed above it. Piped (nohup, Slurm logs): plain timestamped lines, no escape codes, one per
event worth reading; iterations at most every `plain_every` seconds so logs stay small.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from engine.protocol import ALERT, CHECKPOINT, FAILED, ITER, LOG, PROGRESS, RESULT, RUN, STATUS, SYSTEM, VAL
from engine.units import duration


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def iter_line(event: dict[str, Any]) -> str:
    losses = " ".join(f"{name} {_number(value, '.4g')}" for name, value in (event.get("losses") or {}).items()
                      if not name.startswith("out_"))
    wait = event.get("data_s") or 0.0
    compute = event.get("compute_s") or 0.0
    share = 100 * wait / (wait + compute) if wait + compute > 0 else 0.0
    return (f"iter {event.get('iter')}/{event.get('total_iter')}  {_number(event.get('it_s', 0), '.2f')} it/s  "
            f"eta {duration(event.get('eta_s'))}  lr {_number(event.get('lr'), '.2e')}  data {share:.0f}%  {losses}")


def describe(event: dict[str, Any]) -> str | None:
    """The line an event deserves in a log, or None for those shown only on the live line."""
    kind = event.get("type")
    if kind == STATUS:
        text = f"status {event.get('status')}"
        if event.get("iter") is not None:
            text += f" at iter {event['iter']}"
        for key in ("reason", "error", "hint"):
            if event.get(key):
                text += f"  {key}: {event[key]}"
        if event.get("status") == FAILED and event.get("traceback"):
            text += "\n" + event["traceback"].rstrip()
        return text
    if kind == RUN:
        start = f", resumed at iter {event['start_iter']}" if event.get("start_iter") else ""
        stage = f" (stage {event['stage']})" if event.get("stage") else ""
        world = f" x{event['world_size']} ranks" if (event.get("world_size") or 1) > 1 else ""
        return (f"run {event.get('name')}{stage}: {event.get('model_type')} on {event.get('device')}{world}, "
                f"{event.get('total_iter')} iterations{start}")
    if kind == VAL:
        metrics = "  ".join(f"{k} {_number(v, '.4f')}" for k, v in (event.get("metrics") or {}).items())
        best = (event.get("best") or {}).get("psnr") or {}
        tail = f"  (best psnr {_number(best.get('value'), '.4f')} @ {best.get('iter')})" if best else ""
        return f"val {event.get('dataset')} @ iter {event.get('iter')}: {metrics}{tail}"
    if kind == CHECKPOINT:
        return f"checkpoint iter {event.get('iter')}: {event.get('net_g')}"
    if kind == ALERT:
        hint = f"  hint: {event['hint']}" if event.get("hint") else ""
        return f"{str(event.get('level', 'warning')).upper()} {event.get('code')}: {event.get('message')}{hint}"
    if kind == LOG:
        return str(event.get("message"))
    if kind == PROGRESS:
        return f"{event.get('job')}: {event.get('done')}/{event.get('total')} {event.get('message') or ''}".rstrip()
    if kind == RESULT:
        fields = {k: v for k, v in event.items() if k not in ("v", "t", "type", "job")}
        return f"{event.get('job')} result: {fields}"
    return None


class ConsoleRenderer:
    """A listener for EventWriter (called from the loop and the telemetry thread)."""

    def __init__(self, console: Console | None = None, plain_every: float = 30.0) -> None:
        self.console = console or Console(highlight=False)
        self.live_mode = self.console.is_terminal
        self.plain_every = plain_every
        self._last_plain_iter = 0.0
        self._lock = threading.Lock()
        self._status_line = Text("starting…")
        self._system = ""
        self._live: Live | None = None

    def __enter__(self) -> ConsoleRenderer:
        if self.live_mode:
            self._live = Live(self._status_line, console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            kind = event.get("type")
            if kind == ITER:
                self._on_iter(event)
            elif kind == SYSTEM:
                self._system = system_summary(event)
            line = describe(event)
            if line is not None:
                self._print(event, line)

    def _on_iter(self, event: dict[str, Any]) -> None:
        line = iter_line(event)
        if self._live is not None:
            self._live.update(Text(f"{line}  {self._system}"))
            return
        now = time.monotonic()
        if now - self._last_plain_iter >= self.plain_every or event.get("iter") == event.get("total_iter"):
            self._last_plain_iter = now
            self._print(event, line)

    def _print(self, event: dict[str, Any], line: str) -> None:
        if self.live_mode:
            self.console.print(line, markup=False)
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.get("t", time.time())))
            self.console.print(f"{stamp} {line}", markup=False, soft_wrap=True)


def system_summary(event: dict[str, Any]) -> str:
    parts = [f"cpu {_number(event.get('cpu_percent'), '.0f')}%",
             f"rss {(event.get('rss') or 0) / 2**30:.1f}G"]
    for gpu in event.get("gpus") or []:
        used = gpu.get("mem_used") or gpu.get("mem_reserved") or 0
        parts.append(f"gpu{gpu.get('index')} {used / 2**30:.1f}/{(gpu.get('mem_total') or 0) / 2**30:.0f}G "
                     f"{_number(gpu.get('util'), '.0f')}%")
    return " ".join(parts)
