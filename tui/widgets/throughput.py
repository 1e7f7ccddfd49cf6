"""Speed now and over time, the data-wait share of each iteration, and the learning rate."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from engine.protocol import PAUSED
from tui.state import RunState
from tui.widgets.line_chart import format_number
from tui.widgets.text_update import update_text

SPARK_POINTS = 60


class ThroughputPanel(Vertical):
    DEFAULT_CSS = """
    ThroughputPanel {
        height: auto;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    ThroughputPanel > Static { height: auto; }
    ThroughputPanel > Sparkline { height: 2; margin-bottom: 0; }
    ThroughputPanel > Sparkline > .sparkline--max-color { color: $success; }
    ThroughputPanel > Sparkline > .sparkline--min-color { color: $error 60%; }
    ThroughputPanel > #lr-spark > .sparkline--max-color { color: $accent; }
    ThroughputPanel > #lr-spark > .sparkline--min-color { color: $accent 40%; }
    """

    def compose(self) -> ComposeResult:
        self.border_title = "throughput"
        yield Static(id="speed-text")
        yield Sparkline([], id="speed-spark")
        yield Static(id="lr-text")
        yield Sparkline([], id="lr-spark")

    def show(self, state: RunState, now: float) -> None:
        theme = self.app.current_theme
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("it/s ", style="dim")
        if state.status == PAUSED:  # the last speed is no speed of a run that stands still
            text.append("paused", style=f"bold {theme.warning}")
        else:
            text.append(f"{state.it_s:.2f}" if math.isfinite(state.it_s) else "-", style="bold")
        means = state.speed.means()
        if means:
            text.append(f"  mean {sum(means) / len(means):.2f}", style="dim")
        total = state.data_s + state.compute_s
        if math.isfinite(total) and total > 0:
            share = state.data_s / total
            color = theme.error if share > 0.3 else theme.warning if share > 0.1 else theme.success
            text.append("\ndata wait ", style="dim")
            text.append(f"{100 * share:.0f}%", style=f"bold {color}")
            text.append(f"  compute {100 * (1 - share):.0f}%", style="dim")
            text.append(f"  ({state.data_s * 1000:.0f} / {state.compute_s * 1000:.0f} ms)", style="dim")
        update_text(self.query_one("#speed-text", Static), text)
        self.query_one("#speed-spark", Sparkline).data = means[-SPARK_POINTS:] or [0.0]
        lr = Text(no_wrap=True)
        lr.append("lr ", style="dim")
        lr.append(format_number(state.lr) if math.isfinite(state.lr) else "-", style="bold")
        lr.append(f"   epoch {state.epoch}", style="dim")
        update_text(self.query_one("#lr-text", Static), lr)
        lrs = [v for v in state.lr_series.means() if math.isfinite(v)]
        self.query_one("#lr-spark", Sparkline).data = lrs[-SPARK_POINTS:] or [0.0]
