"""The cockpit App: themes, screens and worker lifetimes. Build it with make_app() (tests do too).

Opens on the run list of a folder, or straight on one run's dashboard. Imports only Textual, the
standard library, PyYAML, engine.protocol and engine.files: the first frame comes in well under a
second. run() imports textual-image first (its terminal queries need stdin before Textual reads it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from engine.protocol import RunPaths
from tui.config import DEFAULT_THEME, Config, fallback_theme, load_config, load_themes, save_config


class CockpitApp(App):
    CSS_PATH = "cockpit.tcss"
    TITLE = "srcockpit"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "quit", show=False)]
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, root: Path, run: RunPaths | None = None, *, config: Config | None = None,
                 clock: Callable[[], float] = time.time, replay_speed: float | None = None,
                 save_settings: bool = True, theme_dirs: list[Path] | None = None) -> None:
        super().__init__()
        self.root = root
        self.initial_run = run
        self.config = config or load_config()
        self.clock = clock
        self.replay_speed = replay_speed
        self.save_settings = save_settings
        self.theme_dirs = theme_dirs
        self.theme_names: list[str] = []
        self.detached: str | None = None  # set by d: why the cockpit left while training goes on

    def on_mount(self) -> None:
        self.setup_themes()
        for problem in self.config.problems:
            self.notify(problem, title="settings", severity="warning", timeout=8)
        from tui.screens.run_list import RunListScreen

        if self.initial_run is None:
            self.push_screen(RunListScreen(self.root))
        else:
            self.attach(self.initial_run)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Textual's run, after textual-image's terminal queries: they need stdin before Textual reads it."""
        from tui.screens.images import prepare_image_widgets

        prepare_image_widgets()
        return super().run(*args, **kwargs)

    # ----------------------------------------------------------------- themes
    def setup_themes(self) -> None:
        themes, problems = load_themes(self.theme_dirs)
        names = {t.name for t in themes}
        if DEFAULT_THEME not in names:
            themes.insert(0, fallback_theme())
        for theme in themes:
            self.register_theme(theme)
        self.theme_names = [t.name for t in themes]
        for problem in problems:
            self.notify(problem, title="theme skipped", severity="warning", timeout=8)
        wanted = self.config.theme
        if wanted not in self.available_themes:
            if wanted != DEFAULT_THEME:
                self.notify(f"unknown theme {wanted!r}; using {DEFAULT_THEME}", severity="warning")
            wanted = DEFAULT_THEME
        self.theme = wanted

    def action_cycle_theme(self) -> None:
        names = self.theme_names or [self.theme]
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.config.theme = self.theme
        if self.save_settings:
            try:
                save_config(self.config)
            except OSError as error:
                self.notify(f"could not save the theme choice: {error}", severity="warning")
        self.notify(f"theme {self.theme}", timeout=2)
        if self.screen is not None and hasattr(self.screen, "redraw"):
            self.screen.redraw()
        elif hasattr(self.screen, "show") and getattr(self.screen, "summaries", None) is not None:
            self.screen.show(self.screen.summaries)

    # ----------------------------------------------------------------- screens
    def attach(self, paths: RunPaths) -> None:
        from tui.runs import summarise

        self.sub_title = paths.root.name
        if summarise(paths).source.startswith("job:"):  # a job has progress and results, no losses to chart
            from tui.screens.job_view import JobViewScreen

            self.push_screen(JobViewScreen(paths))
            return
        from tui.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(paths, replay_speed=self.replay_speed))

    def open_tool(self, kind: str, run: RunPaths | None = None) -> None:
        """The job screens (issue #6): subset wizard (w), weight transfer (T), ranking (k), export (x)."""
        if kind == "subset":
            from tui.screens.subset_wizard import SubsetWizardScreen

            self.push_screen(SubsetWizardScreen(self.root))
        elif kind == "transfer":
            from tui.screens.transfer import TransferScreen

            self.push_screen(TransferScreen(self.root))
        elif kind == "ranking":
            if run is None:
                self.notify("select a run first: ranking scores a run's checkpoints", severity="warning")
                return
            from tui.screens.ranking import RankingScreen

            self.push_screen(RankingScreen(self.root, run))
        elif kind == "export":
            from tui.screens.export import ExportScreen

            self.push_screen(ExportScreen(self.root, run))


def make_app(root: Path | None = None, run: str | Path | RunPaths | None = None, *,
             config: Config | None = None, clock: Callable[[], float] | None = None,
             replay_speed: float | None = None, save_settings: bool = True,
             theme_dirs: list[Path] | None = None) -> CockpitApp:
    """The cockpit on `root` (default: the current folder): the run list, or `run`'s dashboard.

    run: a RunPaths, a run folder, or a name under root/experiments (UserError if there is none).
    clock: the wall clock used for elapsed/ETA/ages (tests freeze it). replay_speed: pace a recorded
    log instead of tailing it. save_settings: False keeps the config file untouched.
    """
    root = Path(root or Path.cwd())
    paths: RunPaths | None
    if run is None or isinstance(run, RunPaths):
        paths = run
    else:
        from tui.runs import resolve_run

        paths = resolve_run(str(run), root)
    return CockpitApp(root, paths, config=config, clock=clock or time.time, replay_speed=replay_speed,
                      save_settings=save_settings, theme_dirs=theme_dirs)
