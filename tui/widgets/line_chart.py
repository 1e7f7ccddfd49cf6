"""A braille line chart: several curves, dashed reference lines, markers, a y axis and a legend.

Plain unicode (2x4 dots per cell) rendered into rich Text, so it needs no plotting library, draws the
same in a terminal and in a snapshot SVG, and costs O(points + cells) per frame. Curves arrive already
downsampled (tui.state.Series), so a 200k-iteration run draws as fast as a short one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

# Braille dot bits, indexed [row 0..3][col 0..1].
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
PALETTE = ("primary", "accent", "success", "secondary", "error", "warning")


@dataclass
class Curve:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str = ""  # a theme colour name (primary, accent...) or any rich colour; "" = palette
    dim: bool = False  # a faint companion (the raw curve behind a smoothed one); not in the legend
    value: str = ""  # shown in the legend (the latest value)


@dataclass
class HLine:
    y: float
    label: str
    color: str = "warning"


@dataclass
class Marker:
    x: float
    y: float
    label: str = "★"
    color: str = "warning"


@dataclass
class ChartData:
    curves: list[Curve] = field(default_factory=list)
    hlines: list[HLine] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    log_y: bool = False
    empty: str = "no data yet"


def format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.3g}"
    if magnitude >= 1e-3:
        return f"{value:.3f}".rstrip("0")
    return f"{value:.1e}"


class LineChart(Widget):
    """Set `data` (a ChartData) and the chart redraws; the title is the border title."""

    DEFAULT_CSS = """
    LineChart {
        height: 1fr;
        min-height: 6;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, title: str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = title
        self._data = ChartData()

    @property
    def data(self) -> ChartData:
        return self._data

    @data.setter
    def data(self, value: ChartData) -> None:
        self._data = value
        self.refresh()

    def _color(self, name: str, index: int) -> str:
        name = name or PALETTE[index % len(PALETTE)]
        theme = getattr(self.app, "current_theme", None)
        value = getattr(theme, name, None) if theme is not None else None
        if isinstance(value, str) and value:
            return value
        variables = getattr(self.app, "theme_variables", {}) or {}
        return variables.get(name, name)

    def render(self) -> Text:
        width, height = self.content_size.width, self.content_size.height
        return render_chart(self._data, width, height, self._color, self._muted())

    def _muted(self) -> str:
        theme = getattr(self.app, "current_theme", None)
        return (getattr(theme, "foreground", None) or "grey50") if theme else "grey50"


def render_chart(data: ChartData, width: int, height: int, color_of=None, muted: str = "grey50") -> Text:
    """The chart as Text of `height` lines of `width` cells (legend last)."""
    color_of = color_of or (lambda name, index: name or PALETTE[index % len(PALETTE)])
    text = Text(no_wrap=True, overflow="crop")
    if width < 12 or height < 3:
        return text

    def ty(y: float) -> float:
        if data.log_y:
            return math.log10(y) if y > 0 else math.nan
        return y

    xs_all, ys_all = [], []
    for curve in data.curves:
        for x, y in zip(curve.xs, curve.ys, strict=False):
            v = ty(y)
            if math.isfinite(v) and math.isfinite(x):
                xs_all.append(x)
                ys_all.append(v)
    if not xs_all:
        text.append(data.empty, style=Style(color=muted, dim=True))
        return text
    for h in data.hlines:
        v = ty(h.y)
        if math.isfinite(v):
            ys_all.append(v)
    x_min, x_max = min(xs_all), max(xs_all)
    y_min, y_max = min(ys_all), max(ys_all)
    if x_max == x_min:
        x_max = x_min + 1
    if y_max == y_min:
        pad = abs(y_max) * 0.05 or 1.0
        y_min, y_max = y_min - pad, y_max + pad
    else:
        pad = (y_max - y_min) * 0.04
        y_min, y_max = y_min - pad, y_max + pad

    def label(v: float) -> str:
        return format_number(10**v if data.log_y else v)

    axis_w = max(len(label(y_max)), len(label(y_min)), len(label((y_min + y_max) / 2))) + 1
    cols, rows = width - axis_w - 1, height - 2
    if cols < 4 or rows < 1:
        return text
    dot_w, dot_h = cols * 2, rows * 4
    bits = [[0] * cols for _ in range(rows)]
    owner: list[list[str | None]] = [[None] * cols for _ in range(rows)]
    overlay: dict[tuple[int, int], tuple[str, str]] = {}

    def to_dot(x: float, y: float) -> tuple[int, int]:
        px = round((x - x_min) / (x_max - x_min) * (dot_w - 1))
        py = round((y_max - y) / (y_max - y_min) * (dot_h - 1))
        return px, py

    def plot(px: int, py: int, color: str, weak: bool) -> None:
        if 0 <= px < dot_w and 0 <= py < dot_h:
            r, c = py // 4, px // 2
            bits[r][c] |= _DOTS[py % 4][px % 2]
            if not weak or owner[r][c] is None:
                owner[r][c] = ("dim " if weak else "") + color

    # dashed reference lines first, curves over them
    for h in data.hlines:
        v = ty(h.y)
        if not math.isfinite(v):
            continue
        _, py = to_dot(x_min, v)
        r = py // 4
        if 0 <= r < rows:
            color = color_of(h.color, 0)
            for c in range(0, cols, 2):
                overlay.setdefault((r, c), ("╌", color))
            tag = h.label[: max(0, cols - 2)]
            start = max(0, cols - len(tag) - 1)
            for k, ch in enumerate(tag):
                overlay[(r, start + k)] = (ch, color)

    index = 0
    for curve in data.curves:
        color = color_of(curve.color, index)
        if not curve.dim:
            index += 1
        previous = None
        for x, y in zip(curve.xs, curve.ys, strict=False):
            v = ty(y)
            if not (math.isfinite(v) and math.isfinite(x)):
                previous = None
                continue
            point = to_dot(x, v)
            if previous is None:
                plot(*point, color, curve.dim)
            else:
                _line(previous, point, lambda px, py, c=color, d=curve.dim: plot(px, py, c, d))
            previous = point

    for m in data.markers:
        v = ty(m.y)
        if math.isfinite(v) and x_min <= m.x <= x_max:
            px, py = to_dot(m.x, v)
            overlay[(min(rows - 1, max(0, py // 4)), min(cols - 1, max(0, px // 2)))] = (
                m.label[:1], color_of(m.color, 0))

    y_labels = {0: label(y_max), rows - 1: label(y_min)}
    if rows >= 5:
        y_labels[(rows - 1) // 2] = label(y_max - (y_max - y_min) * ((rows - 1) // 2) / (rows - 1))
    axis_style = Style(color=muted, dim=True)
    for r in range(rows):
        text.append(y_labels.get(r, "").rjust(axis_w - 1) + " ", style=axis_style)
        text.append("┤" if r in y_labels else "│", style=axis_style)
        for c in range(cols):
            if (r, c) in overlay and not (bits[r][c] and overlay[(r, c)][0] == "╌"):
                ch, color = overlay[(r, c)]
                text.append(ch, style=Style.parse(color))
            elif bits[r][c]:
                style = owner[r][c] or ""
                text.append(chr(0x2800 + bits[r][c]), style=Style.parse(style) if style else None)
            else:
                text.append(" ")
        text.append("\n")
    # x axis: first and last iteration
    left, right = format_number(x_min), format_number(x_max)
    gap = max(1, cols - len(left) - len(right))
    text.append(" " * axis_w + "└" + left + "─" * gap + right + "\n", style=axis_style)
    # legend
    legend = Text(no_wrap=True, overflow="ellipsis")
    index = 0
    for curve in data.curves:
        if curve.dim:
            continue
        color = color_of(curve.color, index)
        index += 1
        legend.append("━ ", style=Style.parse(color))
        legend.append(curve.label)
        if curve.value:
            legend.append(f" {curve.value}", style=Style(bold=True))
        legend.append("  ")
    for h in data.hlines:
        legend.append("╌ ", style=Style.parse(color_of(h.color, 0)))
        legend.append(f"{h.label}  ")
    if data.log_y:
        legend.append("(log)", style=axis_style)
    legend.truncate(width, overflow="ellipsis")
    text.append_text(legend)
    return text


def _line(a: tuple[int, int], b: tuple[int, int], plot) -> None:
    """Bresenham from a to b."""
    x0, y0 = a
    x1, y1 = b
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    for _ in range(4096):
        plot(x0, y0)
        if x0 == x1 and y0 == y1:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy
