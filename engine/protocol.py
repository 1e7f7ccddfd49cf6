"""The contract between the two rooms: event log, control commands and run-folder layout.

Standard library and msgspec only: tui/ imports this module, and tui/ must start without torch.
Every event is a typed record (a msgspec Struct tagged by its "type" field); one encoder and one
decoder turn them into the lines of events.jsonl and back, in both rooms.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import json
import math
import os
import socket
import sys
import time
import uuid
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import msgspec

from engine.losses import (  # noqa: F401  (re-exported: the loss classification is part of the contract)
    DISCRIMINATOR_KINDS,
    GENERATOR_KINDS,
    LossKind,
    classify_loss,
    losses_of_kind,
)

SCHEMA_VERSION = 1


class _Named(str, enum.Enum):
    """A str enum whose str() and format() are its value, so the JSON and the messages keep the words."""

    __str__ = str.__str__
    __format__ = str.__format__


class EventType(_Named):
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
    SET = "set"


class Status(_Named):
    """Run statuses, in the order a healthy run meets them."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"


class Command(_Named):
    """Control commands (design.md section 3)."""

    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    SAVE = "save"
    VALIDATE = "validate"
    PING = "ping"
    SET = "set"  # {"cmd": "set", "key": "lr", "value": 5e-5}: engine.mitigations lists the keys


HEADER, STATUS, RUN, ITER, SYSTEM, VAL = (EventType.HEADER, EventType.STATUS, EventType.RUN, EventType.ITER,
                                          EventType.SYSTEM, EventType.VAL)
CHECKPOINT, ALERT, PROGRESS, RESULT, LOG = (EventType.CHECKPOINT, EventType.ALERT, EventType.PROGRESS,
                                            EventType.RESULT, EventType.LOG)
STARTING, RUNNING, PAUSED, STOPPING, STOPPED, FINISHED, FAILED = Status
LIVE_STATUSES = frozenset({STARTING, RUNNING, PAUSED, STOPPING})
COMMANDS = tuple(command.value for command in Command if command is not Command.SET)  # the ones without arguments

# Unix socket paths are limited to 108 bytes; longer run folders get their socket elsewhere.
SOCKET_PATH_LIMIT = 100
# A summary walking back from the end of a log skips lines longer than this without decoding them.
MAX_SUMMARY_LINE = 1 << 20

ProgressFn = Callable[[int, int, str], None]
"""progress(done, total, message): how a slow engine function reports how far it is."""
ResultFn = Callable[["StepResult"], None]
"""result(step): how a job reports a finished step before its end (engine.job_runner writes a result event)."""


class UserError(Exception):
    """A problem the user can fix; shown as one clear message (and a hint), never a traceback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


# ---------------------------------------------------------------------------------------- events
# Every event carries {"v", "t", "type"}; fields left None are not written. Unknown fields are
# ignored when read (a newer engine may add some); open-ended figures (losses, metrics, options,
# gpus) stay dicts. NaN and inf travel as the strings "nan", "inf", "-inf" (JSON has no literal).
NAN = math.nan


class Event(msgspec.Struct, kw_only=True, tag_field="type"):
    v: int = SCHEMA_VERSION
    t: float = msgspec.field(default_factory=time.time)

    @property
    def type(self) -> EventType:
        return EventType(self.__struct_config__.tag)


class HeaderEvent(Event, tag="header"):
    """Line 1 of every log."""

    schema_version: int | None = None
    source: str = "engine"  # "engine" or "job:<kind>"


class StatusEvent(Event, tag="status"):
    status: Status
    iter: int | None = None
    pid: int | None = None
    host: str | None = None
    job: str | None = None
    options: str | None = None
    params: dict[str, Any] | None = None
    reason: str | None = None
    resumable_from: int | None = None
    error: str | None = None
    hint: str | None = None
    traceback: str | None = None


class RunEvent(Event, tag="run"):
    name: str = ""
    stage: str | None = None
    model_type: str = ""
    start_iter: int = 0
    total_iter: int = 0
    world_size: int = 1
    device: str = ""
    batches_per_epoch: int | None = None
    versions: dict[str, Any] = {}
    options: dict[str, Any] = {}
    experiments_root: str | None = None
    log_file: str | None = None


class IterEvent(Event, tag="iter"):
    iter: int
    epoch: int = 0
    total_iter: int = 0
    lr: float | list[float] = NAN  # one per optimizer in old logs: the generator's comes first
    losses: dict[str, float] = {}  # the model's own log keys (classify_loss sorts them)
    it_s: float = NAN
    data_s: float = NAN
    compute_s: float = NAN
    eta_s: float | None = None

    @property
    def generator_lr(self) -> float:
        if isinstance(self.lr, list):
            return self.lr[0] if self.lr else NAN
        return self.lr


class SystemEvent(Event, tag="system"):
    """GPUs as {index, name, mem_alloc, mem_reserved, mem_peak, mem_used, mem_total, util, temp, power,
    power_limit} (bytes, %, degC, W; [] without a GPU), the host's CPU and RAM."""

    gpus: list[dict[str, Any]] = []
    cpu_percent: float = NAN
    rss: int = 0
    ram_used: int = 0
    ram_total: int = 0
    # the engine process and its children (data workers), as nvitop counts a process: CPU % of one core, so
    # 4 busy workers read 400; each GPU entry's "proc_mem" is their memory on that device (NVML's list)
    proc_cpu_percent: float = NAN
    proc_rss: int = 0
    procs: int = 0


