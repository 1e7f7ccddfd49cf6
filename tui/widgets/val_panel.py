"""Validation: PSNR over iterations (best marked, target and baselines dashed) beside a table of the
latest and best PSNR/SSIM per dataset, with the crop/Y-channel settings they were measured with."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from tui.state import RunState
from tui.widgets.charts import PSNR_TARGET, SSIM_TARGET, val_chart_data
from tui.widgets.line_chart import LineChart

WEIGHTS_LABELS = {"net_g_ema": "EMA", "net_g": "net_g"}


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
        theme = self.app.current_theme
        if not state.vals:
            self.update(Text("no validation yet (v validates now)", style="dim"))
            return
        table = Table(box=None, padding=(0, 1), expand=True, show_edge=False, header_style="dim")
        table.add_column("dataset", no_wrap=True, overflow="ellipsis")
        table.add_column("iter", justify="right")
        table.add_column("PSNR", justify="right")
        table.add_column("SSIM", justify="right")
        baselines: dict[str, dict[str, float]] = {}
        settings = {}
        for name, val in sorted(state.vals.items()):
            last = val.points[-1]
            psnr_ok = last.psnr >= PSNR_TARGET
            ssim_ok = last.ssim >= SSIM_TARGET
            scored = WEIGHTS_LABELS.get(val.weights, "")
            table.add_row(f"{name} {scored}".rstrip(), f"{last.iter:,}",
                          Text(f"{last.psnr:.2f}", style=theme.success if psnr_ok else ""),
                          Text(f"{last.ssim:.4f}", style=theme.success if ssim_ok else ""))
            if val.net_g:  # basicsr scored the EMA: the raw weights, which the ranking may pick, beside it
                table.add_row(" net_g", f"{last.iter:,}", f"{val.net_g.get('psnr', math.nan):.2f}",
                              f"{val.net_g.get('ssim', math.nan):.4f}")
            if val.best_psnr:
                ssim = val.best_ssim[0] if val.best_ssim else math.nan
                table.add_row(Text(f" best ★ {scored}".rstrip(), style=theme.warning), f"{val.best_psnr[1]:,}",
                              Text(f"{val.best_psnr[0]:.2f}", style=f"bold {theme.warning}"),
                              Text(f"{ssim:.4f}", style=theme.warning))
            if val.best_net_g_psnr:
                table.add_row(Text(" best net_g", style=theme.warning), f"{val.best_net_g_psnr[1]:,}",
                              Text(f"{val.best_net_g_psnr[0]:.2f}", style=theme.warning), "")
            baselines.update(val.baselines)
            settings = settings or val.settings
        for base, values in sorted(baselines.items()):
            table.add_row(Text(f" {base}", style="dim"), "", Text(f"{values.get('psnr', math.nan):.2f}", style="dim"),
                          Text(f"{values.get('ssim', math.nan):.4f}", style="dim"))
        table.add_row(Text(" target", style="dim"), "", Text(f"{PSNR_TARGET:.2f}", style="dim"),
                      Text(f"{SSIM_TARGET:.4f}", style="dim"))
        note = Text()
        if settings:
            settings = settings.get("psnr", settings)  # the engine states them per metric
            crop = settings.get("crop_border", "?")
            y = "Y channel" if settings.get("test_y_channel") else "RGB"
            note = Text(f"\ncrop {crop}, {y}", style="dim")
        images = next((v.images for v in state.vals.values() if v.images), [])
        if images:
            note.append(f"\n{len(images)} image(s): i to view", style="dim")
        from rich.console import Group

        self.update(Group(table, note))


class ValPanel(Horizontal):
    DEFAULT_CSS = """
    ValPanel { height: 1fr; }
    ValPanel > LineChart { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield LineChart("PSNR (dB) per validation", id="val-chart")
        yield ValTable(id="val-table")

    def show(self, state: RunState, now: float) -> None:
        self.query_one("#val-chart", LineChart).data = val_chart_data(state, "psnr")
        self.query_one("#val-table", ValTable).show(state, now)
