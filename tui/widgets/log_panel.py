"""The run's log: log events, basicsr's train log (its INFO lines and warnings) and what else the engine
printed (cockpit/engine.log), newest at the bottom. Hidden while it
has no line: an empty box would take rows a small terminal needs for the figures."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from tui.tailer import CONTINUED

UNSTAMPED = ("engine", CONTINUED)  # raw output, and a record's later lines: no time of their own


class LogPanel(RichLog):
    DEFAULT_CSS = """
    LogPanel {
        height: 1fr;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    LogPanel.-empty { display: none; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=200, wrap=False, markup=False, highlight=False, classes="-empty", **kwargs)
        self.border_title = "log"

    def add_lines(self, lines: list[tuple[float, str, str]]) -> None:
        theme = self.app.current_theme
        colors = {"error": theme.error, "warning": theme.warning}
        if lines:
            self.remove_class("-empty")
        for t, level, message in lines:
            text = Text(no_wrap=True, overflow="ellipsis")
            if level not in UNSTAMPED:
                text.append(time.strftime("%H:%M:%S ", time.localtime(t)), style="dim")
                if level in colors:
                    text.append(f"{level} ", style=f"bold {colors[level]}")
            text.append(message, style="dim" if level == "debug" else "")
            self.write(text)
