"""The series store the widgets read: a run's history folded into bounded memory.

Everything here is plain Python (no Textual), so the headless console, the tests and the bench use it
as it is. A run of 200,000 iterations keeps the same few thousand numbers as a run of 2,000: every
curve is a `Series` of at most `capacity` min/max/mean buckets that merge pairwise when full.
"""

from __future__ import annotations

import bisect
import math
import operator
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from engine.metric_info import metric_info
from engine.protocol import (
    DISCRIMINATOR_KINDS,
    FAILED,
    GENERATOR_KINDS,
    LIVE_STATUSES,
    RUNNING,
    STARTING,
    AlertEvent,
    AnyEvent,
    CheckpointEvent,
    HeaderEvent,
    IterEvent,
    LogEvent,
    ProgressEvent,
    ResultEvent,
    RunEvent,
    StatusEvent,
    SystemEvent,
    ValEvent,
    losses_of_kind,
)

SERIES_CAPACITY = 512  # buckets per curve: more than any terminal is wide in braille dots / 2
VAL_CAPACITY = 400
LOG_LINES = 200
ALERTS = 50
GPU_HISTORY = 120
BULK_POINTS = 1024  # a batch this long goes through numpy (imported then, not at start-up)
RATE_WINDOW_S = 120.0  # the ETA's speed: iterations per second over this much of the latest session


