"""Headless rendering of engine events: `srcockpit --no-ui ...` and `srcockpit watch --headless`.

On a terminal: one live status line (iteration, it/s, ETA, last losses) with every other event
printed above it. Piped (nohup, Slurm logs): plain lines, no escape codes, one per event worth reading.
Either way every line is timestamped and an iteration line is kept at most every `plain_every` seconds
(and the last one always), so the scrollback and the logs keep the losses and it/s at a small size; each
run and job ends with one summary line (and a stopped run with the command that resumes it).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from engine.protocol import (
    FAILED,
    FINISHED,
    LIVE_STATUSES,
    STOPPED,
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


def _figure(value: Any, depth: int = 0) -> str:
    """One result figure as a reader wants it: numbers rounded, records as `key value` pairs, lists counted."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):  # dB and seconds to 2 places, fractions to 4 digits, tiny errors as such
        return format(value, ".2e" if 0 < abs(value) < 1e-3 else ".4g" if abs(value) < 1 else ".2f")
    if isinstance(value, dict):
        if depth > 1:
            return f"{len(value)} entries"
        inner = ", ".join(f"{key} {_figure(item, depth + 1)}" for key, item in value.items() if item is not None)
        return f"({inner})" if depth else inner
    if isinstance(value, list):
        if value and isinstance(value[-1], dict):
            return f"{len(value)} entries, last {_figure(value[-1], depth + 1)}"
        return ", ".join(_figure(item, depth + 1) for item in value) or "none"
    return str(value)


def result_line(event: ResultEvent) -> str:
    """A job's result in words: `demo report (comparison report): models bicubic (psnr 31.00, ...); seconds 12.34`."""
    figures = dict(event.figures)
    step, title = figures.pop("step", None), figures.pop("title", None)
    head = event.job + (f" {step}" if step else "") + (f" ({title})" if title else "")
    body = "; ".join(f"{key} {_figure(value)}" for key, value in figures.items() if value is not None)
    return f"{head}: {body or 'done'}"


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
            return result_line(event)
    return None


def _ends(event: Event) -> bool:
    return isinstance(event, StatusEvent) and event.status not in LIVE_STATUSES


@dataclass
class RunTally:
    """What one run's summary line needs, gathered from its events as they pass."""

    name: str
    folder: str | None
    started: float
    start_iter: int = 0
    stage: str | None = None
    weights: str = "net_g"  # what basicsr validates: net_g_ema when the run keeps an EMA
    iter: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, event: RunEvent) -> RunTally:
        ema = (event.options.get("train") or {}).get("ema_decay") or 0
        return cls(event.name, event.experiments_root, event.t, event.start_iter, event.stage,
                   "EMA" if isinstance(ema, (int, float)) and ema > 0 else "net_g", event.start_iter)

    def best_text(self) -> str:
        psnr, ssim = self.best.get("psnr"), self.best.get("ssim")
        if psnr is None:
            return "no validation"
        text = f"best psnr {psnr.value:.4f} dB @ iter {psnr.iter}"
        if ssim is not None:
            text += f", best ssim {ssim.value:.4f} @ iter {ssim.iter}"
        checkpoint = self.checkpoints.get(psnr.iter)
        entry = "params_ema" if self.weights == "EMA" else "params"
        return text + f" ({self.weights} weights" + (f": {checkpoint} [{entry}])" if checkpoint else ")")

    def summary(self, event: StatusEvent) -> str:
        done = max(self.iter - self.start_iter, 0)
        resumed = f" (from iter {self.start_iter})" if self.start_iter else ""
        last = max(self.checkpoints, default=None)
        best = self.best.get("psnr")
        saved = (f"; last checkpoint iter {last}: {self.checkpoints[last]}"
                 if last is not None and (best is None or best.iter != last) else "")
        stage = f" (stage {self.stage})" if self.stage else ""
        return (f"summary {self.name}{stage}: {event.status} at iter {self.iter}, {done} iterations{resumed} in "
                f"{duration(event.t - self.started)}; {self.best_text()}{saved}")

    def resume_command(self) -> str:
        """`srcockpit resume NAME` works from the folder holding experiments/NAME; elsewhere the folder does."""
        folder = Path(self.folder) if self.folder else None
        if folder is None or folder.resolve() == (Path.cwd() / "experiments" / self.name).resolve():
            return f"srcockpit resume {self.name}"
        return f"srcockpit resume {os.path.relpath(folder)}"


