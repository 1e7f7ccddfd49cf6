"""The engine's iter index (engine.protocol's series format) read against its event log: the rows of a long
history without decoding its iter lines, and the other lines between them, to be decoded as ever.

The log is the record and the index a cache, so every row is checked against the log before it is used:
its byte range must hold a whole line that starts with "{" (the last one is decoded and compared), the
ranges must rise and must not overlap. Any doubt returns None, and the caller reads the log alone. Rows
the index lacks (a writer killed between a line and its row, a disk that filled) leave their iter lines in
the gaps, where the caller decodes them in order.
"""

from __future__ import annotations

import mmap
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.protocol import SERIES_FIELDS, IterEvent, decode_event, decode_series_header, series_paths
from tui.state import IterColumns

if TYPE_CHECKING:
    import numpy as np

_T = SERIES_FIELDS.index("t")
_COLUMNS = ("iter", "t", "lr", "it_s", "data_s", "compute_s", "eta_s")  # IterColumns' own, in its order


@dataclass
class Segment:
    """One index file's rows, checked: a (rows, columns) array of doubles and the losses its last columns hold."""

    losses: tuple[str, ...]
    rows: np.ndarray

    def column(self, name: str, first: int, stop: int) -> array:
        """Rows first..stop-1 of a column as an array of doubles (what the series store takes in bulk)."""
        import numpy as np

        index = SERIES_FIELDS.index(name) if name in _COLUMNS else len(SERIES_FIELDS) + self.losses.index(name)
        return array("d", np.ascontiguousarray(self.rows[first:stop, index]).tobytes())

    def last(self, field: str, stop: int) -> int:
        return int(self.rows[stop - 1, SERIES_FIELDS.index(field)])


@dataclass
class IndexedLog:
    """A log's history up to `end` (the byte after the last indexed line): the rows, segment by segment,
    and each stretch of other lines as (the row it precedes, its bytes)."""

    segments: list[Segment]
    gaps: list[tuple[int, bytes]]
    end: int

    @property
    def rows(self) -> int:
        return sum(len(segment.rows) for segment in self.segments)

    def batches(self, first: int, stop: int) -> list[IterColumns]:
        """Rows first..stop-1 (numbered across the files) as one batch per file they fall in."""
        batches = []
        for segment in self.segments:
            count = len(segment.rows)
            low, high = max(first, 0), min(stop, count)
            if low < high:
                batches.append(IterColumns(*(segment.column(name, low, high) for name in _COLUMNS),
                                           {name: segment.column(name, low, high) for name in segment.losses},
                                           segment.last("epoch", high), segment.last("total_iter", high)))
            first, stop = first - count, stop - count
        return batches


def _segments(log: Path) -> list[Segment]:
    """Every readable index file's whole rows; a file with no header of ours is left out (its lines are
    then in the gaps). numpy is imported here, in the tailer's thread, not at the cockpit's start."""
    import numpy as np

    segments = []
    for path in series_paths(log):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found = decode_series_header(data)
        if found is None:
            continue
        header, start = found
        count = (len(data) - start) // (8 * header.width)
        if count:
            rows = np.frombuffer(data, "<f8", count * header.width, start).reshape(count, header.width)
            segments.append(Segment(header.losses, rows))
    return segments


def read_index(log: Path) -> IndexedLog | None:
    """The log's history as its index tells it, once the index agrees with the log; None otherwise."""
    segments = _segments(log)
    if not segments:
        return None
    try:
        with open(log, "rb") as handle:
            view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # gone, or empty (mmap of nothing)
        return None
    with view:
        return _checked(view, segments)


def _checked(view: mmap.mmap, segments: list[Segment]) -> IndexedLog | None:
    import numpy as np

    spans = np.concatenate([segment.rows[:, :2] for segment in segments])
    starts, ends = spans[:, 0].astype(np.int64), spans[:, 1].astype(np.int64)
    if not (_whole_lines(view, spans, starts, ends) and _last_row_agrees(view, segments[-1], starts[-1], ends[-1])):
        return None
    before = np.concatenate(([0], ends[:-1]))
    at = np.flatnonzero(starts > before)
    gaps = [(row, view[first:stop]) for row, first, stop in zip(at.tolist(), before[at].tolist(),
                                                                  starts[at].tolist(), strict=True)]
    return IndexedLog(segments, gaps, int(ends[-1]))


def _whole_lines(view: mmap.mmap, spans: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
    import numpy as np

    if (starts != spans[:, 0]).any() or (ends != spans[:, 1]).any():  # not whole numbers of bytes
        return False
    if starts[0] < 0 or ends[-1] > len(view) or (ends <= starts).any() or (starts[1:] < ends[:-1]).any():
        return False
    data = np.frombuffer(view, np.uint8)
    try:
        after_newline = starts[starts > 0] - 1
        return bool((data[starts] == ord("{")).all() and (data[ends - 1] == ord("\n")).all()
                    and (data[after_newline] == ord("\n")).all())
    finally:
        del data  # the map cannot close while an array looks into it


def _last_row_agrees(view: mmap.mmap, segment: Segment, start: int, end: int) -> bool:
    event = decode_event(view[start:end])
    count = len(segment.rows)
    return (isinstance(event, IterEvent) and event.iter == segment.last("iter", count)
            and event.t == segment.rows[-1, _T] and tuple(event.losses) == segment.losses)
