"""The run's name, status badge, iteration / total with a bar, ETA and elapsed time."""

from __future__ import annotations

import math

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from engine.units import duration
from tui.state import RunState

STATUS_CLASSES = ("-starting", "-running", "-paused", "-stopping", "-stopped", "-finished", "-failed",
                  "-lost", "-unknown")


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
    }
    RunHeader.-running { border-bottom: tall $success; }
    RunHeader.-paused, RunHeader.-stopping, RunHeader.-starting { border-bottom: tall $warning; }
    RunHeader.-failed, RunHeader.-lost { border-bottom: tall $error; }
    RunHeader.-stopped, RunHeader.-finished { border-bottom: tall $secondary; }
    """

    status: reactive[str] = reactive("unknown")

    def watch_status(self, status: str) -> None:
        self.remove_class(*STATUS_CLASSES)
        self.add_class(f"-{status or 'unknown'}")

    def show(self, state: RunState, now: float, lost: bool = False) -> None:
        self.status = "lost" if lost else (state.status or "unknown")
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
        total = state.total_iter
        fraction = state.iter / total if total else math.nan
        text.append("iter ", style="dim")
        text.append(f"{state.iter:,}", style="bold")
        text.append(f" / {total:,}" if total else " / ?")
        if total:
            text.append(f"  {bar(fraction, 24)}", style=color)
            text.append(f" {100 * fraction:5.1f}%")
        text.append("   ETA ", style="dim")
        text.append(duration(state.eta(now)) if state.live and not lost else "-", style="bold")
        text.append("   elapsed ", style="dim")
        text.append(duration(state.elapsed(now)), style="bold")
        if math.isfinite(state.it_s):
            text.append("   ", style="dim")
            text.append(f"{state.it_s:.2f} it/s", style="bold")
        self.update(text)
