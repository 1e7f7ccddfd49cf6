"""A braille line chart: several curves, dashed reference lines, markers, a y axis and a legend.

Plain unicode (2x4 dots per cell) rendered into rich Text, so it needs no plotting library, draws the
same in a terminal and in a snapshot SVG, and costs O(points + cells) per frame. Curves arrive already
downsampled (tui.state.Series), so a 200k-iteration run draws as fast as a short one.

A smoothed curve is drawn as TensorBoard draws it: the raw curve behind it faint (its colour blended
into the background) and the smoothed one bold in front. A cell the front curve crosses shows only the
front curve's dots, so at smoothing 0.99 the raw noise cannot swallow the trend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from rich.terminal_theme import TerminalTheme
from rich.text import Text
from textual.color import Color, ColorParseError
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.widget import Widget

# Braille dot bits, indexed [row 0..3][col 0..1].
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
PALETTE = ("primary", "accent", "success", "secondary", "error", "warning")
MAX_LEGEND_LINES = 3
MIN_PLOT_ROWS = 3  # a legend wraps onto more lines only while the plot keeps this many rows
FAINT = 0.6  # how far a raw curve's colour is blended towards the background


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
        self._drawn: tuple[tuple, list[Text], list[Strip]] | None = None  # (size, style, theme), what is drawn

    @property
    def data(self) -> ChartData:
        return self._data

    @data.setter
    def data(self, value: ChartData) -> None:
        if value == self._data:  # the same figures (a redraw for another panel's sake): nothing to draw again
            return
        self._data = value
        self._drawn = None
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
        """What the chart shows, as Text (Textual itself draws it line by line, from render_line)."""
        return Text("\n", no_wrap=True, overflow="crop").join(self._drawing()[0])

    def render_line(self, y: int) -> Strip:
        strips = self._drawing()[1]
        return strips[y] if y < len(strips) else Strip.blank(self.size.width, self.visual_style.rich_style)

    def _drawing(self) -> tuple[list[Text], list[Strip]]:
        """The chart's lines, drawn once per new data, size or style (Textual asks for every line again on
        each repaint of the screen, and turning rich Text into strips cost three times the drawing)."""
        size, style = self.size, self.visual_style
        key = (size, style, self.app.theme)
        if self._drawn is None or self._drawn[0] != key:
            lines = chart_lines(self._data, size.width, size.height, self._color, self._muted(), self._background())
            styled = _StyleMap(style, getattr(self.app, "ansi_theme", None))
            console = self.app.console
            self._drawn = (key, lines, [Strip([Segment(text, styled(part)) for text, part, _ in line.render(console)])
                                        .adjust_cell_length(size.width, style.rich_style) for line in lines])
        return self._drawn[1], self._drawn[2]

    def _background(self) -> str:
        theme = getattr(self.app, "current_theme", None)
        return (getattr(theme, "background", None) or "") if theme else ""

    def _muted(self) -> str:
        theme = getattr(self.app, "current_theme", None)
        return (getattr(theme, "foreground", None) or "grey50") if theme else "grey50"


ColorOf = Callable[[str, int], str]


class _StyleMap:
    """A rich style of the chart's Text as the widget shows it: over the widget's own style (its background
    and text colour), as Textual renders a widget's Text, remembered per style (a chart uses a handful)."""

    def __init__(self, base: VisualStyle, ansi_theme: TerminalTheme | None) -> None:
        self.base, self.ansi_theme = base, ansi_theme
        self.known: dict[Style, Style] = {}

    def __call__(self, style: Style | None) -> Style:
        if style is None:
            return self.base.rich_style
        found = self.known.get(style)
        if found is None:
            found = self.known[style] = (self.base + VisualStyle.from_rich_style(style, self.ansi_theme)).rich_style
        return found


def _palette_color(name: str, index: int) -> str:
    return name or PALETTE[index % len(PALETTE)]


def faint_style(color: str, background: str) -> str:
    """The style of a faint (raw) curve: its colour blended towards the background, or rich's dim
    where either colour is no plain colour (a palette name outside a theme)."""
    try:
        blended = Color.parse(color).blend(Color.parse(background), FAINT)
    except ColorParseError:
        return f"dim {color}"
    return blended.hex