def as_float(value: Any) -> float:
    """A number from an event field; "nan"/"inf" strings (JSON has no literal) become floats; junk NaN."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)) and value:  # one lr per optimizer: the generator's comes first
        return as_float(value[0])
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class Series:
    """A bounded curve: buckets of `stride` consecutive points, each with x range, min, max, sum, count.

    Appending is amortised O(1) and batch appends use C builtins over slices, so replaying 200k points
    costs milliseconds. When the bucket count passes `capacity`, neighbours merge and the stride doubles.
    Non-finite values are counted (`nonfinite`) but kept out of the buckets, so one NaN does not hide a
    curve.
    """

    __slots__ = ("capacity", "count", "counts", "last", "last_x", "maxs", "mins", "nonfinite", "stride",
                 "sums", "x0", "x1")

    def __init__(self, capacity: int = SERIES_CAPACITY) -> None:
        self.capacity = max(4, capacity)
        self.stride = 1
        self.x0: list[float] = []
        self.x1: list[float] = []
        self.mins: list[float] = []
        self.maxs: list[float] = []
        self.sums: list[float] = []
        self.counts: list[int] = []
        self.count = 0
        self.nonfinite = 0
        self.last = math.nan
        self.last_x = math.nan

    def __len__(self) -> int:
        return len(self.counts)

    def append(self, x: float, y: float) -> None:
        self.extend((x,), (y,))

    def extend(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """Append points; a long batch (BULK_POINTS or more, a replay's) goes through numpy arrays: one pass
        over its floats instead of four (their sums may then differ from the list path's in the last bit)."""
        if not len(xs):
            return
        bulk = len(ys) >= BULK_POINTS
        if bulk:
            xs, ys = _finite(self, _column(xs), _column(ys))
        elif not math.isfinite(sum(ys)):  # a NaN or inf anywhere makes the sum non-finite (an overflow: harmless)
            pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(y)]
            self.nonfinite += len(xs) - len(pairs)
            self.last, self.last_x = float(ys[-1]), float(xs[-1])
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            self.last, self.last_x = float(ys[-1]), float(xs[-1])
        n = len(ys)
        if not n:
            return
        i = self._top_up(xs, ys, 0)
        # merge first, then cut the rest at the final stride: at most `capacity` new buckets per call
        while len(self.counts) + -(-(n - i) // self.stride) > self.capacity:
            self._halve()
            i = self._top_up(xs, ys, i)
        if bulk:
            self._cut_arrays(xs, ys, i)
        else:
            self._cut(xs, ys, i)
        self.count += n

    def _cut(self, xs: Sequence[float], ys: Sequence[float], i: int) -> None:
        """ys[i:] as new buckets of the current stride."""
        n, stride = len(ys), self.stride
        starts = range(i, n, stride)
        chunks = [ys[k:k + stride] for k in starts]
        self.x0.extend([xs[k] for k in starts])
        self.x1.extend([xs[min(k + stride, n) - 1] for k in starts])
        self.mins.extend(map(min, chunks))
        self.maxs.extend(map(max, chunks))
        self.sums.extend(map(float, map(sum, chunks)))
        self.counts.extend(map(len, chunks))

    def _cut_arrays(self, xs: Any, ys: Any, i: int) -> None:
        """_cut over numpy arrays: each bucket's statistics by reduceat, stored as Python numbers."""
        import numpy as np

        n = len(ys)
        if i >= n:
            return
        starts = np.arange(i, n, self.stride)
        ends = np.minimum(starts + self.stride, n)
        offsets = starts - i
        self.x0.extend(xs[starts].tolist())
        self.x1.extend(xs[ends - 1].tolist())
        self.mins.extend(np.minimum.reduceat(ys[i:], offsets).tolist())
        self.maxs.extend(np.maximum.reduceat(ys[i:], offsets).tolist())
        self.sums.extend(np.add.reduceat(ys[i:], offsets).tolist())
        self.counts.extend((ends - starts).tolist())

    def _top_up(self, xs: Sequence[float], ys: Sequence[float], i: int) -> int:
        """Fill the last bucket (if it has room) from ys[i:]; returns the index of the first point left."""
        if not self.counts or self.counts[-1] >= self.stride or i >= len(ys):
            return i
        take = min(self.stride - self.counts[-1], len(ys) - i)
        chunk = ys[i:i + take]
        if hasattr(chunk, "tolist"):  # numpy's or array's: Python floats, summed as the list path sums them
            chunk = chunk.tolist()
        self.mins[-1] = min(self.mins[-1], min(chunk))
        self.maxs[-1] = max(self.maxs[-1], max(chunk))
        self.sums[-1] += sum(chunk)
        self.counts[-1] += take
        self.x1[-1] = float(xs[i + take - 1])
        return i + take

    def _halve(self) -> None:
        def pairs(values: list, merge) -> list:
            merged = [merge(values[k], values[k + 1]) for k in range(0, len(values) - 1, 2)]
            if len(values) % 2:
                merged.append(values[-1])
            return merged

        self.x0 = pairs(self.x0, lambda a, b: a)
        self.x1 = pairs(self.x1, lambda a, b: b)
        self.mins = pairs(self.mins, min)
        self.maxs = pairs(self.maxs, max)
        self.sums = pairs(self.sums, lambda a, b: a + b)
        self.counts = pairs(self.counts, lambda a, b: a + b)
        self.stride *= 2

    def xs(self) -> list[float]:
        return [(a + b) / 2 for a, b in zip(self.x0, self.x1, strict=False)]

    def means(self) -> list[float]:
        return [s / c for s, c in zip(self.sums, self.counts, strict=False)]

    def smoothed(self, weight: float) -> list[float]:
        """TensorBoard's debiased exponential moving average over the bucket means (0 = raw)."""
        means = self.means()
        if weight <= 0 or not means:
            return means
        out, last = [], 0.0
        for num, value in enumerate(means, 1):
            last = last * weight + (1 - weight) * value
            out.append(last / (1 - weight**num))
        return out


def _column(values: Sequence[float]) -> Any:
    import numpy as np

    return np.asarray(values, dtype=np.float64)


def _finite(series: Series, xs: Any, ys: Any) -> tuple[Any, Any]:
    """The finite points of numpy columns; the series counts the others and keeps the last point."""
    import numpy as np

    series.last, series.last_x = float(ys[-1]), float(xs[-1])
    finite = np.isfinite(ys)
    if finite.all():
        return xs, ys
    series.nonfinite += len(ys) - int(finite.sum())
    return xs[finite], ys[finite]


def overall_progress(event: ProgressEvent) -> tuple[float, float]:
    """(done, total) of the whole job: in a job of several steps a step's own counter counts within its step,
    so the figure never jumps back to a sub-step's 17/17 or 0/5."""
    if event.steps:
        within = event.done / event.total if event.total > 0 else 0.0
        return event.step - 1 + min(1.0, within), float(event.steps)
    return float(event.done), float(event.total)


@dataclass
class ValPoint:
    iter: int
    psnr: float
    ssim: float
    metrics: dict[str, float] = field(default_factory=dict)  # every val.metrics figure, psnr and ssim too


@dataclass
class DatasetVal:
    """Validation history of one dataset (val events are rare: keep them, thinned past VAL_CAPACITY)."""

    name: str
    points: list[ValPoint] = field(default_factory=list)
    best_psnr: tuple[float, int] | None = None  # (value, iter)
    best_ssim: tuple[float, int] | None = None
    best: dict[str, tuple[float, int]] = field(default_factory=dict)  # every metric's, by its direction
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    image_psnr: dict[int, dict[str, float]] = field(default_factory=dict)  # iter -> image name -> dB (engine's)
    weights: str = ""  # what `points` scored: net_g_ema or net_g ("" in logs older than the label)
    net_g: dict[str, float] = field(default_factory=dict)  # the raw net_g's latest, beside an EMA's points
    best_net_g_psnr: tuple[float, int] | None = None

    def add(self, event: ValEvent) -> None:
        metrics = event.metrics
        self.weights = event.weights or self.weights
        if event.net_g:
            self.net_g = dict(event.net_g)
            raw = as_float(event.net_g.get("psnr"))
            if math.isfinite(raw) and (self.best_net_g_psnr is None or raw > self.best_net_g_psnr[0]):
                self.best_net_g_psnr = (raw, event.iter)
        point = ValPoint(event.iter, metrics.get("psnr", math.nan), metrics.get("ssim", math.nan), dict(metrics))
        self.points.append(point)
        self._best_of_every_metric(event)
        if len(self.points) > VAL_CAPACITY:
            self.points = self.points[:1] + self.points[1:-1:2] + self.points[-1:]
        for key in ("psnr", "ssim"):
            entry = event.best.get(key)
            if entry is not None:
                setattr(self, f"best_{key}", (entry.value, entry.iter))
            else:  # work it out ourselves
                value = getattr(point, key)
                current = getattr(self, f"best_{key}")
                if math.isfinite(value) and (current is None or value > current[0]):
                    setattr(self, f"best_{key}", (value, point.iter))
        if event.baselines:
            self.baselines = event.baselines
        if event.settings:
            self.settings = dict(event.settings)
        if event.images:
            self.images = list(event.images)
        if event.image_psnr:
            self.image_psnr[event.iter] = dict(event.image_psnr)

    def _best_of_every_metric(self, event: ValEvent) -> None:
        """basicsr's record where the event carries it, else the best so far by the metric's direction."""
        for key, value in event.metrics.items():
            entry = event.best.get(key)
            current = self.best.get(key)
            if entry is not None:
                self.best[key] = (entry.value, entry.iter)
            elif math.isfinite(value) and (current is None or metric_info(key, event.settings.get(key))
                                           .is_better(value, current[0])):
                self.best[key] = (value, event.iter)


@dataclass
class GpuState:
    index: int
    sample: dict[str, Any]
    util: deque = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    mem: deque = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))


class RunState:
    """Everything the dashboard shows about one run, folded from its events in order."""

    def __init__(self, name: str = "", capacity: int = SERIES_CAPACITY) -> None:
        self.name = name
        self.capacity = capacity
        self.source = "engine"
        self.schema_version: int | None = None
        self.status = ""
        self.status_event: StatusEvent | None = None
        self.first_t: float | None = None
        self.session_t: float | None = None  # start of the latest engine session (resumes append)
        self.last_t: float | None = None
        self.run = RunEvent(t=0.0)  # an empty one until the log names the run
        self.total_iter = 0
        self.start_iter = 0
        self.iter = 0
        self.epoch = 0
        self.iter_t: float | None = None
        self.lr = math.nan
        self.it_s = math.nan
        self.data_s = math.nan
        self.compute_s = math.nan
        self.eta_s = math.nan
        self.rate_points: deque[tuple[float, float]] = deque()  # (t, iter) of this session's iter events
        self.losses: dict[str, Series] = {}
        self.last_losses: dict[str, float] = {}
        self.lr_series = Series(capacity)
        self.speed = Series(capacity)
        self.data_share = Series(capacity)
        self.system: SystemEvent | None = None
        self.gpus: dict[int, GpuState] = {}
        self.system_seen = False
        self.vals: dict[str, DatasetVal] = {}
        self.last_checkpoint: CheckpointEvent | None = None
        self.checkpoints = 0
        self.alerts: deque[AlertEvent] = deque(maxlen=ALERTS)
        self.logs: deque[tuple[float, str, str]] = deque(maxlen=LOG_LINES)
        self.progress: ProgressEvent | None = None
        self.results: list[ResultEvent] = []
        self.events = 0

    # ----------------------------------------------------------------- derived
    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def elapsed(self, now: float) -> float | None:
        start = self.session_t or self.first_t
        if start is None:
            return None
        end = now if self.live else (self.last_t or start)
        return max(0.0, end - start)

    def rate(self) -> float:
        """Iterations per second over the last RATE_WINDOW_S of this session: steadier than one event's it/s,
        which swings with validations, checkpoints and a busy machine."""
        points = self.rate_points
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return self.it_s
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])

    def eta(self, now: float) -> float | None:
        """Seconds left at the smoothed rate; none unless running (a paused run has no end in sight)."""
        if self.status != RUNNING or not self.total_iter:
            return None
        rate = self.rate()
        if not (math.isfinite(rate) and rate > 0):
            return None if not math.isfinite(self.eta_s) else max(0.0, self.eta_s)
        since = now - self.iter_t if self.iter_t else 0.0
        return max(0.0, (self.total_iter - self.iter) / rate - max(0.0, since))

    def best_psnr(self) -> tuple[float, int] | None:
        bests = [v.best_psnr for v in self.vals.values() if v.best_psnr]
        return max(bests) if bests else None

    def generator_losses(self) -> tuple[str, ...]:
        """The generator's losses this run logs (pixel, perceptual, style, GAN...), by the shared classification."""
        return losses_of_kind(self.losses, GENERATOR_KINDS)

    def discriminator_losses(self) -> tuple[str, ...]:
        return losses_of_kind(self.losses, DISCRIMINATOR_KINDS)

    def stored_points(self) -> int:
        """How many numbers the curves hold (the bound a 200k-iteration replay is tested against)."""
        series = [*self.losses.values(), self.lr_series, self.speed, self.data_share]
        return sum(len(s) for s in series) + sum(len(v.points) for v in self.vals.values())

    # ----------------------------------------------------------------- folding
    def apply_all(self, events: Iterable[AnyEvent]) -> None:
        """Fold events in order; runs of iter events go in as one columnar batch."""
        pending: list[IterEvent] = []
        for event in events:
            if isinstance(event, IterEvent):
                pending.append(event)
                continue
            if pending:
                self.apply_iters(IterColumns.from_events(pending))
                pending = []
            self.apply(event)
        if pending:
            self.apply_iters(IterColumns.from_events(pending))

    def _touch(self, event: AnyEvent) -> None:
        self.events += 1
        if self.first_t is None:
            self.first_t = event.t
        self.last_t = event.t

    def apply(self, event: AnyEvent) -> None:
        if isinstance(event, IterEvent):
            self.apply_iters(IterColumns.from_events([event]))
            return
        self._touch(event)
        match event:
            case HeaderEvent():
                self.schema_version, self.source = event.schema_version, event.source
            case StatusEvent():
                self.apply_status(event)
            case RunEvent():
                self.apply_run(event)
            case SystemEvent():
                self.apply_system(event)
            case ValEvent():
                self.vals.setdefault(event.dataset, DatasetVal(event.dataset)).add(event)
            case CheckpointEvent():
                self.last_checkpoint = event
                self.checkpoints += 1
            case AlertEvent():
                self.alerts.append(event)
            case LogEvent():
                self.logs.append((event.t, event.level, event.message))
            case ProgressEvent():
                self.progress = event
            case ResultEvent():
                self.results.append(event)
                del self.results[:-20]

    def apply_status(self, event: StatusEvent) -> None:
        self.status = event.status
        self.status_event = event
        if self.status == STARTING or (self.status == RUNNING and self.session_t is None):
            self.session_t = event.t
        if event.iter is not None and (self.iter_t is None or event.t >= self.iter_t):
            self.iter = event.iter  # a replay posts the status last: an older status must not rewind the iteration
        if self.status != RUNNING:
            self.rate_points.clear()  # a pause or a new session: its gap is no speed

    def apply_run(self, event: RunEvent) -> None:
        self.run = event
        self.name = event.name or self.name
        self.total_iter = event.total_iter or self.total_iter
        self.start_iter = event.start_iter
        self.iter = max(self.iter, self.start_iter)
        self.rate_points.clear()
        self.session_t = event.t

    def apply_system(self, event: SystemEvent) -> None:
        self.system = event
        self.system_seen = True
        seen = set()
        for gpu in event.gpus:
            index = int(as_float(gpu.get("index", len(seen))))
            seen.add(index)
            state = self.gpus.setdefault(index, GpuState(index, gpu))
            state.sample = gpu
            state.util.append(as_float(gpu.get("util")))
            total = as_float(gpu.get("mem_total"))
            used = as_float(gpu.get("mem_used", gpu.get("mem_reserved")))
            state.mem.append(100 * used / total if total and math.isfinite(total) and total > 0 else math.nan)
        for index in set(self.gpus) - seen:
            del self.gpus[index]

    def apply_iters(self, batch: IterColumns) -> None:
        if not batch.iters:
            return
        self.events += len(batch.iters)
        if self.first_t is None:
            self.first_t = batch.t[0]
        self.last_t = batch.t[-1]
        self.iter_t = batch.t[-1]
        xs = _column(batch.iters) if len(batch.iters) >= BULK_POINTS else batch.iters  # once for every curve
        self.iter = int(batch.iters[-1])
        self.epoch = batch.epoch
        if batch.total_iter:
            self.total_iter = batch.total_iter
        for name, values in batch.losses.items():
            series = self.losses.get(name)
            if series is None:
                series = self.losses[name] = Series(self.capacity)
            if len(values) == len(xs):
                series.extend(xs, values)
            self.last_losses[name] = values[-1]
        self._rate_window(batch.t, batch.iters)
        self.lr_series.extend(xs, batch.lr)
        self.speed.extend(xs, batch.it_s)
        self.data_share.extend(xs, data_shares(batch.data_s, batch.compute_s))
        self.lr, self.it_s = batch.lr[-1], batch.it_s[-1]
        self.data_s, self.compute_s, self.eta_s = batch.data_s[-1], batch.compute_s[-1], batch.eta_s[-1]
        if self.status == "" and self.iter:
            self.status = RUNNING


    def _rate_window(self, ts: Sequence[float], xs: Sequence[float]) -> None:
        """Keep the (t, iter) points of the last RATE_WINDOW_S. A long batch in time order after the points
        kept (a replay's) skips, before its points become tuples, those a second or more older than the
        window; the loop below drops the rest exactly as it always did."""
        first = 0
        points = self.rate_points
        if len(ts) > 64 and (not points or points[-1][0] <= ts[0]) and all(map(operator.le, ts, islice(ts, 1, None))):
            first = bisect.bisect_left(ts, ts[-1] - RATE_WINDOW_S - 1.0)
            if first:
                points.clear()  # each is older than ts[first - 1]: outside the window too
        points.extend(zip(islice(ts, first, None), islice(xs, first, None), strict=False))
        while points and points[-1][0] - points[0][0] > RATE_WINDOW_S:
            points.popleft()


