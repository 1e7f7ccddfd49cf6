"""The contract between the two rooms: event log, control commands and run-folder layout.

Standard library only: tui/ imports this module, and tui/ must start without torch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# Event types (design.md section 2). Fields beyond {"v", "t", "type"}, per type:
#   header      schema_version, source ("engine" or "job:<kind>")                     (line 1)
#   status      status (STARTING..FAILED), iter?, pid?, host?, job?, error?, traceback?, reason?
#   run         name, stage?, start_iter, total_iter, world_size, device, versions{}, options{}
#   iter        iter, epoch, total_iter, lr, losses{l_g_pix, l_g_percep, l_g_gan, l_d_real, l_d_fake,
#               out_d_real, out_d_fake, ...}, it_s, data_s, compute_s, eta_s
#   system      gpus[{index, name, mem_alloc, mem_reserved, mem_peak, mem_used, mem_total, util, temp,
#               power, power_limit}] (bytes, %, degC, W; [] without a GPU), cpu_percent, rss, ram_used,
#               ram_total
#   val         iter, dataset, metrics{psnr, ssim}, settings{crop_border, test_y_channel}, best{psnr:
#               {value, iter}, ssim: {...}}, baselines?{bicubic: {psnr, ssim}, nearest: {...}}, images[]
#   checkpoint  iter, net_g, net_g_ema?, state
#   alert       level ("warning"|"error"), code, message, hint?
#   progress    job, done, total, message
#   result      job, plus the job's figures
#   log         level, message
HEADER = "header"
STATUS = "status"
RUN = "run"
ITER = "iter"
SYSTEM = "system"
VAL = "val"
CHECKPOINT = "checkpoint"
ALERT = "alert"
PROGRESS = "progress"
RESULT = "result"
LOG = "log"

# Run statuses, in the order a healthy run meets them.
STARTING, RUNNING, PAUSED, STOPPING, STOPPED, FINISHED, FAILED = (
    "starting",
    "running",
    "paused",
    "stopping",
    "stopped",
    "finished",
    "failed",
)
LIVE_STATUSES = frozenset({STARTING, RUNNING, PAUSED, STOPPING})

# Control commands (design.md section 3).
COMMANDS = ("stop", "pause", "resume", "save", "validate", "ping")

# Unix socket paths are limited to 108 bytes; longer run folders get their socket elsewhere.
SOCKET_PATH_LIMIT = 100

ProgressFn = Callable[[int, int, str], None]
"""progress(done, total, message): how a slow engine function reports how far it is."""


class UserError(Exception):
    """A problem the user can fix; shown as one clear message (and a hint), never a traceback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


def make_event(kind: str, **fields: Any) -> dict[str, Any]:
    """One event as written to events.jsonl."""
    return {"v": SCHEMA_VERSION, "t": time.time(), "type": kind, **fields}


def encode_event(event: dict[str, Any]) -> bytes:
    # NaN/inf are valid floats for a loss; JSON has no literal for them, so they travel as strings.
    return (json.dumps(event, default=str, allow_nan=False, separators=(",", ":")) + "\n").encode()


def decode_line(line: bytes | str) -> dict[str, Any] | None:
    """Parse one line; None for a torn or foreign line (a reader must survive a crash mid-write)."""
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(event, dict) or "type" not in event:
        return None
    return event


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete, well-formed event of a log; a torn last line is skipped."""
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    event = decode_line(line)
                    if event is not None:
                        yield event
    except FileNotFoundError:
        return


@dataclass(frozen=True)
class RunPaths:
    """Where srcockpit keeps its files inside a basicsr experiment folder (design.md section 4)."""

    root: Path

    @property
    def cockpit(self) -> Path:
        return self.root / "cockpit"

    @property
    def events(self) -> Path:
        return self.cockpit / "events.jsonl"

    @property
    def engine_json(self) -> Path:
        return self.cockpit / "engine.json"

    @property
    def lock(self) -> Path:
        return self.cockpit / "engine.lock"

    @property
    def engine_log(self) -> Path:
        return self.cockpit / "engine.log"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def training_states(self) -> Path:
        return self.root / "training_states"

    def socket(self) -> Path:
        """The control socket; a short stand-in path under the runtime dir when the folder is deep."""
        path = self.cockpit / "control.sock"
        if len(os.fsencode(path)) <= SOCKET_PATH_LIMIT:
            return path
        runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/srcockpit-{os.getuid()}")
        digest = hashlib.sha1(os.fsencode(path.resolve())).hexdigest()[:12]
        return runtime / f"{digest}.sock"

    def announce(self, **info: Any) -> None:
        """Write engine.json (atomically): who works on this run now, so clients find and probe it."""
        self.cockpit.mkdir(parents=True, exist_ok=True)
        fields = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), **info}
        partial = self.engine_json.with_suffix(".partial")
        partial.write_text(json.dumps(fields, indent=2, default=str))
        partial.replace(self.engine_json)

    def engine_info(self) -> dict[str, Any]:
        """engine.json, or {} when the run never started an engine."""
        try:
            return json.loads(self.engine_json.read_text())
        except (FileNotFoundError, ValueError):
            return {}


def engine_holds_lock(paths: RunPaths) -> bool | None:
    """Whether an engine works on this run now, by the one sign that cannot go stale: its flock on
    cockpit/engine.lock, which the kernel drops when the engine dies (a pid in engine.json can be reused).

    None where the lock cannot tell: no lock file (a job, which takes none) or one we may not open.
    The probe takes a shared lock for an instant, so it never waits and never blocks a reader.
    """
    try:
        fd = os.open(paths.lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's own shared lock
    return False


def lock_holder_pids(lock: Path) -> set[int]:
    """The pids that hold an exclusive flock on this file, as the kernel lists them in /proc/locks
    ("1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146532 0 EOF"); empty where that cannot be read."""
    try:
        info = os.stat(lock)
        with open("/proc/locks") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return set()
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    holders = set()
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a process waiting for the lock, not holding it
            continue
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5] == wanted:
            holders.add(int(fields[4]))
    return holders


class LineFollower:
    """Incremental reader of a growing file: each lines() returns the complete lines appended since the last.

    A partial last line is kept until its newline arrives, so a reader never sees half a line; a file that
    shrank (replaced) is read again from the start.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._partial = b""

    def lines(self, max_bytes: int) -> list[bytes]:
        try:
            with open(self.path, "rb") as handle:
                if handle.seek(0, os.SEEK_END) < self.offset:
                    self.offset, self._partial = 0, b""
                handle.seek(self.offset)
                chunk = handle.read(max_bytes)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        return lines


class EventFollower(LineFollower):
    """The events appended to an event log since the last poll()."""

    def poll(self, max_bytes: int = 8 << 20) -> list[dict[str, Any]]:
        return [event for event in map(decode_line, self.lines(max_bytes)) if event is not None]