@dataclass(frozen=True)
class _Scale:
    """The data window (y already on the log scale when log_y) and how it maps onto braille dots."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    log_y: bool

    def label(self, v: float) -> str:
        return format_number(10**v if self.log_y else v)

    def axis_width(self) -> int:
        return max(len(self.label(self.y_max)), len(self.label(self.y_min)),
                   len(self.label((self.y_min + self.y_max) / 2))) + 1


def _scaled(y: float, log_y: bool) -> float:
    if log_y:
        return math.log10(y) if y > 0 else math.nan
    return y


Runs = list[tuple[list[float], list[float]]]


def _runs(curve: Curve, log_y: bool) -> Runs:
    """The curve's stretches of finite points, y on the chart's scale; a gap (nan, log of <= 0) ends one."""
    runs: Runs = []
    xs: list[float] = []
    vs: list[float] = []
    isfinite, log10 = math.isfinite, math.log10
    for x, y in zip(curve.xs, curve.ys, strict=False):
        v = (log10(y) if y > 0 else math.nan) if log_y else y  # _scaled, written out: every point
        if isfinite(v) and isfinite(x):
            xs.append(x)
            vs.append(v)
        elif xs:
            runs.append((xs, vs))
            xs, vs = [], []
    if xs:
        runs.append((xs, vs))
    return runs


def _window(data: ChartData, runs: list[Runs]) -> _Scale | None:
    """The padded range of every finite point and reference line; None when there is nothing to draw."""
    bounds = [(min(xs), max(xs), min(vs), max(vs)) for curve in runs for xs, vs in curve]
    if not bounds:
        return None
    lines = [v for v in (_scaled(h.y, data.log_y) for h in data.hlines) if math.isfinite(v)]
    x_min, x_max = min(b[0] for b in bounds), max(b[1] for b in bounds)
    y_min, y_max = min([b[2] for b in bounds] + lines), max([b[3] for b in bounds] + lines)
    if x_max == x_min:
        x_max = x_min + 1
    pad = (abs(y_max) * 0.05 or 1.0) if y_max == y_min else (y_max - y_min) * 0.04
    return _Scale(x_min, x_max, y_min - pad, y_max + pad, data.log_y)


class _Canvas:
    """rows x cols braille cells: dot bits, the colour owning each cell, and characters laid over them."""

    def __init__(self, scale: _Scale, cols: int, rows: int) -> None:
        self.scale, self.cols, self.rows = scale, cols, rows
        self.dot_w, self.dot_h = cols * 2, rows * 4
        # front (bold) and faint layers apart: a cell with front dots shows those alone
        self.bits = [[0] * cols for _ in range(rows)]
        self.faint_bits = [[0] * cols for _ in range(rows)]
        self.owner: list[list[str | None]] = [[None] * cols for _ in range(rows)]
        self.faint_owner: list[list[str | None]] = [[None] * cols for _ in range(rows)]
        self.overlay: dict[tuple[int, int], tuple[str, str]] = {}

    def to_dot(self, x: float, y: float) -> tuple[int, int]:
        s = self.scale
        px = round((x - s.x_min) / (s.x_max - s.x_min) * (self.dot_w - 1))
        py = round((s.y_max - y) / (s.y_max - s.y_min) * (self.dot_h - 1))
        return px, py

    def ink(self, dots: set[tuple[int, int]], style: str, faint: bool) -> None:
        """One curve's dots into its layer; each cell they touch takes its style (a faint cell keeps the first
        faint curve's: the legend's order)."""
        dot_w, dot_h = self.dot_w, self.dot_h
        bits, owner = (self.faint_bits, self.faint_owner) if faint else (self.bits, self.owner)
        for px, py in dots:
            if 0 <= px < dot_w and 0 <= py < dot_h:
                r, c = py >> 2, px >> 1
                bits[r][c] |= _DOTS[py & 3][px & 1]
                if not faint or owner[r][c] is None:
                    owner[r][c] = style

    def draw_hline(self, h: HLine, color: str) -> None:
        """A dashed line at h.y, its label at the right end."""
        v = _scaled(h.y, self.scale.log_y)
        if not math.isfinite(v):
            return
        r = self.to_dot(self.scale.x_min, v)[1] // 4
        if not 0 <= r < self.rows:
            return
        for c in range(0, self.cols, 2):
            self.overlay.setdefault((r, c), ("╌", color))
        tag = h.label[: max(0, self.cols - 2)]
        start = max(0, self.cols - len(tag) - 1)
        for k, ch in enumerate(tag):
            self.overlay[(r, start + k)] = (ch, color)

    def draw_curve(self, runs: Runs, style: str, faint: bool) -> None:
        """Each run of points joined by segments.

        Points outnumber dot columns on a long run: consecutive points in one column join by vertical
        segments whose dots together are the column from the lowest to the highest, so a column's run is
        drawn at once and Bresenham runs only between columns (to_dot written out: the same arithmetic,
        for every point of every iter event)."""
        s = self.scale
        x_min, x_span, y_max, y_span = s.x_min, s.x_max - s.x_min, s.y_max, s.y_max - s.y_min
        w, h = self.dot_w - 1, self.dot_h - 1
        dots: set[tuple[int, int]] = set()
        for xs, vs in runs:
            pxs = [round((x - x_min) / x_span * w) for x in xs]
            pys = [round((y_max - v) / y_span * h) for v in vs]
            column, last = pxs[0], pys[0]
            low = high = last
            for px, py in zip(pxs, pys, strict=True):
                if px == column:
                    if py < low:
                        low = py
                    elif py > high:
                        high = py
                else:
                    dots.update(_column(column, low, high))
                    dots.update(_line((column, last), (px, py)))
                    column, low, high = px, py, py
                last = py
            dots.update(_column(column, low, high))
        self.ink(dots, style, faint)

    def draw_marker(self, m: Marker, color: str) -> None:
        v = _scaled(m.y, self.scale.log_y)
        if math.isfinite(v) and self.scale.x_min <= m.x <= self.scale.x_max:
            px, py = self.to_dot(m.x, v)
            self.overlay[(min(self.rows - 1, max(0, py // 4)), min(self.cols - 1, max(0, px // 2)))] = (
                m.label[:1], color)

    def cell(self, r: int, c: int) -> tuple[str, Style | None]:
        """What cell (r, c) shows: an overlay character unless a curve crosses a dash, else the front
        curves' dots, else the faint ones."""
        bits = self.bits[r][c] or self.faint_bits[r][c]
        if (r, c) in self.overlay and not (bits and self.overlay[(r, c)][0] == "╌"):
            ch, color = self.overlay[(r, c)]
            return ch, Style.parse(color)
        if bits:
            style = (self.owner[r][c] if self.bits[r][c] else self.faint_owner[r][c]) or ""
            return chr(0x2800 + bits), Style.parse(style) if style else None
        return " ", None


