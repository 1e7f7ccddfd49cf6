"""The charts: smoothing that can be seen, every validation metric with its direction, runs overlaid."""

from __future__ import annotations

import functools
import random
import sys
from pathlib import Path

from rich.style import Style

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import FIXTURE_ROOT, frozen_clock, settle_dashboard, settle_run_list, sync, wait_for

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
                    "chroma ↓": "0.30", "checker ↓": "0.43%", "sharp ↑": "0.93"}
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


# ----------------------------------------------------------------- runs and stages overlaid
def braille_colors(text) -> set[str]:
    return {str(style.color.get_truecolor().hex) for _, style in cells(text) if style.color is not None}


@sync
async def test_two_recorded_runs_overlaid_on_one_chart():
    from tui.screens.compare import CompareScreen

    app = make_app(FIXTURE_ROOT, None, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle_run_list(pilot)
        names = [s.name for s in app.screen.summaries]
        await pilot.press("c")  # nothing marked yet: a hint, no view
        assert await wait_for(pilot, lambda: any("mark two runs" in str(toast.render())
                                                 for toast in app.screen.query("Toast")))
        assert not isinstance(app.screen, CompareScreen)
        for name in ("finetune_x2_gan", "demo_cpu_l1"):
            while names[app.screen.query_one("DataTable").cursor_row] != name:
                await pilot.press("down" if names.index(name) > app.screen.query_one("DataTable").cursor_row
                                  else "up")
            await pilot.press("space")
        await pilot.press("c")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        await pilot.pause()
        screen = app.screen
        for chart_id, points in (("#compare-metric", (6, 6)), ("#compare-ssim", (6, 6)), ("#compare-loss", None)):
            chart = screen.query_one(chart_id)
            assert chart.region.width > 30 and chart.region.height > 8  # on screen, not squeezed away
            labels = [c.label for c in chart.data.curves]
            assert len(labels) == 2 and labels[0].startswith("finetune_x2_gan") and labels[1].startswith("demo_cpu_l1")
            if points:
                assert tuple(len(c.xs) for c in chart.data.curves) == points
            drawn = braille_colors(chart.render())  # both series really drawn, each in its own colour
            wanted = {getattr(app.current_theme, c.color).lower() for c in chart.data.curves}
            assert len(wanted) == 2 and wanted <= {c.lower() for c in drawn}, (wanted, drawn)
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


def write_stage(root: Path, name: str, pretrain: str | None, iters: tuple[int, ...]):
    """A minimal recorded run: its run event (options naming the start weights) and validations."""
    from engine.protocol import RunPaths, ValEvent, encode_event, make_event

    paths = RunPaths(root / "experiments" / name)
    paths.events.parent.mkdir(parents=True)
    lines = [make_event("run", name=name, total_iter=max(iters), options={"path": {"pretrain_network_g": pretrain}})]
    lines += [ValEvent(iter=it, dataset="val", metrics={"psnr": 30.0 + it / 1000, "ssim": 0.9}) for it in iters]
    lines += [make_event("status", status="finished", iter=max(iters))]
    paths.events.write_bytes(b"".join(map(encode_event, lines)))
    return paths


def test_a_chains_second_stage_continues_on_the_first_ones_axis(tmp_path):
    from tui.compare import earlier_stages, load_runs, val_overlay

    write = functools.partial(write_stage, tmp_path)
    stage1 = write("demo_stage1_l1", None, (300, 600, 900))
    stage2 = write("demo_stage2_gan", str(stage1.root / "models" / "net_g_600.pth"), (20, 40))
    runs = load_runs([stage1, stage2])
    assert [(r.offset, r.after) for r in runs] == [(0, ""), (600, "demo_stage1_l1")]
    curves = val_overlay(runs, "psnr").curves
    assert curves[0].xs == [300, 600, 900] and curves[1].xs == [620, 640]  # stage 2 from its start checkpoint
    # the dashboard's C finds the stages a run continues from its own log
    assert [p.root for p in earlier_stages(stage2, runs[1].state)] == [stage1.root]
    assert earlier_stages(stage1, runs[0].state) == []


@sync
async def test_c_on_a_second_stage_dashboard_compares_it_with_the_first(tmp_path):
    from tui.screens.compare import CompareScreen

    stage1 = write_stage(tmp_path, "demo_stage1_l1", None, (300, 600))
    stage2 = write_stage(tmp_path, "demo_stage2_gan", str(stage1.root / "models" / "net_g_600.pth"), (20, 40))
    app = make_app(tmp_path, stage2, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle_dashboard(pilot)
        await pilot.press("C")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        assert [(r.name, r.offset) for r in app.screen.runs] == [("demo_stage1_l1", 0), ("demo_stage2_gan", 600)]
        assert [c.xs for c in app.screen.query_one("#compare-metric").data.curves] == [[300, 600], [620, 640]]


# ----------------------------------------------------------------- drawn once per new data
def falling(points: int) -> ChartData:
    series = Series()
    for x in range(points):
        series.append(x, 1.0 / (1 + x))
    return ChartData(series_curves("l_pix", series, 0.6))


@sync
async def test_a_chart_is_drawn_again_for_new_data_size_or_theme_and_not_for_the_same_figures():
    from textual.app import App

    from tui.widgets.line_chart import LineChart

    class OneChart(App):
        def compose(self):
            yield LineChart("losses")

    app = OneChart()
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(LineChart)
        chart.data = falling(100)
        await pilot.pause()

        def lines():
            return [chart.render_line(y) for y in range(chart.size.height)]

        drawn = lines()
        assert "└0" in chart.render().plain and "99\n" in chart.render().plain  # the x axis: iterations 0 to 99
        assert {line.cell_length for line in drawn} == {chart.size.width}
        chart.data = falling(100)  # the same figures in a new ChartData: a redraw for another panel's sake
        await pilot.pause()
        assert all(new is old for new, old in zip(lines(), drawn, strict=True))  # the very strips drawn before

        chart.data = falling(101)  # one more iteration
        await pilot.pause()
        assert "100\n" in chart.render().plain
        assert lines() != drawn

        drawn = lines()
        await pilot.resize_terminal(50, 16)
        assert await wait_for(pilot, lambda: chart.size.width != len(drawn[0].text))
        assert {line.cell_length for line in lines()} == {chart.size.width}  # drawn again at its new size

        drawn = lines()
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        assert [line.text for line in lines()] == [line.text for line in drawn]  # the same dots...
        assert lines() != drawn  # ...in the new theme's colours
