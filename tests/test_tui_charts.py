"""The charts: smoothing that can be seen, every validation metric with its direction, runs overlaid."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from rich.style import Style

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import FIXTURE_ROOT, frozen_clock, settle_dashboard, sync, wait_for

from tui.app import make_app
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


# ----------------------------------------------------------------- every validation metric
def test_metric_directions_come_from_one_table_and_the_entry_wins():
    from engine.metric_info import metric_info, ordered

    assert metric_info("psnr").better == "higher" and metric_info("niqe").better == "lower"
    assert metric_info("my_niqe", {"type": "calculate_niqe_or_nan"}).better == "lower"  # known by its type
    assert metric_info("sharpness", {"better": "lower"}).better == "lower"  # basicsr's own key wins
    assert metric_info("lpips_like").better == "higher"  # basicsr's default for an unknown metric
    assert metric_info("checkerboard").format(0.0042) == "0.42%" and metric_info("psnr").format(31.4) == "31.40"
    assert ordered(["zeta", "niqe", "ssim", "psnr"]) == ["psnr", "ssim", "niqe", "zeta"]


def test_the_state_keeps_every_metric_and_its_best_by_direction():
    from engine.protocol import ValEvent
    from tui.state import RunState

    state = RunState("r")
    for it, niqe, sharp in ((100, 6.0, 0.8), (200, 5.0, 0.7), (300, 5.5, 0.9)):
        state.apply(ValEvent(iter=it, dataset="set", metrics={"psnr": 30.0, "niqe": niqe, "sharpness": sharp},
                             settings={"niqe": {"better": "lower"}}))
    val = state.vals["set"]
    assert val.points[-1].metrics["niqe"] == 5.5
    assert val.best["niqe"] == (5.0, 200) and val.best["sharpness"] == (0.9, 300)


def rendered(widget) -> list[str]:
    """What a Static shows, as plain lines at its width on screen."""
    from rich.console import Console

    console = Console(width=widget.content_size.width, record=True, color_system=None)
    console.print(widget.content)
    return console.export_text().splitlines()


@sync
async def test_every_metric_stays_whole_at_80x24_and_m_charts_the_next():
    from tui.widgets.line_chart import LineChart

    app = make_app(FIXTURE_ROOT, "finetune_x2_gan", clock=frozen_clock, save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_dashboard(pilot)
        table = app.screen.query_one("#val-table")
        lines = rendered(table)
        text = "\n".join(lines)
        assert not any("…" in line for line in lines), text
        expected = {"PSNR dB ↑": "31.40", "SSIM ↑": "0.9122", "NIQE ↓": "5.20", "colour ↓": "0.57",
                    "chroma ↓": "0.30", "checker ↓": "0.43%", "sharp ↑": "0.930"}
        for label, last in expected.items():
            row = next(line for line in lines if line.lstrip().startswith(label))
            assert row.split()[len(label.split())] == last, row
        niqe = next(line for line in lines if line.lstrip().startswith("NIQE"))
        assert niqe.split()[2:] == ["5.20", "5.20", "7.42"]  # last, best (lowest: the latest), bicubic
        assert table.region.height >= len(lines)  # the table's rows all fit in its box: nothing scrolls away

        chart = app.screen.query_one("#val-chart", LineChart)
        assert chart.border_title.startswith("PSNR")
        await pilot.press("M", "M")  # PSNR -> SSIM -> NIQE
        assert await wait_for(pilot, lambda: chart.border_title.startswith("NIQE"))
        assert chart.border_title == "NIQE ↓ per validation"  # lower is better
        assert [c.label for c in chart.data.curves] == ["Set5 NIQE"] and chart.data.curves[0].value == "5.20"
        assert any(h.label == "bicubic 7.42" for h in chart.data.hlines)
        assert not any(h.label.startswith("target") for h in chart.data.hlines)  # the plan has none for NIQE