def _draw(canvas: _Canvas, data: ChartData, runs: list[Runs], color_of: ColorOf, background: str) -> None:
    """Dashed reference lines first, curves over them (faint ones in their own layer), markers on top."""
    for h in data.hlines:
        canvas.draw_hline(h, color_of(h.color, 0))
    index = 0
    bold = any(curve.dim for curve in data.curves)  # bold only where a faint companion needs the contrast
    for curve, curve_runs in zip(data.curves, runs, strict=True):
        color = color_of(curve.color, index)
        if curve.dim:
            canvas.draw_curve(curve_runs, faint_style(color, background), True)
        else:
            canvas.draw_curve(curve_runs, f"bold {color}" if bold else color, False)
            index += 1
    for m in data.markers:
        canvas.draw_marker(m, color_of(m.color, 0))


def _plot_area(text: Text, canvas: _Canvas, axis_w: int, axis_style: Style) -> None:
    """Each row: its y label (top, middle, bottom), the axis, then the cells."""
    scale, rows = canvas.scale, canvas.rows
    y_labels = {0: scale.label(scale.y_max), rows - 1: scale.label(scale.y_min)}
    if rows >= 5:
        y_labels[(rows - 1) // 2] = scale.label(scale.y_max - (scale.y_max - scale.y_min) * ((rows - 1) // 2)
                                                / (rows - 1))
    for r in range(rows):
        text.append(y_labels.get(r, "").rjust(axis_w - 1) + " ", style=axis_style)
        text.append("┤" if r in y_labels else "│", style=axis_style)
        run, run_style = [], None
        for c in range(canvas.cols):  # one span per run of one style, not one per cell
            ch, style = canvas.cell(r, c)
            if style != run_style and run:
                text.append("".join(run), style=run_style)
                run = []
            run.append(ch)
            run_style = style
        text.append("".join(run), style=run_style)
        text.append("\n")


