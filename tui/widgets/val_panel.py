"""Validation: one metric over the iterations (best starred, target and baselines dashed; M shows the
next) beside a table of every metric the options' val.metrics name: latest, best and bicubic's, each
with its better direction (engine/metric_info.py), and the crop/Y-channel settings they were measured with.

The table has a row per metric and three figures a row, so all seven of the demo's metrics stay whole
in the 40 columns it has at 80x24.
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from engine.metric_info import metric_info
from tui.state import DatasetVal, RunState
from tui.widgets.charts import PSNR_TARGET, SSIM_TARGET, TARGETS, val_chart_data, val_chart_title, val_metrics
from tui.widgets.line_chart import LineChart

WEIGHTS_LABELS = {"net_g_ema": "EMA", "net_g": "net_g"}  # what basicsr's validation scored (the val event says)


class ValTable(Static):
    DEFAULT_CSS = """
    ValTable {
        width: 40;
        height: 1fr;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "validation"

    def show(self, state: RunState, now: float) -> None:
        if not state.vals:
            self.update(Text("no validation yet (v validates now)", style="dim"))
            return
        metrics = val_metrics(state)
        single = len(state.vals) == 1  # its name heads the table; several get a line each
        first = next(iter(state.vals.items()))
        table = Table(box=None, padding=(0, 0, 0, 1), expand=True, show_edge=False, header_style="dim")
        table.add_column(self._heading(*first) if single else "metric", no_wrap=True, overflow="ellipsis", ratio=1)
        scored = " ".join(sorted({WEIGHTS_LABELS[v.weights] for v in state.vals.values()
                                  if v.weights in WEIGHTS_LABELS}))
        for label in ("last", f"best ★ {scored}".rstrip(), "bicubic"):
            table.add_column(label, justify="right", no_wrap=True)
        for name, val in sorted(state.vals.items()):
            if not single:
                table.add_row(Text(self._heading(name, val), style="bold"), "", "", "")
            self._rows(table, val, metrics)
        self.update(Group(table, self._notes(state)))

    @staticmethod
    def _heading(name: str, val: DatasetVal) -> str:
        return f"{name} @{val.points[-1].iter:,}" if val.points else name

    def _rows(self, table: Table, val: DatasetVal, metrics: list[str]) -> None:
        """One row per metric: its latest (target met in green), best and bicubic figures."""
        theme = self.app.current_theme
        last = val.points[-1].metrics
        bicubic = val.baselines.get("bicubic", {})
        for metric in metrics:
            info = metric_info(metric, val.settings.get(metric))
            value = last.get(metric, math.nan)
            target = TARGETS.get(metric)
            met = target is not None and math.isfinite(value) and not info.is_better(target, value)
            best = val.best.get(metric)
            unit = f" {info.unit}" if info.unit == "dB" else ""
            table.add_row(Text(f"{info.label}{unit} {info.arrow}"),
                          Text(info.format(value), style=theme.success if met else ""),
                          Text(info.format(best[0] if best else None), style=f"bold {theme.warning}"),
                          Text(info.format(bicubic.get(metric)), style="dim"))
            if metric in val.net_g:  # basicsr scored the EMA: the raw weights, which the ranking may pick, beside it
                best_raw = val.best_net_g_psnr if metric == "psnr" else None
                table.add_row(Text(f" net_g {info.label}", style="dim"), Text(info.format(val.net_g[metric])),
                              Text(info.format(best_raw[0] if best_raw else None), style=theme.warning), "")

    def _notes(self, state: RunState) -> Text:
        """The targets, where the best PSNR was, what the figures were measured on, the images."""
        note = Text(f"target PSNR {PSNR_TARGET:g} · SSIM {SSIM_TARGET:g}", style="dim")
        where = []
        best = state.best_psnr()
        if best:
            where.append(f"★ PSNR @{best[1]:,}")
        raw = [v.best_net_g_psnr for v in state.vals.values() if v.best_net_g_psnr]
        if raw:
            where.append(f"best net_g @{max(raw)[1]:,}")
        settings = next((v.settings for v in state.vals.values() if v.settings), {})
        if settings:
            settings = settings.get("psnr", settings)  # the engine states them per metric
            y = "Y channel" if settings.get("test_y_channel") else "RGB"
            where.append(f"crop {settings.get('crop_border', '?')}, {y}")
        if where:
            note.append("\n" + " · ".join(where), style="dim")
        images = next((v.images for v in state.vals.values() if v.images), [])
        if images:
            note.append(f"\n{len(images)} image(s): i to view", style="dim")
        return note


class ValPanel(Horizontal):
    DEFAULT_CSS = """
    ValPanel { height: 1fr; }
    ValPanel > LineChart { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.metric = "psnr"

    def compose(self) -> ComposeResult:
        yield LineChart(val_chart_title(self.metric), id="val-chart")
        yield ValTable(id="val-table")

    def next_metric(self, state: RunState) -> str:
        """Chart the next of the run's metrics (M on the dashboard); returns its name."""
        metrics = val_metrics(state) or ["psnr"]
        index = metrics.index(self.metric) if self.metric in metrics else -1
        self.metric = metrics[(index + 1) % len(metrics)]
        return self.metric

    def show(self, state: RunState, now: float) -> None:
        chart = self.query_one("#val-chart", LineChart)
        chart.border_title = val_chart_title(self.metric)
        chart.data = val_chart_data(state, self.metric)
        self.query_one("#val-table", ValTable).show(state, now)