class ConsoleRenderer:
    """A listener for EventWriter (called from the loop and the telemetry thread).

    resume: the command that continues this work when it stops (a chain of stages, the demo); by default
    a stopped run is told `srcockpit resume NAME`.
    """

    def __init__(self, console: Console | None = None, plain_every: float = 30.0, resume: str | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.live_mode = self.console.is_terminal
        self.plain_every = plain_every
        self.resume = resume
        self._last_plain_iter = 0.0
        self._lock = threading.RLock()  # a warning may come while an event prints
        self._status_line = Text("starting…")
        self._system = ""
        self._live: Live | None = None
        self._unkept: tuple[IterEvent, str] | None = None  # the live line's iteration, not yet in the scrollback
        self.runs: list[RunTally] = []
        self._jobs: dict[str, tuple[float, ResultEvent | None]] = {}

    def __enter__(self) -> ConsoleRenderer:
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._warning  # torch's and basicsr's warnings get a timestamp too
        if self.live_mode:
            self._live = Live(self._status_line, console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._keep_unkept()
            if self._live is not None:
                self._live.__exit__(None, None, None)
                self._live = None
        warnings.showwarning = self._showwarning

    def _warning(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
        with self._lock:
            self._print(Event(), f"WARNING {category.__name__}: {message} ({filename}:{lineno})")

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, IterEvent):
                self._on_iter(event)
            elif isinstance(event, SystemEvent):
                self._system = system_summary(event)
            self._tally(event)
            line = describe(event)
            if line is not None:
                if isinstance(event, ValEvent) or _ends(event):
                    self._keep_unkept()  # the losses and it/s that led to this validation or this end
                self._print(event, line)
            if _ends(event):
                self._summarise(event)

    def _on_iter(self, event: IterEvent) -> None:
        line = iter_line(event)
        if self._live is not None:
            self._live.update(Text(f"{line}  {self._system}"))
        now = time.monotonic()
        if now - self._last_plain_iter >= self.plain_every or event.iter == event.total_iter:
            self._last_plain_iter = now
            self._unkept = None
            self._print(event, line)
        else:
            self._unkept = (event, line)

    def _keep_unkept(self) -> None:
        """The newest iteration line into the scrollback before the live line goes (an end, a stop)."""
        if self._unkept is not None:
            self._print(*self._unkept)
            self._unkept = None

    def _tally(self, event: Event) -> None:
        tally = self.runs[-1] if self.runs else None
        if isinstance(event, RunEvent):
            self.runs.append(RunTally.of(event))
        elif tally is not None and isinstance(event, IterEvent):
            tally.iter = event.iter
        elif tally is not None and isinstance(event, ValEvent):
            tally.best = dict(event.best)
        elif tally is not None and isinstance(event, CheckpointEvent):
            tally.checkpoints[event.iter] = event.net_g
        elif isinstance(event, StatusEvent) and event.job and event.status in LIVE_STATUSES:
            self._jobs.setdefault(event.job, (event.t, None))
        elif isinstance(event, ResultEvent) and event.job in self._jobs:
            self._jobs[event.job] = (self._jobs[event.job][0], event)

    def _summarise(self, event: StatusEvent) -> None:
        """The summary line a run or job ends with; a stopped run's also says how to go on."""
        if event.job:
            started, result = self._jobs.pop(event.job, (event.t, None))
            tail = f"; {result_line(result)}" if result is not None else ""
            self._print(event, f"summary {event.job}: {event.status} in {duration(event.t - started)}{tail}")
            if self.resume and event.status != FINISHED:  # the demo interrupted between its training stages
                self._print(event, f"to go on: {self.resume}")
            return
        if not self.runs:
            return
        tally = self.runs[-1]
        if event.iter is not None:
            tally.iter = event.iter
        self._print(event, tally.summary(event))
        if event.status == STOPPED or (event.status == FAILED and event.resumable_from is not None):
            command = self.resume or f"{tally.resume_command()} (detached) or {tally.resume_command()} --no-ui"
            self._print(event, f"to go on: {command}")

    def _print(self, event: Event, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.t))
        self.console.print(f"{stamp} {line}", markup=False, soft_wrap=not self.live_mode)


def system_summary(event: SystemEvent) -> str:
    parts = [f"cpu {_number(event.cpu_percent, '.0f')}%", f"rss {event.rss / 2**30:.1f}G"]
    for gpu in event.gpus:
        used = gpu.get("mem_used") or gpu.get("mem_reserved") or 0
        parts.append(f"gpu{gpu.get('index')} {used / 2**30:.1f}/{(gpu.get('mem_total') or 0) / 2**30:.0f}G "
                     f"{_number(gpu.get('util'), '.0f')}%")
    return " ".join(parts)


def comparison_table(rows: list[dict[str, Any]]) -> Table:
    """The demo's scores per model (engine.demo.comparison: the report's figures), as a rich table."""
    table = Table("model", "params", "PSNR (dB)", "SSIM", title="validation, Y channel", box=box.SIMPLE_HEAD,
                  title_justify="left")
    for row in rows:
        params = row.get("parameters")
        table.add_row(str(row.get("model")), f"{params:,}" if params else "-", _number(row.get("psnr"), ".3f"),
                      _number(row.get("ssim"), ".4f"))
    return table


def export_table(rows: list[dict[str, str]]) -> Table:
    """The export's headline figures (engine.demo.export_summary)."""
    table = Table("export", "value", box=box.SIMPLE_HEAD)
    for row in rows:
        table.add_row(row["figure"], row["value"])
    return table
