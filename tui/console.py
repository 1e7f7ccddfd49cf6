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

from engine.protocol import (
    FAILED,
    AlertEvent,
    AnyEvent,
    CheckpointEvent,
    Event,
    IterEvent,
    LogEvent,
    LossKind,
    ProgressEvent,
    ResultEvent,
    RunEvent,
    SetEvent,
    StatusEvent,
    SystemEvent,
    ValEvent,
    classify_loss,
)
from engine.units import duration


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def iter_line(event: IterEvent) -> str:
    losses = " ".join(f"{name} {_number(value, '.4g')}" for name, value in event.losses.items()
                      if classify_loss(name) is not LossKind.D_OUTPUT)
    wait = event.data_s if event.data_s == event.data_s else 0.0
    compute = event.compute_s if event.compute_s == event.compute_s else 0.0
    share = 100 * wait / (wait + compute) if wait + compute > 0 else 0.0
    return (f"iter {event.iter}/{event.total_iter}  {_number(event.it_s, '.2f')} it/s  "
            f"eta {duration(event.eta_s)}  lr {_number(event.generator_lr, '.2e')}  data {share:.0f}%  {losses}")


def _status_line(event: StatusEvent) -> str:
    text = f"status {event.status}"
    if event.iter is not None:
        text += f" at iter {event.iter}"
    for key in ("reason", "error", "hint"):
        if getattr(event, key):
            text += f"  {key}: {getattr(event, key)}"
    if event.status == FAILED and event.traceback:
        text += "\n" + event.traceback.rstrip()
    return text


def _run_line(event: RunEvent) -> str:
    start = f", resumed at iter {event.start_iter}" if event.start_iter else ""
    stage = f" (stage {event.stage})" if event.stage else ""
    world = f" x{event.world_size} ranks" if event.world_size > 1 else ""
    return (f"run {event.name}{stage}: {event.model_type} on {event.device}{world}, "
            f"{event.total_iter} iterations{start}")


def _val_line(event: ValEvent) -> str:
    metrics = "  ".join(f"{k} {_number(v, '.4f')}" for k, v in event.metrics.items())
    best = event.best.get("psnr")
    tail = f"  (best psnr {_number(best.value, '.4f')} @ {best.iter})" if best else ""
    return f"val {event.dataset} @ iter {event.iter}: {metrics}{tail}"


def describe(event: AnyEvent) -> str | None:
    """The line an event deserves in a log, or None for those shown only on the live line."""
    match event:
        case StatusEvent():
            return _status_line(event)
        case RunEvent():
            return _run_line(event)
        case ValEvent():
            return _val_line(event)
        case CheckpointEvent():
            return f"checkpoint iter {event.iter}: {event.net_g}"
        case AlertEvent():
            hint = f"  hint: {event.hint}" if event.hint else ""
            return f"{event.level.upper()} {event.code}: {event.message}{hint}"
        case LogEvent():
            return event.message
        case SetEvent():
            return event.summary
        case ProgressEvent():
            return f"{event.job}: {event.done}/{event.total} {event.message}".rstrip()
        case ResultEvent():
            return f"{event.job} result: {event.figures}"
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

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, IterEvent):
                self._on_iter(event)
            elif isinstance(event, SystemEvent):
                self._system = system_summary(event)
            line = describe(event)
            if line is not None:
                self._print(event, line)

    def _on_iter(self, event: IterEvent) -> None:
        line = iter_line(event)
        if self._live is not None:
            self._live.update(Text(f"{line}  {self._system}"))
            return
        now = time.monotonic()
        if now - self._last_plain_iter >= self.plain_every or event.iter == event.total_iter:
            self._last_plain_iter = now
            self._print(event, line)

    def _print(self, event: Event, line: str) -> None:
        if self.live_mode:
            self.console.print(line, markup=False)
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.t))
            self.console.print(f"{stamp} {line}", markup=False, soft_wrap=True)


def system_summary(event: SystemEvent) -> str:
    parts = [f"cpu {_number(event.cpu_percent, '.0f')}%", f"rss {event.rss / 2**30:.1f}G"]
    for gpu in event.gpus:
        used = gpu.get("mem_used") or gpu.get("mem_reserved") or 0
        parts.append(f"gpu{gpu.get('index')} {used / 2**30:.1f}/{(gpu.get('mem_total') or 0) / 2**30:.0f}G "
                     f"{_number(gpu.get('util'), '.0f')}%")
    return " ".join(parts)
