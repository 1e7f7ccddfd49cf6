"""The JSONL tail worker (Toolong's LogLines.run_scan): reads events.jsonl from the last offset in a
thread, keeps a torn last line for later, and posts typed messages; the UI never blocks on a read.

`Tailer.poll()` is pure (no Textual App needed): it turns what was appended since the last call into
messages. `Tailer.follow()` is the loop a thread worker runs: poll, post, sleep, and sleep longer while
the receiver's queue is deep, so a 200k-iteration history cannot flood the screen.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import re
import time
import typing
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
from textual.message import Message

from engine.protocol import (
    NAN,
    AlertEvent,
    AnyEvent,
    CheckpointEvent,
    EventFollower,
    HeaderEvent,
    IterEvent,
    LineFollower,
    LogEvent,
    ResultEvent,
    RunEvent,
    RunPaths,
    SetEvent,
    StatusEvent,
    SystemEvent,
    ValEvent,
    decode_event,
)
from tui.iter_index import read_index
from tui.messages import (
    AlertsRaised,
    Backlog,
    Checkpointed,
    IterBatch,
    LogLines,
    OtherEvents,
    RunInfo,
    RunStatus,
    SystemSample,
    TailCaughtUp,
    ValResults,
)
from tui.state import LOG_LINES, IterColumns, RunState

ENGINE_LOG_TAIL = 32 << 10  # bytes of engine.log (and of basicsr's train log) shown on attach
# basicsr's record format, '%(asctime)s %(levelname)s: %(message)s' (basicsr.utils.logger.get_root_logger)
BASICSR_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d{3} ([A-Z]+): (.*)$")
CONTINUED = "more"  # the level of a record's second and later lines (an options dump, a warning's source line)


class TextFollower(LineFollower):
    """engine.log: new complete lines since the last poll; starts near the end of a long file."""

    def __init__(self, path: Path, tail_bytes: int = ENGINE_LOG_TAIL) -> None:
        super().__init__(path)
        self.tail_bytes = tail_bytes
        self._started = False

    def poll(self, max_bytes: int = 1 << 20) -> list[str]:
        skip_first = False
        if not self._started:  # the file may not exist yet: place the start when it does
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return []
            self.offset, self._started = max(0, size - self.tail_bytes), True
            skip_first = self.offset > 0
        lines = self.lines(max_bytes)
        if skip_first and lines:
            lines.pop(0)  # we started mid-line
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]


class IterRow(msgspec.Struct, kw_only=True, gc=False):
    """An iter line as the tailer reads it: IterEvent's fields the screen uses, in a struct the cyclic GC
    does not track (it holds floats and a dict of floats: no cycle can form). Most lines of a log are
    iter lines: this decodes them about 1.6x faster than the tagged union of every event type."""

    type: Literal["iter"]  # a field, not a tag: a tag may be missing from a single struct's line, this may not
    t: float = msgspec.field(default_factory=time.time)
    iter: int
    epoch: int = 0
    total_iter: int = 0
    lr: float | list[float] = NAN
    losses: dict[str, float] = {}
    it_s: float = NAN
    data_s: float = NAN
    compute_s: float = NAN
    eta_s: float | None = None

    @property
    def generator_lr(self) -> float:
        if isinstance(self.lr, list):
            return self.lr[0] if self.lr else NAN
        return self.lr


_ITER_ROW = msgspec.json.Decoder(IterRow, strict=False)  # lax as the protocol's: "nan" strings are floats
ITER_MARK = b'"type":"iter"'  # how the engine writes an iter line; a line without it takes the per-line path
ITER_BATCH = 2048  # lines per decode call: a few ms holding the GIL, so the screen's loop keeps its turn
IDLE_WAIT_S = 1.0  # the longest wait between two polls of a log that has not grown
ITER_BATCH_MIN = 16  # fewer (a live run's poll) decode line by line: no second decode of the first line
PIECE_BYTES = 256 << 10  # a decode call's share of the log: about 800 lines, a few ms holding the GIL
PIECE_MIN = 16 << 10  # less new log than this (a live run's poll) goes line by line


_ROW_FIELDS = (("iter", int), ("t", float, msgspec.field(default_factory=time.time)), ("epoch", int, 0),
               ("total_iter", int, 0), ("lr", float, NAN))
_TIME_FIELDS = (("it_s", float, NAN), ("data_s", float, NAN), ("compute_s", float, NAN), ("eta_s", float | None, None))
_OTHER_EVENTS = tuple(kind for kind in typing.get_args(AnyEvent) if kind is not IterEvent)


def _iter_line(names: tuple[str, ...], tagged: bool) -> type[msgspec.Struct]:
    """An iter line whose losses are exactly `names` (or fewer: NaN), as a struct the cyclic GC does not
    track: a batch allocates no dict. Another loss name, a list lr or any other surprise fails the decode."""
    fields = {f"f{index}": name for index, name in enumerate(names)}
    losses = msgspec.defstruct("Losses", [(field, float, NAN) for field in fields], rename=fields, gc=False,
                               forbid_unknown_fields=True)
    kind = () if tagged else (("type", Literal["iter"]),)
    columns = [*kind, *_ROW_FIELDS, ("losses", losses, msgspec.field(default_factory=losses)), *_TIME_FIELDS]
    if tagged:
        return msgspec.defstruct("IterLine", columns, kw_only=True, gc=False, tag_field="type", tag="iter")
    return msgspec.defstruct("IterLine", columns, kw_only=True, gc=False)


@functools.lru_cache(maxsize=8)
def _batch_decoder(names: tuple[str, ...]) -> msgspec.json.Decoder:
    """A JSON array of iter lines (the lines of a run of them, joined)."""
    return msgspec.json.Decoder(list[_iter_line(names, tagged=False)], strict=False)


@functools.lru_cache(maxsize=8)
def _piece_decoder(names: tuple[str, ...]) -> tuple[msgspec.json.Decoder, type[msgspec.Struct]]:
    """Newline-delimited events of every type, iter lines as `_iter_line`s: a piece of the log in one call."""
    row = _iter_line(names, tagged=True)
    return msgspec.json.Decoder(typing.Union[(row, *_OTHER_EVENTS)], strict=False), row


def decode_iter_lines(lines: list[bytes]) -> IterColumns | None:
    """Iter lines as columns in one decode call (the same numbers the per-line path gives), or None when
    any line is not a plain iter line of the first line's losses: the caller decodes those one by one."""
    try:
        names = tuple(_ITER_ROW.decode(lines[0]).losses)
        rows = _batch_decoder(names).decode(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if len(rows) != len(lines):  # a line holding two objects: per line, it is refused
        return None
    return row_columns(rows, names)


def row_columns(rows: list[Any], names: tuple[str, ...]) -> IterColumns:
    """Decoded iter lines as columns of doubles, taken while the batch's numbers are still in the CPU's
    cache: the series store reads them through numpy without touching a Python float again."""
    structs = list(map(_LOSSES, rows))
    eta_s = list(map(_ETA, rows))
    if None in eta_s:
        eta_s = [NAN if value is None else value for value in eta_s]

    def column(values: Iterable[float]) -> array:
        return array("d", list(values))  # from a list: the array's fast path

    return IterColumns(column(map(_ITER, rows)), column(map(_T, rows)), column(map(_LR, rows)),
                       column(map(_IT_S, rows)), column(map(_DATA_S, rows)), column(map(_COMPUTE_S, rows)),
                       column(eta_s), {name: column(map(operator.attrgetter(f"f{index}"), structs))
                                       for index, name in enumerate(names)}, rows[-1].epoch, rows[-1].total_iter)


_ITER, _T, _LR, _LOSSES, _ETA = (operator.attrgetter(name) for name in ("iter", "t", "lr", "losses", "eta_s"))
_IT_S, _DATA_S, _COMPUTE_S = (operator.attrgetter(name) for name in ("it_s", "data_s", "compute_s"))
_IN_ORDER = (HeaderEvent, RunEvent, ResultEvent)  # a piece holding one takes the line-by-line path
# how the engine writes those lines' types, and an iter line's: a stretch of the log between indexed iter lines
# that holds one is decoded line by line in its place
_PLACED_MARKS = (ITER_MARK, *(f'"type":"{kind.__struct_config__.tag}"'.encode() for kind in _IN_ORDER))


class TailFollower(EventFollower):
    """The event log's new lines, a piece of PIECE_BYTES at a time in one decode call: runs of iter lines as
    IterColumns, any other line as its typed event. A piece that call refuses (a torn or blank line, a new
    loss, a header, run or result event) goes line by line, runs of iter lines still in batches."""

    _names: tuple[str, ...] | None = None  # the losses of the last iter line seen
    index = True  # the first poll reads the history through the engine's iter index where it agrees with the log

    def poll(self, max_bytes: int = 8 << 20) -> list[AnyEvent | IterRow | IterColumns]:
        if self.index and self.offset == 0:
            self.index = False  # once, from the log's start: a live run's later lines come a few at a time
            events = self._from_index()
            if events is not None:
                return events
        block = self.block(max_bytes)
        events: list[AnyEvent | IterRow | IterColumns] = []
        if len(block) < PIECE_MIN:  # a live run's few new lines
            self._decode_lines(block.split(b"\n")[:-1], events)
            return events
        start = 0
        while start < len(block):
            end = block.find(b"\n", start + PIECE_BYTES) + 1 or len(block)
            piece = block[start:end]
            if not self._decode_piece(piece, events):
                self._decode_lines(piece.split(b"\n")[:-1], events)
            start = end
        return events

    def _from_index(self) -> list[AnyEvent | IterRow | IterColumns] | None:
        """The history up to the index's last row: its rows as columns, and the lines between them decoded
        here. Stretches holding an iter line the index lacks, or an event whose order against the iters
        matters (header, run, result), are decoded line by line in their place; the rest in one call."""
        indexed = read_index(self.path)
        if indexed is None:
            return None
        events: list[AnyEvent | IterRow | IterColumns] = []
        placed: list[tuple[int, bytes]] = []
        plain: list[bytes] = []
        for row, gap in indexed.gaps:
            if any(mark in gap for mark in _PLACED_MARKS):
                placed.append((row, gap))
            else:
                plain.append(gap)
        rest = b"".join(plain)
        done = 0
        for row, gap in placed:
            events.extend(indexed.batches(done, row))
            self._decode_lines(gap.split(b"\n")[:-1], events)
            done = row
        events.extend(indexed.batches(done, indexed.rows))
        if rest and not self._decode_piece(rest, events):
            self._decode_lines(rest.split(b"\n")[:-1], events)
        self.offset = indexed.end
        return events

    def _decode_piece(self, piece: bytes, events: list[AnyEvent | IterRow | IterColumns]) -> bool:
        names = self._names if self._names is not None else _first_losses(piece)
        decoder, row = _piece_decoder(names)
        try:
            decoded = decoder.decode_lines(piece)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            self._names = None  # perhaps a new loss: the next piece looks again
            return False
        if len(decoded) != piece.count(b"\n"):  # a blank line, or two objects on one: per line, as ever
            return False
        rows = [event for event in decoded if type(event) is row]
        if len(rows) < len(decoded):
            others = [event for event in decoded if type(event) is not row]
            if any(isinstance(event, _IN_ORDER) for event in others):
                return False
            events.extend(others)
        if rows:
            self._names = names
            events.append(row_columns(rows, names))
        return True

    def _decode_lines(self, lines: list[bytes], events: list[AnyEvent | IterRow | IterColumns]) -> None:
        pending: list[bytes] = []
        start = 0
        others = [index for index, line in enumerate(lines) if ITER_MARK not in line or line[-1:] != b"}"]
        for index in [*others, len(lines)]:
            pending += lines[start:index]
            start = index + 1
            if index == len(lines):
                break
            event = self._decode(lines[index])
            if isinstance(event, (IterRow, IterEvent, HeaderEvent, RunEvent)):  # the iters' order against these
                self._decode_iters(pending, events)
                pending = []
            if event is not None:
                events.append(event)
        self._decode_iters(pending, events)

    def _decode_iters(self, lines: list[bytes], events: list[AnyEvent | IterRow | IterColumns]) -> None:
        for start in range(0, len(lines), ITER_BATCH):
            batch = lines[start:start + ITER_BATCH]
            columns = decode_iter_lines(batch) if len(batch) >= ITER_BATCH_MIN else None
            if columns is not None:
                events.append(columns)
                continue
            for line in batch:
                event = self._decode(line)
                if event is not None:
                    events.append(event)

    def _decode(self, line: bytes) -> AnyEvent | IterRow | None:
        try:
            return _ITER_ROW.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # another type, or a bad line
            event = decode_event(line)
        if event is None and line.strip():
            self.skipped += 1
        return event


def _first_losses(piece: bytes) -> tuple[str, ...]:
    """The loss names of the piece's first iter line (none if it has none, or the line is odd)."""
    at = piece.find(ITER_MARK)
    if at < 0:
        return ()
    line = piece[piece.rfind(b"\n", 0, at) + 1:piece.find(b"\n", at)]
    try:
        return tuple(_ITER_ROW.decode(line).losses)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return ()


class BasicsrLog:
    """basicsr's own log of the run, experiments/NAME/train_NAME_<time>.log, as (time, level, message) lines.

    Every kind of run writes it (a detached engine, --no-ui, torchrun's rank 0, a chain's or the demo's
    stages), so the log panel reads it rather than the engine's stderr. The file is the one the newest run
    event names (a resume starts a new one), else the newest in the folder (the engine logs while it builds
    its data and model, before its run event).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.follower: TextFollower | None = None
        self._level, self._t = "info", 0.0

    def use(self, log_file: str | None) -> None:
        """The file a run event names; looked up in the run's folder first (the folder may have moved)."""
        if not log_file:
            return
        path = self.root / Path(log_file).name
        path = path if path.exists() else Path(log_file)
        if self.follower is None or self.follower.path != path:
            self.follower = TextFollower(path)

    def _newest(self) -> Path | None:
        logs = []
        for path in self.root.glob("train_*.log"):
            with contextlib.suppress(OSError):  # moved aside between the listing and the stat
                logs.append((path.stat().st_mtime, path))
        return max(logs)[1] if logs else None

    def poll(self) -> list[tuple[float, str, str]]:
        if self.follower is None:
            newest = self._newest()
            if newest is None:
                return []
            self.follower = TextFollower(newest)
        lines = []
        for line in self.follower.poll():
            record = BASICSR_RECORD.match(line)
            if record:
                stamp, level, message = record.groups()
                self._level = level.lower()
                with contextlib.suppress(ValueError):
                    self._t = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
                lines.append((self._t, self._level, message))
            elif line.strip():
                lines.append((self._t, CONTINUED, line))
        return lines

    @property
    def found(self) -> bool:
        return self.follower is not None


class _IterRun:
    """A poll's iters up to a header or run event, in order: batches decoded as columns, and runs of iter
    events decoded one by one."""

    def __init__(self) -> None:
        self.rows: list[IterEvent | IterRow] = []
        self.columns: list[IterColumns] = []

    def add(self, event: IterColumns | IterEvent | IterRow) -> None:
        if isinstance(event, IterColumns):
            self._close_rows()
            self.columns.append(event)
        else:
            self.rows.append(event)

    def _close_rows(self) -> None:
        if self.rows:
            self.columns.append(IterColumns.from_events(self.rows))
            self.rows = []

    def take(self) -> IterColumns | None:
        """Everything added since the last take, as one batch (None if nothing was)."""
        self._close_rows()
        columns, self.columns = self.columns, []
        return IterColumns.concat(columns) if columns else None


def split_events(run: str, events: list[AnyEvent | IterRow | IterColumns], replayed: bool = False) -> list[Message]:
    """One poll's events as at most a handful of messages, order kept where it matters."""
    messages: list[Message] = []
    iters = _IterRun()
    vals: list[ValEvent] = []
    alerts: list[AlertEvent] = []
    logs: list[tuple[float, str, str]] = []
    other: list[AnyEvent] = []
    status: StatusEvent | None = None
    system: SystemEvent | None = None
    checkpoint: CheckpointEvent | None = None
    checkpoints = 0

    def flush_iters() -> None:
        batch = iters.take()
        if batch is not None:
            messages.append(IterBatch(run, batch))

    for event in events:
        match event:
            case IterColumns() | IterRow() | IterEvent():
                iters.add(event)
            case HeaderEvent() | RunEvent():
                flush_iters()  # a resume's run event must come after the iters before it
                messages.append(RunInfo(run, event))
            case StatusEvent():
                status = event
            case SystemEvent():
                system = event
            case ValEvent():
                vals.append(event)
            case CheckpointEvent():
                checkpoint, checkpoints = event, checkpoints + 1
            case AlertEvent():
                alerts.append(event)
            case LogEvent():
                logs.append((event.t, event.level, event.message))
            case SetEvent():  # a change the user made: in the log panel, where a replay shows when and what
                logs.append((event.t, "info", event.summary))
            case _:
                other.append(event)
    flush_iters()
    if system is not None:
        messages.append(SystemSample(run, system))
    if vals:
        messages.append(ValResults(run, vals))
    if checkpoint is not None:
        messages.append(Checkpointed(run, checkpoint, checkpoints))
    if alerts:
        messages.append(AlertsRaised(run, alerts[-50:], replayed))
    if logs:
        messages.append(LogLines(run, logs[-LOG_LINES:]))
    if other:
        messages.append(OtherEvents(run, other))
    if status is not None:  # last: a final status sees every point before it
        messages.append(RunStatus(run, status.status, status))
    return messages


class Tailer:
    """Follows one run's events.jsonl (and engine.log) and turns new lines into messages."""

    def __init__(self, paths: RunPaths, chunk_bytes: int = 4 << 20, engine_log: bool = True) -> None:
        self.paths = paths
        self.run = str(paths.root)
        self.events = TailFollower(paths.events)
        self.engine_log = TextFollower(paths.engine_log) if engine_log else None
        self.basicsr_log = BasicsrLog(paths.root) if engine_log else None
        self.chunk_bytes = chunk_bytes
        self.caught_up = False
        self.count = 0
        self.started = time.perf_counter()

    def poll(self) -> list[Message]:
        events = self.events.poll(self.chunk_bytes)
        self.count += sum(len(event.iters) if isinstance(event, IterColumns) else 1 for event in events)
        behind = self._behind()
        messages = split_events(self.run, events, replayed=not self.caught_up)
        lines = self._log_lines(events)
        if lines:
            messages.append(LogLines(self.run, lines[-LOG_LINES:]))
        if not self.caught_up and not behind:
            self.caught_up = True
            messages.append(TailCaughtUp(self.run, self.count, time.perf_counter() - self.started))
        return messages

    def _log_lines(self, events: list[AnyEvent]) -> list[tuple[float, str, str]]:
        """basicsr's train log, then what else the engine printed: engine.log's copies of basicsr's records
        (its warnings, also in the train log) are left out once the train log is followed."""
        if self.engine_log is None or self.basicsr_log is None:
            return []
        for event in events:
            if isinstance(event, RunEvent):
                self.basicsr_log.use(event.log_file)
        lines = self.basicsr_log.poll()
        found = self.basicsr_log.found
        lines += [(time.time(), "engine", line) for line in self.engine_log.poll()
                  if line.strip() and not (found and BASICSR_RECORD.match(line))]
        return lines

    def _behind(self) -> bool:
        try:
            return self.paths.events.stat().st_size > self.events.offset
        except FileNotFoundError:
            return False

    def follow(self, post: Callable[[Message], Any], cancelled: Callable[[], bool],
               queue_size: Callable[[], int] = lambda: 0, interval: float = 0.25,
               backlog: RunState | None = None) -> None:
        """The worker loop: until cancelled, post what is new; back off while the receiver is busy.

        With `backlog`, the history already in the log is folded into that state here, in this thread,
        and posted as one Backlog: the screen draws it once instead of queueing, applying and redrawing
        a few hundred batches (a 200k-iteration log: about 3x sooner to the first full draw).
        Each empty poll doubles the wait before the next, up to IDLE_WAIT_S: a finished or paused run
        costs a poll a second, and new events after a quiet spell show within that second."""
        if backlog is not None:
            self._post_backlog(post, cancelled, backlog)
        wait = interval
        while not cancelled():
            while queue_size() > 16 and not cancelled():
                time.sleep(0.02)
            messages = self.poll()
            for message in messages:
                post(message)
            wait = interval if messages else min(2 * wait, max(interval, IDLE_WAIT_S))
            if not messages or self.caught_up:
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and not cancelled():
                    time.sleep(min(0.1, wait))

    def _post_backlog(self, post: Callable[[Message], Any], cancelled: Callable[[], bool], state: RunState) -> None:
        lines: deque[tuple[float, str, str]] = deque(maxlen=LOG_LINES)
        caught: list[Message] = []
        while not self.caught_up and not cancelled():
            for message in self.poll():
                if isinstance(message, LogLines):
                    lines.extend(message.lines)
                elif isinstance(message, TailCaughtUp):
                    caught.append(message)
                else:
                    fold(message, state)
        post(Backlog(self.run, state, list(lines)))
        for message in caught:
            post(message)


def fold(message: Message, state: RunState) -> None:
    """One tailer message into a state, as the dashboard's handlers fold it (log lines aside)."""
    if isinstance(message, IterBatch):
        state.apply_iters(message.columns)
    elif isinstance(message, Checkpointed):
        state.apply(message.event)
        state.checkpoints += message.count - 1
    elif hasattr(message, "event"):
        state.apply(message.event)
    elif isinstance(getattr(message, "events", None), list):
        state.apply_all(message.events)


def read_all(tailer: Tailer, state: RunState) -> RunState:
    """Fold a whole log into state without a UI, as attaching does (tests and the bench replay this way)."""
    while not tailer.caught_up:
        for message in tailer.poll():
            fold(message, state)
    return state
