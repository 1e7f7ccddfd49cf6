"""The run list: every experiments/*/cockpit/events.jsonl under the folder, newest first.

enter attaches, n starts a run from an options file (tui.launcher.start_run), D starts the demo
(tui.launcher.start_demo), space marks runs and c overlays the marked ones (tui.screens.compare).
Summaries are read in a thread worker (a long log costs a few reads, but a folder may hold many runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.protocol import RunPaths, UserError
from tui.runs import RunSummary, age, list_runs
from tui.screens.dialogs import KEYS_RUNS, HelpScreen, PathScreen
from tui.widgets.sizes import SizeClasses

STATUS_COLORS = {"running": "success", "starting": "warning", "paused": "warning", "stopping": "warning",
                 "failed": "error", "lost": "error", "stopped": "secondary", "finished": "secondary"}


class RunListScreen(SizeClasses, Screen):
    DEFAULT_CSS = """
    RunListScreen #runs-title { height: 3; padding: 1 2 0 2; background: $panel; }
    RunListScreen DataTable { height: 1fr; margin: 1 2 0 2; }
    RunListScreen #runs-empty { margin: 1 2; color: $text-muted; height: auto; }
    RunListScreen.-narrow DataTable { margin: 1 0 0 0; }
    RunListScreen.-narrow #runs-empty { margin: 1 1; }
    RunListScreen.-short #runs-title { height: 1; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "attach", "attach", priority=True),
        Binding("n", "new_run", "new run"),
        Binding("D", "demo", "demo"),
        Binding("R", "refresh", "refresh"),
        Binding("space", "mark", "mark", show=False),
        Binding("c", "compare", "compare marked", show=False),  # in the help: the footer is full at 80 columns
        Binding("w", "tool('subset')", "subset wizard", show=False),
        Binding("T", "tool('transfer')", "weight transfer", show=False),
        Binding("k", "tool('ranking')", "rank checkpoints", show=False),
        Binding("x", "tool('export')", "export", show=False),
        Binding("t", "app.cycle_theme", "theme"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__(name="runs")
        self.root = root
        self.summaries: list[RunSummary] = []
        self.loaded = False
        self.marked: list[Path] = []  # run roots, in the order marked (the compare view's order)

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        title = Text()
        title.append("srcockpit", style="bold")
        title.append(f"  runs in {self.root / 'experiments'}", style="dim")  # as given: relative stays relative
        self.query_one("#runs-title", Static).update(title)
        table = self.query_one(DataTable)
        for label, key in (("run", "name"), ("status", "status"), ("iteration", "iter"),
                           ("best PSNR", "psnr"), ("last event", "last")):
            table.add_column(label, key=key)
        self.action_refresh()
        self.set_interval(5.0, self.action_refresh, name="refresh-runs")

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.action_refresh()

    @work(thread=True, exclusive=True, group="summaries", exit_on_error=False)
    def action_refresh(self) -> None:
        summaries = list_runs(self.root)
        summaries.sort(key=lambda s: (not s.alive, -(s.last_t or 0)))
        self.app.call_from_thread(self.show, summaries)

    def show(self, summaries: list[RunSummary]) -> None:
        self.summaries, self.loaded = summaries, True
        theme = self.app.current_theme
        table = self.query_one(DataTable)
        selected = self.selected()
        table.clear()
        now = self.app.clock()
        for s in summaries:
            status = s.display_status
            color = getattr(theme, STATUS_COLORS.get(status, "foreground"), None) or theme.foreground
            iteration = f"{s.iter:,} / {s.total_iter:,}" if s.total_iter else f"{s.iter:,}"
            psnr = f"{s.best_psnr:.2f} dB" if s.best_psnr is not None else "-"
            if s.best_psnr is not None and s.best_psnr_iter is not None:
                psnr += f" @{int(s.best_psnr_iter):,}"
            psnr += weights_label(s)
            shown = Text.assemble(("● " if s.alive else "  ", theme.success), (status, f"bold {color}"))
            mark = ("✓ ", f"bold {theme.accent}") if s.paths.root in self.marked else ""
            table.add_row(
                Text.assemble(mark, (s.name, "bold")), shown,
                Text(iteration, justify="right"), Text(psnr, justify="right"),
                Text(age(now - s.last_t) if s.last_t else "-", style="dim"),
                key=str(s.paths.root),
            )
        if selected is not None:
            keys = [str(s.paths.root) for s in summaries]
            if str(selected.root) in keys:
                table.move_cursor(row=keys.index(str(selected.root)))
        empty = self.query_one("#runs-empty", Static)
        empty.display = not summaries
        empty.update(Text.assemble(
            "No runs here yet.  ", ("n", f"bold {theme.accent}"), " starts one from an options file, ",
            ("D", f"bold {theme.accent}"), " starts the demo (a few minutes on a CPU)."))
        if summaries:
            table.focus()

    def selected(self) -> RunPaths | None:
        table = self.query_one(DataTable)
        if not self.summaries or table.cursor_row is None or table.cursor_row >= len(self.summaries):
            return None
        return self.summaries[table.cursor_row].paths

    def action_attach(self) -> None:
        paths = self.selected()
        if paths is None:
            self.notify("no run selected: n starts one, D starts the demo", severity="warning")
            return
        self.app.attach(paths)

    def action_new_run(self) -> None:
        def answer(value: str | None) -> None:
            if value:
                self.start_run(Path(value).expanduser())

        options = sorted((self.root / "options").glob("*.yml"))
        self.app.push_screen(PathScreen("Options file of the new run (basicsr YAML):",
                                        str(options[0]) if options else "", "options/train.yml"), answer)

    @work(thread=True, group="launch", exit_on_error=False)
    def start_run(self, options: Path) -> None:
        from tui import launcher

        self.app.call_from_thread(self.notify, f"starting a run from {options}…")
        try:
            paths = launcher.start_run(options, root=self.root)
        except UserError as error:
            self.app.call_from_thread(self.notify, str(error), title="not started", severity="error",
                                      timeout=12)
            return
        except Exception as error:
            self.app.call_from_thread(self.notify, f"{type(error).__name__}: {error}", title="not started",
                                      severity="error", timeout=12)
            return
        self.app.call_from_thread(self.app.attach, paths)

    @work(thread=True, group="launch", exit_on_error=False)
    def action_demo(self) -> None:
        from tui import launcher

        self.app.call_from_thread(self.notify, "starting the demo…")
        try:
            paths = launcher.start_demo(root=self.root)
        except UserError as error:
            self.app.call_from_thread(self.notify, str(error), title="demo not started", severity="error",
                                      timeout=12)
            return
        except Exception as error:
            self.app.call_from_thread(self.notify, f"{type(error).__name__}: {error}",
                                      title="demo not started", severity="error", timeout=12)
            return
        self.app.call_from_thread(self.notify, f"the demo runs in {paths.root.parent.parent} (it has written its "
                                  "first event): its steps and stages appear here (enter attaches)",
                                  title="demo started", timeout=10)
        self.app.call_from_thread(self.action_refresh)

    def action_mark(self) -> None:
        paths = self.selected()
        if paths is None:
            return
        if paths.root in self.marked:
            self.marked.remove(paths.root)
        else:
            self.marked.append(paths.root)
        self.show(self.summaries)

    def action_compare(self) -> None:
        from tui.screens.compare import CompareScreen

        if len(self.marked) < 2:
            self.notify("mark two runs or more with space first (a chain's stages line up end to end)",
                        severity="warning")
            return
        self.app.push_screen(CompareScreen([RunPaths(root) for root in self.marked]))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(KEYS_RUNS, "keys: run list"))

    def action_tool(self, kind: str) -> None:
        self.app.open_tool(kind, self.selected())


def weights_label(summary: RunSummary) -> str:
    """Which weights the best PSNR scored, and the raw net_g's latest beside an EMA best."""
    if summary.best_psnr is None or not summary.scored:
        return ""
    label = " EMA" if summary.scored == "net_g_ema" else " net_g"
    if summary.net_g_psnr is not None:
        label += f" · net_g {summary.net_g_psnr:.2f}"
    return label
