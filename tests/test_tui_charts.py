"""The charts: smoothing that can be seen, every validation metric with its direction, runs overlaid."""

from __future__ import annotations

import random

from rich.style import Style

from tui.state import Series
from tui.widgets.charts import series_curves
from tui.widgets.line_chart import ChartData, render_chart

FRONT = "#3366ff"
BACKGROUND = "#000000"


def color_of(name: str, index: int) -> str:
    return name if name.startswith("#") else FRONT


def cells(text) -> list[tuple[str, Style | None]]:
    """Every braille cell of rendered chart text with its style."""
    out = []
    for span_text, style in ((text.plain[s.start:s.end], s.style) for s in text.spans):
        for ch in span_text:
            if 0x2800 < ord(ch) <= 0x28FF:
                out.append((ch, style if isinstance(style, Style) else Style.parse(style)))
    return out


def noisy_series() -> Series:
    rng = random.Random(3)
    series = Series()
    for x in range(400):
        series.append(x, 1.0 + 0.002 * x + rng.uniform(-0.5, 0.5))
    return series


def test_smoothed_curve_is_bold_over_a_faint_raw_curve():
    curves = series_curves("l_pix", noisy_series(), 0.99, FRONT)
    assert [c.dim for c in curves] == [True, False]
    text = render_chart(ChartData(curves), 60, 16, color_of, background=BACKGROUND)
    styles = {str(style.color.get_truecolor().hex): style.bold for _, style in cells(text)}
    faint = "#142866"  # FRONT blended 60% into the black background
    assert styles.get(FRONT.lower()) is True  # the smoothed curve: bold, in its colour
    assert faint in styles and not styles[faint]  # the raw curve: faint, not bold
    assert "(faint: raw)" in text.plain


def test_a_cell_the_smoothed_curve_crosses_shows_only_its_dots():
    flat = Series()
    for x in range(200):
        flat.append(x, 1.0 if x % 2 else -1.0)  # raw jumps across the whole height; smoothed stays near 0
    curves = series_curves("l", flat, 0.99, FRONT)
    text = render_chart(ChartData(curves), 40, 12, color_of, background=BACKGROUND)
    front = [ch for ch, style in cells(text) if style.bold]
    assert front
    # the smoothed line near y=0 dots one row of its cells, not the full 8-dot blocks the raw noise fills
    # (only its first steps, from the first raw value down to the mean, cross whole cells)
    full = [ch for ch in front if ch == "\u28ff"]
    assert len(front) > 30 and len(full) <= 2


def test_without_smoothing_one_plain_curve():
    curves = series_curves("l", noisy_series(), 0.0, FRONT)
    assert len(curves) == 1 and not curves[0].dim
    text = render_chart(ChartData(curves), 40, 12, color_of, background=BACKGROUND)
    assert not any(style.bold for _, style in cells(text))
    assert "faint" not in text.plain