class Best(msgspec.Struct):
    value: float
    iter: int = 0


class ValEvent(Event, tag="val"):
    iter: int
    dataset: str = "val"
    metrics: dict[str, float] = {}
    settings: dict[str, Any] = {}
    best: dict[str, Best] = {}
    baselines: dict[str, dict[str, float]] = {}
    images: list[str] = []
    image_psnr: dict[str, float] = {}  # each saved image's PSNR (basicsr's, by the psnr entry), by image name
    # what `metrics` scored: basicsr validates net_g_ema when the model keeps an EMA, else net_g; with an EMA
    # the raw net_g (the weights the ranking and report may pick) is scored too, the same way, in `net_g`
    weights: str = ""
    net_g: dict[str, float] = {}


class CheckpointEvent(Event, tag="checkpoint"):
    iter: int
    net_g: str = ""
    net_g_ema: str | None = None
    state: str = ""


class AlertEvent(Event, tag="alert"):
    code: str
    level: str = "warning"  # "warning" | "error"
    message: str = ""
    hint: str = ""


class SetEvent(Event, tag="set"):
    """A `set` command carried out: from iteration `iter` on, `key` is `value` (it was `previous`)."""

    key: str
    value: float
    previous: float | None = None
    iter: int = 0

    @property
    def summary(self) -> str:
        was = f" (was {self.previous:g})" if self.previous is not None else ""
        return f"set {self.key}={self.value:g}{was} at iteration {self.iter}"


class ProgressEvent(Event, tag="progress"):
    job: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    # a job of several steps (the demo): done/total count within step `step` of `steps`, so a reader can
    # draw the whole job's progress without mistaking a step's own counter for it
    step: int = 0
    steps: int = 0


class ResultEvent(Event, tag="result"):
    """A job's figures; they stand beside "job" in the line, and in `figures` here."""

    job: str = ""
    figures: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        """The figures with the job's name, as the job screens read them."""
        return {"job": self.job, **self.figures}


class StepResult(msgspec.Struct, kw_only=True):
    """One finished step of a job (an export step): its place, verdict and figures, as a result event carries
    them: the figures stand beside the other fields in the line ("step" is the name)."""

    name: str = msgspec.field(name="step")
    title: str = ""
    status: str = "done"  # "running", "done", "warning", "skipped"
    message: str = ""
    index: int = 0  # 1-based
    total: int = 0
    seconds: float = 0.0
    figures: dict[str, Any] = {}

    def fields(self) -> dict[str, Any]:
        """The result event's figures: the step's own beside its place and verdict."""
        record = msgspec.to_builtins(self, enc_hook=_plain)
        figures = record.pop("figures")
        return record | {key: value for key, value in figures.items() if key not in record}

    @classmethod
    def from_figures(cls, figures: Mapping[str, Any]) -> StepResult | None:
        """A result event's figures as a step, or None when they are not a step's."""
        step = figures_as(figures, cls)
        if step is not None:
            named = {field.encode_name for field in msgspec.structs.fields(cls)}
            step.figures = {key: value for key, value in figures.items() if key not in named | _ENVELOPE}
        return step


class LogEvent(Event, tag="log"):
    level: str = "info"
    message: str = ""


# The figures of the rank and promote jobs' result events (engine.rank's RankResult.to_dict and the promote
# job), as the cockpit reads them: figures_as(result.figures, RankFigures).
class Scores(msgspec.Struct):
    psnr: float | None = None
    ssim: float | None = None


