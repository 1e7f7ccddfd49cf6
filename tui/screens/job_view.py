"""Attach to a job (demo, subset, export, ranking...): its progress and each result as it lands.

A training run opens the dashboard; a job has no losses to chart, so the run list opens this view
for logs whose header says `source: job:<kind>`. It follows the same event log with JobProgress.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from engine.protocol import RunPaths
from tui.screens.dialogs import KEYS_JOB, HelpScreen
from tui.widgets.job_progress import JobProgress
from tui.widgets.sizes import SizeClasses


def result_line(event: dict[str, Any]) -> Text:
    """One result event as a line: its step or title, then its scalar figures."""
    label = event.get("title") or event.get("step") or event.get("job") or "result"
    figures = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
               for key, value in event.items()
               if key not in ("v", "t", "type", "job", "step", "title") and isinstance(value, (int, float, str))]
    return Text.assemble((f"{label}: ", "bold"), "  ".join(figures))


class JobViewScreen(SizeClasses, Screen[None]):
    DEFAULT_CSS = """
    JobViewScreen #job-view-title { height: 1; padding: 0 1; text-style: bold; text-wrap: nowrap;
                                    text-overflow: ellipsis; }
    JobViewScreen #job-results { height: 1fr; border: round $primary 40%; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "runs"),
        Binding("q", "app.quit", "quit"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(self, paths: RunPaths) -> None:
        super().__init__()
        self.paths = paths

    def compose(self) -> ComposeResult:
        title = Text(f"job {self.paths.root.name}")
        title.append(f"  ({self.paths.root})", style="dim")
        yield Static(title, id="job-view-title")
        yield JobProgress(id="job")
        yield RichLog(id="job-results", wrap=True, markup=False, min_width=20)  # wraps to the width it has
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(JobProgress).follow(self.paths.root)

    @on(JobProgress.Result)
    def _result(self, message: JobProgress.Result) -> None:
        results = self.query_one(RichLog)
        # wrapped at the log's own width (RichLog would measure against the console's)
        width = results.scrollable_content_region.width or None
        results.write(result_line(message.event.as_dict()), width=width)
        figures = message.event.figures
        if figures.get("comparison"):  # the demo's summary: the report's scores and the export's figures
            from tui.console import comparison_table, export_table

            results.write(comparison_table(figures["comparison"]), width=width)
            results.write(export_table(figures.get("export") or []), width=width)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(KEYS_JOB, f"keys: job {self.paths.root.name}"))
