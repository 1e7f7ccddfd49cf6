"""Shown when the engine is gone: a failed status with its traceback, or a live status whose pid is
dead. Says what happened and that r resumes from the newest training state."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.state import RunState


class EngineLost(VerticalScroll, can_focus=False):  # hidden most of the time: it must not hold the focus
    DEFAULT_CSS = """
    EngineLost {
        display: none;
        height: auto;
        max-height: 14;
        border: heavy $error;
        border-title-color: $error;
        border-subtitle-color: $error;
        background: $error 10%;
        padding: 0 1;
    }
    EngineLost.-visible { display: block; }
    EngineLost > Static { height: auto; }
    """

    def compose(self):
        self.border_title = "engine stopped unexpectedly"
        yield Static(id="lost-text")

    def show(self, state: RunState, lost: bool, log_tail: list[str]) -> None:
        visible = lost or state.failed
        self.set_class(visible, "-visible")
        if not visible:
            return
        theme = self.app.current_theme
        self.border_subtitle = "r resumes"  # on the frame: seen even when a small screen scrolls the text
        event = state.status_event
        text = Text()
        if state.failed and event is not None:
            self.border_title = "training failed"
            failed_at = state.iter if event.iter is None else event.iter
            text.append(f"failed at iteration {failed_at:,}: ", style=f"bold {theme.error}")
            text.append((event.error or "see the traceback") + "\n")
            tb = (event.traceback or "").rstrip()
            if tb:
                text.append(tb + "\n", style="dim")
        else:
            self.border_title = "engine lost"
            text.append("the log says ", style="dim")
            text.append(state.status or "running", style="bold")
            text.append(" but no engine process is alive (killed, out of memory, machine rebooted).\n",
                        style="dim")
            if log_tail:
                text.append("last lines of engine.log:\n", style="dim")
                text.append("\n".join(log_tail[-8:]) + "\n", style="dim")
        text.append("press ", style="")
        text.append("r", style=f"bold {theme.accent}")
        text.append(" to resume from the newest training state")
        self.query_one("#lost-text", Static).update(text)