class RankedCandidate(msgspec.Struct):
    file: str
    entry: str = ""
    iter: int | None = None  # None: net_g_latest.pth
    rank: int | None = None  # None: unreadable or not scored on every set
    psnr: float | None = None
    ssim: float | None = None
    scores: dict[str, Scores] = {}
    figures: dict[str, float | None] = {}  # NIQE and the artifact figures (engine.metrics.standard_figures)
    flags: list[str] = []  # artifacts above the health limits: ranked after the clean ones
    note: str | None = None
    error: str | None = None  # why it could not be scored


class RankReference(msgspec.Struct):
    label: str
    description: str = ""
    psnr: float | None = None
    ssim: float | None = None
    figures: dict[str, float | None] = {}


class RankValset(msgspec.Struct):
    name: str


class RankFigures(msgspec.Struct):
    candidates: list[RankedCandidate]
    valsets: list[RankValset] = []
    references: list[RankReference] = []
    notes: list[str] = []
    settings: dict[str, Any] = {}
    evaluated: int = 0
    reused: int = 0


class PromoteFigures(msgspec.Struct):
    weights: str
    sidecar: str = ""
    label: str = ""
    iter: int | None = None
    rank: int | None = None
    psnr: float | None = None
    ssim: float | None = None


class ExportSummary(msgspec.Struct):
    """The export job's record (its last result event): the manifest and every step's figures."""

    step: str
    manifest: str | None = None
    figures: dict[str, Any] = {}


F = TypeVar("F", bound=msgspec.Struct)


def figures_as(figures: Mapping[str, Any], kind: type[F]) -> F | None:
    """A job's result figures as the record `kind`, or None when they are another job's (or malformed)."""
    try:
        return msgspec.convert(figures, kind, strict=False)
    except msgspec.ValidationError:
        return None


AnyEvent = Union[HeaderEvent, StatusEvent, RunEvent, IterEvent, SystemEvent, ValEvent, CheckpointEvent,  # noqa: UP007
                 AlertEvent, SetEvent, ProgressEvent, ResultEvent, LogEvent]
_ENVELOPE = frozenset({"v", "t", "type", "job"})
# lax: "nan"/"inf" strings become floats, "3" an int; a wrong type ("x" for an int) still fails
_DECODER = msgspec.json.Decoder(AnyEvent, strict=False)
_RAW_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


def _plain(value: Any) -> Any:
    """What msgspec cannot encode: numpy scalars and arrays by value, anything else (a Path) as its string."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def event_record(event: Event | Mapping[str, Any]) -> dict[str, Any]:
    """The line's fields as plain JSON values: None fields dropped, a result's figures beside "job"."""
    record = msgspec.to_builtins(event, enc_hook=_plain)
    if isinstance(event, ResultEvent):
        record.update({k: v for k, v in record.pop("figures").items() if k not in _ENVELOPE})
    return _json_safe({k: v for k, v in record.items() if v is not None})


def encode_event(event: Event | Mapping[str, Any]) -> bytes:
    """One line of events.jsonl. A mapping is written as it is (tools and tests that craft raw logs)."""
    return _ENCODER.encode(event_record(event)) + b"\n"


def decode_event(line: bytes | str) -> AnyEvent | None:
    """One line as a typed event; None for a torn, foreign or wrong-typed line (a reader skips it)."""
    try:
        event = _DECODER.decode(line)
        if isinstance(event, ResultEvent):
            event.figures = {k: v for k, v in _RAW_DECODER.decode(line).items() if k not in _ENVELOPE}
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[... 100,000 deep
        return None
    return event


def decode_line(line: bytes | str) -> dict[str, Any] | None:
    """One line as the raw record it holds (tests and tools checking the file format); None if torn."""
    try:
        event = _RAW_DECODER.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(event, dict) or "type" not in event:
        return None
    return event


def make_event(kind: str, **fields: Any) -> dict[str, Any]:
    """A raw record as written to events.jsonl (for crafting logs; the engine emits typed events)."""
    return {"v": SCHEMA_VERSION, "t": time.time(), "type": kind, **fields}


def _complete_lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    yield line
    except (FileNotFoundError, IsADirectoryError):
        return


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete, well-formed raw record of a log; a torn last line is skipped."""
    for line in _complete_lines(path):
        event = decode_line(line)
        if event is not None:
            yield event


@dataclass
class EventLog:
    """A whole log read as typed events, with how many lines were skipped (torn, foreign, wrong-typed)."""

    events: list[AnyEvent]
    skipped: int


