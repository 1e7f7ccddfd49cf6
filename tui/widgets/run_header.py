"""The run's name, status badge, iteration / total with a bar, ETA and elapsed time."""

from __future__ import annotations

import math

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from engine.protocol import PAUSED, RUNNING
from engine.units import duration
from tui.state import RunState
from tui.widgets.text_update import update_text

MIN_BAR, MAX_BAR = 6, 24
STATUS_CLASSES = ("-starting", "-running", "-paused", "-stopping", "-stopped", "-finished", "-failed",
                  "-lost", "-unknown", "-reading")
READING = "reading log"  # the status shown until the history is in: an empty state is not yet a run's


def bar(fraction: float, width: int) -> str:
    fraction = min(1.0, max(0.0, fraction if math.isfinite(fraction) else 0.0))
    full = fraction * width
    whole = int(full)
    part = " ▏▎▍▌▋▊▉"[int((full - whole) * 8)] if whole < width else ""
    return ("█" * whole + part).ljust(width)


class RunHeader(Static):
    DEFAULT_CSS = """
    RunHeader {
        height: 3;
        padding: 0 1;
        background: $panel;
        border-bottom: tall $primary;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    RunHeader.-running { border-bottom: tall $success; }
    RunHeader.-paused, RunHeader.-stopping, RunHeader.-starting { border-bottom: tall $warning; }
    RunHeader.-failed, RunHeader.-lost { border-bottom: tall $error; }
    RunHeader.-stopped, RunHeader.-finished { border-bottom: tall $secondary; }
    """

    status: reactive[str] = reactive("unknown")
    reading = False  # the dashboard sets it while the tailer folds the log's history

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[RunState, float, bool] | None = None

    def on_resize(self) -> None:
        if self._shown is not None:  # the bar's width follows the header's
            self.show(*self._shown)

    def watch_status(self, status: str) -> None:
        self.remove_class(*STATUS_CLASSES)
        self.add_class("-reading" if status == READING else f"-{status or 'unknown'}")

    def show(self, state: RunState, now: float, lost: bool = False) -> None:
        self._shown = (state, now, lost)
        self.status = "lost" if lost else (state.status or (READING if self.reading else "unknown"))
        theme = self.app.current_theme
        colors = {
            "running": theme.success, "paused": theme.warning, "starting": theme.warning,
            "stopping": theme.warning, "failed": theme.error, "lost": theme.error,
            "finished": theme.secondary, "stopped": theme.secondary,
        }
        color = colors.get(self.status) or theme.primary
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {self.status.upper()} ", style=f"bold {theme.background} on {color}")
        text.append(f"  {state.name or '?'}", style="bold")
        run = state.run
        stage, device, world = run.stage, run.device, run.world_size
        extras = [str(x) for x in (stage, device, f"{world} ranks" if world and world > 1 else None) if x]
        if extras:
            text.append("  " + " · ".join(extras), style="dim")
        text.append("\n")
        text.append_text(self.progress_line(state, now, lost, color))
        update_text(self, text)  # two unwrapped lines: a tick never re-lays the screen, an idle one repaints nothing

    def progress_line(self, state: RunState, now: float, lost: bool, color: str) -> Text:
        """iter n / total, a bar, %, ETA, elapsed and it/s; the bar takes what the figures leave of the width,
        so at 80 columns every figure is still there (and the bar goes before any figure does)."""
        total = state.total_iter
        fraction = state.iter / total if total else math.nan
        figures = Text(no_wrap=True, overflow="ellipsis")
        if total:
            figures.append(f" {100 * fraction:5.1f}%")
        running = state.status == RUNNING and not lost
        figures.append("  ETA ", style="dim")
        figures.append(duration(state.eta(now)) if running else state.status if state.status == PAUSED else "-",
                       style="bold")
        figures.append("  elapsed ", style="dim")
        figures.append(duration(state.elapsed(now)), style="bold")
        if running and math.isfinite(state.it_s):
            figures.append("  ")
            figures.append(f"{state.it_s:.2f} it/s", style="bold")
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("iter ", style="dim")
        line.append(f"{state.iter:,}", style="bold")
        line.append(f" / {total:,}" if total else " / ?")
        room = (self.content_size.width or 80) - line.cell_len - figures.cell_len - 2
        if total and room >= MIN_BAR:
            line.append("  ")
            line.append(bar(fraction, min(MAX_BAR, room)), style=color)
        line.append_text(figures)
        return line
