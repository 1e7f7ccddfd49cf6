"""The engine's live detectors (NaN, divergence, D collapse, PSNR falling, slow, disk, OOM), newest
first, each with its hint."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from tui.state import RunState


class AlertsPanel(Static):
    DEFAULT_CSS = """
    AlertsPanel {
        height: 1fr;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
        overflow-y: auto;
    }
    AlertsPanel.-has-error { border: round $error; }
    AlertsPanel.-has-warning { border: round $warning; }
    """

    def on_mount(self) -> None:
        self.border_title = "alerts"

    def show(self, state: RunState, now: float) -> None:
        theme = self.app.current_theme
        alerts = list(state.alerts)
        self.set_class(any(a.level == "error" for a in alerts), "-has-error")
        self.set_class(bool(alerts) and not self.has_class("-has-error"), "-has-warning")
        self.border_title = f"alerts ({len(alerts)})" if alerts else "alerts"
        if not alerts:
            self.update(Text("none", style="dim"))
            return
        text = Text(overflow="fold")
        for alert in reversed(alerts[-20:]):
            color = theme.error if alert.level == "error" else theme.warning
            text.append(f"{time.strftime('%H:%M:%S', time.localtime(alert.t))} ", style="dim")
            text.append(f"{alert.code or alert.level} ", style=f"bold {color}")
            text.append(alert.message)
            if alert.hint:
                text.append(f"\n  → {alert.hint}", style="dim")
            text.append("\n")
        text.rstrip()
        self.update(text)
