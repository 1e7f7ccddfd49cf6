"""Find runs and summarise them without reading a whole 200k-iteration log.

The run list, `srcockpit status` and `srcockpit attach NAME` share these functions. A summary reads
the head of events.jsonl (header, run event) and walks back from its end until it has seen the last
status, iter and val events, so a 70 MB log costs a few reads.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.protocol import (
    FAILED,
    ITER,
    LIVE_STATUSES,
    PROGRESS,
    RUN,
    STATUS,
    VAL,
    RunPaths,
    UserError,
    decode_line,
    engine_holds_lock,
)

EXPERIMENTS = "experiments"
HEAD_BYTES = 64 << 10
TAIL_CHUNK = 256 << 10
TAIL_LIMIT = 16 << 20  # stop walking back after this much; fields not found stay unknown


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
        return "lost" if self.lost else (self.status or "unknown")


def discover_runs(root: Path | None = None) -> list[RunPaths]:
    """Every experiments/*/cockpit/events.jsonl under root (default: the current folder), by name."""
    base = (root or Path.cwd()) / EXPERIMENTS
    try:
        found = [p.parent.parent for p in base.glob("*/cockpit/events.jsonl")]
    except OSError:
        return []
    return [RunPaths(folder) for folder in sorted(found, key=lambda p: p.name)]


def resolve_run(name_or_path: str, root: Path | None = None) -> RunPaths:
    """A run folder from a name under experiments/, a run folder, its cockpit/ or its events.jsonl."""
    base = root or Path.cwd()
    candidate = Path(name_or_path).expanduser()
    options = []
    if candidate.name == "events.jsonl":
        options.append(candidate.parent.parent)
    elif candidate.name == "cockpit":
        options.append(candidate.parent)
    options += [candidate, base / candidate, base / EXPERIMENTS / name_or_path]
    for folder in options:
        if (folder / "cockpit" / "events.jsonl").is_file():
            return RunPaths(folder.resolve())
    known = ", ".join(p.root.name for p in discover_runs(base)) or "none"
    raise UserError(f"no run called {name_or_path!r} (no cockpit/events.jsonl there)",
                    f"runs under {base / EXPERIMENTS}: {known}")


def _head_events(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as handle:
        chunk = handle.read(HEAD_BYTES)
    lines = chunk.split(b"\n")
    if not chunk.endswith(b"\n"):
        lines.pop()
    return [e for e in map(decode_line, lines) if e is not None]


def _tail_events(path: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The last event of each wanted type, reading backwards in chunks."""
    found: dict[str, dict[str, Any]] = {}
    last_any: dict[str, Any] | None = None
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        pos, carry, read = end, b"", 0
        while pos > 0 and read < TAIL_LIMIT and not wanted <= found.keys():
            step = min(TAIL_CHUNK, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + carry
            read += step
            lines = data.split(b"\n")
            carry = lines.pop(0) if pos > 0 else b""
            for line in reversed(lines):
                if not line:
                    continue
                event = decode_line(line)
                if event is None:
                    continue
                if last_any is None:
                    last_any = event
                kind = event.get("type")
                if kind in wanted and kind not in found:
                    found[kind] = event
    if last_any is not None:
        found["_last"] = last_any
    return found


def last_status(paths: RunPaths) -> str:
    try:
        return str(_tail_events(paths.events, {STATUS}).get(STATUS, {}).get("status") or "")
    except OSError:
        return ""


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
    """Status, iteration/total, best PSNR, last event time and liveness of one run."""
    summary = RunSummary(name=paths.root.name, paths=paths)
    try:
        head = _head_events(paths.events)
        tail = _tail_events(paths.events, {STATUS, ITER, VAL, RUN, PROGRESS})
    except OSError as error:
        summary.error = str(error)
        return summary
    for event in head:
        if event.get("type") == "header":
            summary.source = str(event.get("source") or "engine")
        if event.get("type") == RUN:
            summary.total_iter = int(event.get("total_iter") or 0)
            summary.name = str(event.get("name") or summary.name)
    run = tail.get(RUN)
    if run:
        summary.total_iter = int(run.get("total_iter") or summary.total_iter)
    status = tail.get(STATUS, {})
    summary.status = str(status.get("status") or "")
    if summary.status == FAILED:
        summary.reason = str(status.get("error") or "")
    it = tail.get(ITER)
    if it:
        summary.iter = int(it.get("iter") or 0)
        summary.total_iter = int(it.get("total_iter") or summary.total_iter)
    if status.get("iter") is not None:
        summary.iter = max(summary.iter, int(status["iter"]))
    progress = tail.get(PROGRESS)
    if progress and not it:  # a job (subset, export, demo): its steps stand in for iterations
        summary.iter, summary.total_iter = int(progress.get("done") or 0), int(progress.get("total") or 0)
    val = tail.get(VAL)
    if val:
        best = (val.get("best") or {}).get("psnr")
        if isinstance(best, dict):
            summary.best_psnr = float(best.get("value")) if best.get("value") is not None else None
            summary.best_psnr_iter = best.get("iter")
        else:
            value = (val.get("metrics") or {}).get("psnr")
            summary.best_psnr = float(value) if isinstance(value, (int, float)) else None
            summary.best_psnr_iter = val.get("iter")
        if summary.best_psnr is not None and not math.isfinite(summary.best_psnr):
            summary.best_psnr = None
    last = tail.get("_last")
    if last and isinstance(last.get("t"), (int, float)):
        summary.last_t = float(last["t"])
    summary.alive = engine_alive(paths, summary.status)
    return summary


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