def data_shares(data_s: Sequence[float], compute_s: Sequence[float]) -> Sequence[float]:
    """Each point's share of time spent waiting for data (NaN where the times are not positive)."""
    if len(data_s) >= BULK_POINTS:
        import numpy as np

        data, totals = _column(data_s), _column(data_s) + _column(compute_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, data / totals, np.nan)
    totals = list(map(operator.add, data_s, compute_s))
    if sum(map((0.0).__lt__, totals)) == len(totals):  # every total positive (a NaN is not): one division each
        return list(map(operator.truediv, data_s, totals))
    return [d / total if total > 0 else math.nan for d, total in zip(data_s, totals, strict=False)]


@dataclass
class IterColumns:
    """A run of iter events as columns: what IterBatch carries from the tailer thread to the screen. A column
    is a list of floats, or an array of doubles where the tailer decoded a batch of lines."""

    iters: Sequence[float] = field(default_factory=list)
    t: Sequence[float] = field(default_factory=list)
    lr: Sequence[float] = field(default_factory=list)
    it_s: Sequence[float] = field(default_factory=list)
    data_s: Sequence[float] = field(default_factory=list)
    compute_s: Sequence[float] = field(default_factory=list)
    eta_s: Sequence[float] = field(default_factory=list)
    losses: dict[str, Sequence[float]] = field(default_factory=dict)
    epoch: int = 0
    total_iter: int = 0

    @classmethod
    def from_events(cls, events: Sequence[IterEvent]) -> IterColumns:
        """One map per column (attribute reads in C, no per-event Python frame)."""
        if not events:
            return cls()
        lr = list(map(_LR, events))
        if list in set(map(type, lr)):  # old logs: one lr per optimizer, the generator's first
            lr = [event.generator_lr for event in events]
        eta_s = list(map(_ETA, events))
        if None in eta_s:
            eta_s = [math.nan if value is None else value for value in eta_s]
        return cls(list(map(float, map(_ITER, events))), list(map(_T, events)), lr, list(map(_IT_S, events)),
                   list(map(_DATA_S, events)), list(map(_COMPUTE_S, events)), eta_s,
                   _loss_columns(events),
                   events[-1].epoch, events[-1].total_iter)

    @classmethod
    def concat(cls, parts: Sequence[IterColumns]) -> IterColumns:
        """Consecutive batches as one, in order, as arrays of doubles; a loss some batch lacks is NaN over
        that batch's points."""
        if len(parts) == 1:
            return parts[0]
        joined = cls(*(array("d") for _ in range(7)), epoch=parts[-1].epoch, total_iter=parts[-1].total_iter)
        names = dict.fromkeys(name for part in parts for name in part.losses)
        joined.losses = {name: array("d") for name in names}
        for part in parts:
            for column in ("iters", "t", "lr", "it_s", "data_s", "compute_s", "eta_s"):
                getattr(joined, column).extend(getattr(part, column))
            for name, values in joined.losses.items():
                values.extend(part.losses.get(name) or array("d", [math.nan]) * len(part.iters))
        return joined


_LOSSES = operator.attrgetter("losses")
_ITER, _T, _LR, _ETA = (operator.attrgetter(name) for name in ("iter", "t", "lr", "eta_s"))
_IT_S, _DATA_S, _COMPUTE_S = (operator.attrgetter(name) for name in ("it_s", "data_s", "compute_s"))


def _loss_columns(events: Sequence[IterEvent]) -> dict[str, list[float]]:
    """One column per loss; a loss missing from some events (it appears late, or stops) is NaN there."""
    names = tuple(events[0].losses)
    if set(map(len, map(_LOSSES, events))) == {len(names)}:  # the usual case: every event, the same losses
        try:
            losses = list(map(_LOSSES, events))
            return {name: list(map(operator.itemgetter(name), losses)) for name in names}
        except KeyError:  # as many losses, other names
            pass
    union = dict.fromkeys(name for event in events for name in event.losses)
    return {name: [event.losses.get(name, math.nan) for event in events] for name in union}