def load_events(path: Path) -> EventLog:
    events, skipped = [], 0
    for line in _complete_lines(path):
        event = decode_event(line)
        if event is None:
            skipped += bool(line.strip())
        else:
            events.append(event)
    return EventLog(events, skipped)


# The iter index beside an event log (events.iters-000.bin, ...): each iter line's numbers as a row of
# little-endian doubles, so a reader of a long history skips decoding its iter lines. The log stays the
# record: the index is a cache that a reader checks against the log and may ignore. A file holds one set of
# losses; a new set starts the next file. Its first line is a SeriesHeader, padded to a multiple of 8 bytes.
SERIES_FIELDS = ("start", "end", "iter", "epoch", "total_iter", "t", "lr", "it_s", "data_s", "compute_s", "eta_s")
SERIES_FORMAT = "srcockpit-iters"


class SeriesHeader(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An iter index file's first line: its columns are `fields` (the line's byte range in the log, then
    IterEvent's numbers), then one per loss, in this order."""

    format: Literal["srcockpit-iters"] = SERIES_FORMAT
    version: Literal[1] = 1
    fields: tuple[str, ...] = SERIES_FIELDS
    losses: tuple[str, ...]

    @property
    def width(self) -> int:
        return len(self.fields) + len(self.losses)


_SERIES_HEADER = msgspec.json.Decoder(SeriesHeader)


def series_paths(log: Path) -> list[Path]:
    """The index files of a log, in the order they were written."""
    return sorted(log.parent.glob(f"{log.stem}.iters-[0-9][0-9][0-9].bin"))


def series_path(log: Path, number: int) -> Path:
    return log.with_name(f"{log.stem}.iters-{number:03d}.bin")


def encode_series_header(losses: tuple[str, ...]) -> bytes:
    line = _ENCODER.encode(SeriesHeader(losses=losses))
    return line + b" " * (-(len(line) + 1) % 8) + b"\n"


def decode_series_header(data: bytes) -> tuple[SeriesHeader, int] | None:
    """The header at the start of an index file and where its rows begin; None if it is not one."""
    end = data.find(b"\n", 0, 1 << 16) + 1
    if not end or end % 8:
        return None
    try:
        header = _SERIES_HEADER.decode(data[:end])
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return (header, end) if header.fields == SERIES_FIELDS else None


def series_row(event: IterEvent, start: int, end: int, losses: tuple[str, ...]) -> bytes:
    """One iter line's row: the numbers a reader of the line would decode (None and a missing loss: NaN)."""
    eta_s = NAN if event.eta_s is None else event.eta_s
    values = [start, end, event.iter, event.epoch, event.total_iter, event.t, event.generator_lr, event.it_s,
              event.data_s, event.compute_s, eta_s, *(event.losses.get(name, NAN) for name in losses)]
    row = array("d", map(float, values))
    if sys.byteorder == "big":
        row.byteswap()
    return row.tobytes()


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
        # a name of its own: a job's runner and its Job announce the same folder at nearly the same moment
        partial = self.cockpit / f".engine.json.{uuid.uuid4().hex}.partial"
        partial.write_text(json.dumps(fields, indent=2, default=str))
        partial.replace(self.engine_json)

    def engine_info(self) -> dict[str, Any]:
        """engine.json, or {} when the run never started an engine (or the file holds no JSON object)."""
        try:
            info = json.loads(self.engine_json.read_bytes())
        except (OSError, ValueError):  # absent, a folder, unreadable, torn, binary
            return {}
        return info if isinstance(info, dict) else {}


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
        return self.block(max_bytes).split(b"\n")[:-1]

    def block(self, max_bytes: int) -> bytes:
        """The complete lines appended since the last call as one buffer, each ending in a newline."""
        try:
            with open(self.path, "rb") as handle:
                if handle.seek(0, os.SEEK_END) < self.offset:
                    self.offset, self._partial = 0, b""
                handle.seek(self.offset)
                chunk = handle.read(max_bytes)
        except (FileNotFoundError, IsADirectoryError):
            return b""
        self.offset += len(chunk)
        data = self._partial + chunk
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        return data[:end]


class EventFollower(LineFollower):
    """The typed events appended to an event log since the last poll(); `skipped` counts the bad lines."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        super().__init__(path, offset)
        self.skipped = 0

    def poll(self, max_bytes: int = 8 << 20) -> list[AnyEvent]:
        events = []
        for line in self.lines(max_bytes):
            event = decode_event(line)
            if event is not None:
                events.append(event)
            elif line.strip():
                self.skipped += 1
        return events