def _x_axis(scale: _Scale, cols: int, axis_w: int) -> str:
    """The x axis with the first and last iteration at its ends."""
    left, right = format_number(scale.x_min), format_number(scale.x_max)
    gap = max(1, cols - len(left) - len(right))
    return " " * axis_w + "└" + left + "─" * gap + right + "\n"


def _legend_entries(data: ChartData, color_of: ColorOf, axis_style: Style) -> list[Text]:
    """One entry per curve in front (with its latest value), per reference line, and the notes (raw curves
    faint, log scale)."""
    entries = []
    index = 0
    for curve in data.curves:
        if curve.dim:
            continue
        entry = Text()
        entry.append("━ ", style=Style.parse(color_of(curve.color, index)))
        index += 1
        entry.append(curve.label)
        if curve.value:
            entry.append(f" {curve.value}", style=Style(bold=True))
        entries.append(entry)
    for h in data.hlines:
        entry = Text()
        entry.append("╌ ", style=Style.parse(color_of(h.color, 0)))
        entry.append(h.label)
        entries.append(entry)
    if any(curve.dim for curve in data.curves):
        entries.append(Text("(faint: raw)", style=axis_style))
    if data.log_y:
        entries.append(Text("(log)", style=axis_style))
    return entries


def _legend(data: ChartData, color_of: ColorOf, width: int, axis_style: Style, max_lines: int) -> list[Text]:
    """The entries packed into lines of `width`, never splitting one: a narrow chart keeps every value
    readable on a second line rather than cutting it; past max_lines the last line ends with an ellipsis."""
    lines: list[Text] = []
    for entry in _legend_entries(data, color_of, axis_style):
        if lines and (len(lines) == max_lines or lines[-1].cell_len + 2 + entry.cell_len <= width):
            lines[-1].append("  ")
            lines[-1].append_text(entry)
        else:
            lines.append(entry.copy())
    for line in lines:
        line.no_wrap = True
        line.truncate(width, overflow="ellipsis")
    return lines


def render_chart(data: ChartData, width: int, height: int, color_of: ColorOf | None = None,
                 muted: str = "grey50", background: str = "") -> Text:
    """The chart as Text of `height` lines of `width` cells (legend last); faint curves are blended
    towards `background` (rich's dim where it is no plain colour)."""
    color_of = color_of or _palette_color
    text = Text(no_wrap=True, overflow="crop")
    if width < 12 or height < 3:
        return text
    runs = [_runs(curve, data.log_y) for curve in data.curves]
    scale = _window(data, runs)
    if scale is None:
        text.append(data.empty, style=Style(color=muted, dim=True))
        return text
    axis_w = scale.axis_width()
    axis_style = Style(color=muted, dim=True)
    legend = _legend(data, color_of, width, axis_style, max(1, min(MAX_LEGEND_LINES, height - 2 - MIN_PLOT_ROWS)))
    cols, rows = width - axis_w - 1, height - 1 - len(legend)
    if cols < 4 or rows < 1:
        return text
    canvas = _Canvas(scale, cols, rows)
    _draw(canvas, data, runs, color_of, background)
    _plot_area(text, canvas, axis_w, axis_style)
    text.append(_x_axis(scale, cols, axis_w), style=axis_style)
    for k, line in enumerate(legend):
        text.append("\n" if k else "")
        text.append_text(line)
    return text


def chart_lines(data: ChartData, width: int, height: int, color_of: ColorOf | None = None,
                muted: str = "grey50", background: str = "") -> list[Text]:
    """render_chart's Text, one Text a line."""
    text = render_chart(data, width, height, color_of, muted, background)
    return list(text.split("\n", allow_blank=True)) if text.plain else []


def _column(px: int, low: int, high: int) -> zip:
    """The dots of column px from low to high."""
    return zip([px] * (high - low + 1), range(low, high + 1), strict=True)


def _line(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """Bresenham's dots from a to b."""
    x0, y0 = a
    x1, y1 = b
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    dots = []
    for _ in range(4096):
        dots.append((x0, y0))
        if x0 == x1 and y0 == y1:
            break
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy
    return dots
