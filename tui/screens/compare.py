"""The compare view (run list: space marks runs, c compares them): PSNR, SSIM and the pixel loss of
every marked run on one iteration axis, a chain's stages end to end (tui.compare)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.metric_info import ordered
from engine.protocol import RunPaths
from tui.compare import ComparedRun, load_runs, loss_overlay, val_overlay
from tui.screens.dialogs import HelpScreen
from tui.widgets.charts import val_chart_title
from tui.widgets.line_chart import LineChart
from tui.widgets.sizes import SizeClasses

SMOOTHING = 0.6
KEYS_COMPARE = [
    ("M", "chart the next validation metric (PSNR, SSIM, NIQE, ...) in the upper chart"),
    ("escape", "back to the run list"),
]


class CompareScreen(SizeClasses, Screen[None]):
    DEFAULT_CSS = """
    CompareScreen #compare-title { height: auto; padding: 0 1; background: $panel; }
    CompareScreen #compare-val { height: 1fr; }
    CompareScreen #compare-val > LineChart { width: 1fr; }
    CompareScreen #compare-loss { height: 1fr; }
    CompareScreen.-narrow #compare-ssim { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("M", "metric", "next metric"),
        Binding("escape,q", "close", "back"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(self, runs: list[RunPaths]) -> None:
        super().__init__(name="compare")
        self.runs_paths = runs
        self.runs: list[ComparedRun] = []
        self.metric = "psnr"
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title")
        with Vertical():
            with Horizontal(id="compare-val"):
                yield LineChart(val_chart_title("psnr"), id="compare-metric")
                yield LineChart(val_chart_title("ssim"), id="compare-ssim")
            yield LineChart("pixel loss", id="compare-loss")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self) -> None:
        runs = load_runs(self.runs_paths)
        self.app.call_from_thread(self.show, runs)

    def show(self, runs: list[ComparedRun]) -> None:
        self.runs, self.loaded = runs, True
        title = Text()
        title.append(f"{len(runs)} runs:", style="bold")
        for run in runs:
            title.append(f"  {run.name}")
            if run.after:
                title.append(f" (after {run.after}, from iter {run.offset:,})", style="dim")
        self.query_one("#compare-title", Static).update(title)
        self.draw()

    def draw(self) -> None:
        chart = self.query_one("#compare-metric", LineChart)
        chart.border_title = val_chart_title(self.metric)
        chart.data = val_overlay(self.runs, self.metric)
        self.query_one("#compare-ssim", LineChart).data = val_overlay(self.runs, "ssim")
        loss = self.query_one("#compare-loss", LineChart)
        loss.border_title = f"pixel loss · smoothing {SMOOTHING:g}"
        loss.data = loss_overlay(self.runs, SMOOTHING)

    def action_metric(self) -> None:
        """The upper chart shows the next metric of the runs (SSIM also has its own chart beside it, below
        120 columns hidden)."""
        metrics = ordered(k for run in self.runs for v in run.state.vals.values() for p in v.points
                          for k in p.metrics) or ["psnr"]
        index = metrics.index(self.metric) if self.metric in metrics else -1
        self.metric = metrics[(index + 1) % len(metrics)]
        self.draw()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(KEYS_COMPARE, "keys: compare runs"))
