"""Find runs and summarise them without reading a whole 200k-iteration log.

The run list, `srcockpit status` and `srcockpit attach NAME` share these functions. A summary reads
the head of events.jsonl (header, run event) and walks back from its end until it has seen the last
status, iter and val events, so a 70 MB log costs a few reads.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.protocol import (
    FAILED,
    LIVE_STATUSES,
    MAX_SUMMARY_LINE,
    AnyEvent,
    Event,
    HeaderEvent,
    IterEvent,
    ProgressEvent,
    RunEvent,
    RunPaths,
    StatusEvent,
    UserError,
    ValEvent,
    decode_event,
    engine_holds_lock,
)
from tui.state import overall_progress

EXPERIMENTS = "experiments"
DEMO_ROOT = "srcockpit-demo"  # `srcockpit demo`'s default --root
HEAD_BYTES = 64 << 10
TAIL_CHUNK = 256 << 10
DECODE_LIMIT = 16 << 20  # stop walking back after decoding this much; fields not found stay unknown
SKIP_LIMIT = 1 << 30  # oversized lines (a torn 50 MB tail) are stepped over without decoding, up to this


@dataclass
class RunSummary:
    """One line of the run list."""

    name: str
    paths: RunPaths
    status: str = ""
    iter: int = 0
    total_iter: int = 0
    best_psnr: float | None = None
    best_psnr_iter: int | None = None
    scored: str = ""  # which weights best_psnr scored (net_g_ema or net_g), "" in logs older than the label
    net_g_psnr: float | None = None  # the raw net_g's latest PSNR when the best is the EMA's
    last_t: float | None = None
    alive: bool = False
    source: str = "engine"
    error: str = ""
    reason: str = ""  # a failed run's error, as its engine reported it

    @property
    def live(self) -> bool:
        return self.alive

    @property
    def lost(self) -> bool:
        """The log says the run is going, but no engine is behind it (killed, machine rebooted)."""
        return self.status in LIVE_STATUSES and not self.alive

    @property
    def display_status(self) -> str:
        if self.error:
            return "unreadable"
        return "lost" if self.lost else (self.status or "unknown")


def discover_runs(root: Path | None = None) -> list[RunPaths]:
    """Every experiments/*/cockpit/events.jsonl under root (default: the current folder), by name; then those
    of the demo's default folder (`srcockpit demo` puts them in ./srcockpit-demo/experiments)."""
    found: list[RunPaths] = []
    for base in experiment_folders(root or Path.cwd()):
        try:
            folders = [p.parent.parent for p in base.glob("*/cockpit/events.jsonl")]
        except OSError:
            continue
        found += [RunPaths(folder) for folder in sorted(folders, key=lambda p: p.name)]
    return found


def experiment_folders(root: Path) -> list[Path]:
    return [root / EXPERIMENTS, root / DEMO_ROOT / EXPERIMENTS]


def attach_hint(paths: RunPaths, cwd: Path | None = None) -> str:
    """The `srcockpit attach` command that finds this run from cwd: its name where that resolves to it, else its
    path (relative when it lies below cwd)."""
    cwd = (cwd or Path.cwd()).resolve()
    folder = paths.root.resolve()
    with contextlib.suppress(UserError):
        if resolve_run(folder.name, cwd).root == folder:
            return f"srcockpit attach {folder.name}"
    try:
        return f"srcockpit attach {folder.relative_to(cwd)}"
    except ValueError:
        return f"srcockpit attach {folder}"


def resolve_run(name_or_path: str, root: Path | None = None) -> RunPaths:
    """A run folder from a name under experiments/, a run folder, its cockpit/ or its events.jsonl."""
    base = root or Path.cwd()
    candidate = Path(name_or_path).expanduser()
    options = []
    if candidate.name == "events.jsonl":
        options.append(candidate.parent.parent)
    elif candidate.name == "cockpit":
        options.append(candidate.parent)
    options += [candidate, base / candidate, *(folder / name_or_path for folder in experiment_folders(base))]
    for folder in options:
        log = folder / "cockpit" / "events.jsonl"
        if log.is_file():
            return RunPaths(folder.resolve())
        if log.exists():
            raise UserError(f"{log} is not a file: the run's event log is damaged",
                            f"move {log} aside; `srcockpit status` lists the runs that still read")
    known = ", ".join(p.root.name for p in discover_runs(base)) or "none"
    raise UserError(f"no run called {name_or_path!r} (no cockpit/events.jsonl there)",
                    f"runs under {base / EXPERIMENTS}: {known}")


def _head_events(path: Path) -> list[AnyEvent]:
    with open(path, "rb") as handle:
        chunk = handle.read(HEAD_BYTES)
    lines = chunk.split(b"\n")
    lines.pop()  # after the last newline: a torn or cut line
    return [e for e in map(decode_event, lines) if e is not None]


