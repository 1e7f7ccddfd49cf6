"""Small modal dialogs: confirm (with a choice of answers), ask for a path, the key help."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmScreen(ModalScreen[str | None]):
    """A question and buttons; dismisses with the chosen button's id (None on escape)."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 64; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    ConfirmScreen Label { width: 100%; margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel"),
        Binding("y", "choose_first", "yes", show=False),
        Binding("n", "cancel", "no", show=False),
    ]

    def __init__(self, question: str, choices: list[tuple[str, str, str]] | None = None) -> None:
        """choices: (id, label, variant); the first is the default (y)."""
        super().__init__()
        self.question = question
        self.choices = choices or [("yes", "Yes", "error"), ("no", "No", "default")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                for ident, label, variant in self.choices:
                    yield Button(label, id=ident, variant=variant)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one(f"#{self.choices[-1][0]}", Button).focus()

    @on(Button.Pressed)
    def chosen(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id in ("no", "cancel") else event.button.id)

    def action_choose_first(self) -> None:
        self.dismiss(self.choices[0][0])

    def action_cancel(self) -> None:
        self.dismiss(None)


class PathScreen(ModalScreen[str | None]):
    """Ask for a path (the options file of a new run)."""

    DEFAULT_CSS = """
    PathScreen { align: center middle; }
    PathScreen > Vertical {
        width: 72; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    PathScreen Static { margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, prompt: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.prompt, self.value, self.placeholder = prompt, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.prompt)
            yield Input(self.value, placeholder=self.placeholder, id="path")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


KEYS_DASHBOARD = [
    ("s", "stop the run (asks first); the engine saves a resumable state"),
    ("p", "pause between iterations"),
    ("r", "resume: unpause a paused run, or restart a stopped/failed one"),
    ("c", "save a checkpoint now"),
    ("v", "validate now"),
    ("m", "cycle the smoothing of the loss curves"),
    ("M", "chart the next validation metric (PSNR, SSIM, NIQE, colour shift, ...)"),
    ("C", "compare with the earlier stages this run continues (one iteration axis)"),
    ("a", "mitigate the newest alert: its suggested set command (lr, gan_weight, ...), asked first"),
    ("i", "validation images: LR | output | GT, by image and iteration"),
    ("d", "detach: leave the cockpit, training goes on"),
    ("escape", "back to the run list"),
    ("q", "quit (asks whether to stop a live run)"),
]
KEYS_RUNS = [
    ("enter", "attach to the selected run"),
    ("n", "start a run from an options file"),
    ("D", "start the demo"),
    ("R", "refresh the list"),
    ("space", "mark the run for comparing (again: unmark)"),
    ("c", "compare the marked runs: PSNR, SSIM and loss on one axis, a chain's stages end to end"),
    ("q", "quit"),
]
KEYS_IMAGES = [
    ("right / left", "next / previous validation image (n / p too)"),
    ("down / up", "the same crop one validation later / earlier: before and after"),
    ("home / end", "the same crop at the first / last validation"),
    ("shift+arrows", "move the crop (kept while stepping through iterations); 0 centres it"),
    ("+ / -", "zoom in / out"),
    ("escape", "back to the dashboard"),
]
KEYS_JOB = [
    ("escape", "back to the run list (the job goes on)"),
    ("q", "quit the cockpit (the job goes on)"),
]
KEYS_ALL = [
    ("w", "dataset subset wizard"),
    ("T", "weight transfer"),
    ("k", "checkpoint ranking"),
    ("x", "export for QCS8550"),
    ("t", "cycle the theme (remembered)"),
    ("?", "this help"),
]


class HelpScreen(ModalScreen[None]):
    """The keys of a screen and of every screen, in a box that scrolls where the terminal is shorter than the
    list (the dashboard's is about 30 rows at 76 columns: an 80x24 terminal showed two-thirds of it)."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; height: auto; max-height: 100%; padding: 0 2;
        border: thick $primary; background: $surface;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "close")]

    def __init__(self, keys: list[tuple[str, str]], title: str = "keys") -> None:
        super().__init__()
        self.keys, self.title_text = keys, title

    def compose(self) -> ComposeResult:
        theme = self.app.current_theme
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style=f"bold {theme.accent}", no_wrap=True)
        table.add_column()
        for key, what in [*self.keys, *KEYS_ALL]:
            table.add_row(key, what)
        with VerticalScroll() as box:  # focused: up, down, page keys, home and end scroll it
            box.border_title = self.title_text
            box.border_subtitle = "escape closes"
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