class _TailWalk:
    """Complete lines of a file from its end backwards; lines over MAX_SUMMARY_LINE are stepped over unread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.decoded = self.skipped = 0

    def lines(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            pos = handle.seek(0, os.SEEK_END)
            carry, inside_long = b"", True  # what follows the last newline is never a complete line
            while pos > 0 and self.decoded < DECODE_LIMIT and self.skipped < SKIP_LIMIT:
                step = min(TAIL_CHUNK, pos)
                pos -= step
                handle.seek(pos)
                segments = (handle.read(step) + carry).split(b"\n")
                if inside_long:
                    self.skipped += step
                    if len(segments) == 1:
                        carry = b""
                        continue
                    segments[-1], inside_long = b"", False
                carry = segments.pop(0) if pos > 0 else b""
                if len(carry) > MAX_SUMMARY_LINE:
                    carry, inside_long = b"", True
                for line in reversed(segments):
                    if line:
                        self.decoded += len(line)
                        yield line


def _tail_events(path: Path, wanted: tuple[type[Event], ...]) -> tuple[dict[type[Event], AnyEvent], float | None]:
    """The last good event of each wanted type, reading backwards; and the time of the last good event."""
    found: dict[type[Event], AnyEvent] = {}
    last_t: float | None = None
    for line in _TailWalk(path).lines():
        event = decode_event(line)
        if event is None:
            continue
        if last_t is None:
            last_t = event.t
        if isinstance(event, wanted) and type(event) not in found:
            found[type(event)] = event
            if len(found) == len(wanted):
                break
    return found, last_t


def last_status(paths: RunPaths) -> str:
    try:
        status = _tail_events(paths.events, (StatusEvent,))[0].get(StatusEvent)
    except OSError:
        return ""
    return status.status if isinstance(status, StatusEvent) else ""


def pid_alive(pid: Any) -> bool:
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    except OSError:
        return False
    try:  # a killed engine nobody has reaped yet is a zombie: gone, whatever kill(0) says
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
    except OSError:
        pass
    return True


def engine_alive(paths: RunPaths, status: str | None = None) -> bool:
    """Is an engine working on this run now? Its lock decides (engine.protocol.engine_holds_lock); a final
    status in the log means it has said its last word. An engine on another host cannot be probed: its
    log decides. A folder without a lock (a job) falls back to engine.json's pid.
    """
    if status is None:
        status = last_status(paths)
    if status and status not in LIVE_STATUSES:
        return False
    info = paths.engine_info()
    host = info.get("host")
    if host and host != socket.gethostname():
        return bool(status in LIVE_STATUSES)
    held = engine_holds_lock(paths)
    if held is not None:
        return held
    if not info or (info.get("status") and info.get("status") not in LIVE_STATUSES and not status):
        return False
    return _pid_is_the_engine(info)


def _pid_is_the_engine(info: dict[str, Any]) -> bool:
    """engine.json's pid is alive and no younger than the engine that wrote it (else it was reused)."""
    if not pid_alive(info.get("pid")):
        return False
    started = info.get("started")
    if isinstance(started, (int, float)):
        try:
            import psutil

            if psutil.Process(int(info["pid"])).create_time() > started + 5:
                return False
        except Exception:  # no psutil, access denied, gone: keep the os.kill answer
            pass
    return True


def summarise(paths: RunPaths) -> RunSummary:
    """Status, iteration/total, best PSNR, last event time and liveness of one run (named by its folder:
    an archived run keeps the original name in its log)."""
    summary = RunSummary(name=paths.root.name, paths=paths)
    try:
        head = _head_events(paths.events)
        tail, summary.last_t = _tail_events(paths.events, (StatusEvent, IterEvent, ValEvent, RunEvent, ProgressEvent))
    except OSError as error:
        summary.error = f"cannot read {paths.events}: {error.strerror or error}"
        return summary
    for event in head:
        if isinstance(event, HeaderEvent):
            summary.source = event.source
        elif isinstance(event, RunEvent):
            summary.total_iter = event.total_iter
    _fold_tail(summary, tail)
    summary.alive = engine_alive(paths, summary.status)
    return summary


def _fold_tail(summary: RunSummary, tail: dict[type[Event], AnyEvent]) -> None:
    run, status, it = tail.get(RunEvent), tail.get(StatusEvent), tail.get(IterEvent)
    if isinstance(run, RunEvent):
        summary.total_iter = run.total_iter or summary.total_iter
    if isinstance(status, StatusEvent):
        summary.status = status.status
        if status.status == FAILED:
            summary.reason = status.error or ""
    if isinstance(it, IterEvent):
        summary.iter = it.iter
        summary.total_iter = it.total_iter or summary.total_iter
    if isinstance(status, StatusEvent) and status.iter is not None:
        summary.iter = max(summary.iter, status.iter)
    progress = tail.get(ProgressEvent)
    if isinstance(progress, ProgressEvent) and it is None:  # a job (subset, export, demo): its steps stand in
        done, total = overall_progress(progress)
        summary.iter, summary.total_iter = int(done), int(total)
    val = tail.get(ValEvent)
    if isinstance(val, ValEvent):
        best = val.best.get("psnr")
        if best is not None:
            summary.best_psnr, summary.best_psnr_iter = best.value, best.iter
        else:
            summary.best_psnr, summary.best_psnr_iter = val.metrics.get("psnr"), val.iter
        if summary.best_psnr is not None and not math.isfinite(summary.best_psnr):
            summary.best_psnr = None
        summary.scored = val.weights
        raw = val.net_g.get("psnr")
        summary.net_g_psnr = raw if raw is not None and math.isfinite(raw) else None


def list_runs(root: Path | None = None) -> list[RunSummary]:
    return [summarise(paths) for paths in discover_runs(root)]


def age(seconds_ago: float | None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago'."""
    if seconds_ago is None:
        return "-"
    s = max(0.0, seconds_ago)
    if s < 60:
        return f"{s:.0f} s ago"
    if s < 3600:
        return f"{s / 60:.0f} min ago"
    if s < 86400:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} d ago"


def now() -> float:
    return time.time()
