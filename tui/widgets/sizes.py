"""Layouts chosen by the terminal's size.

A screen that mixes in SizeClasses carries Textual's breakpoint classes: -narrow below NARROW_BELOW
columns (else -wide) and -short below SHORT_BELOW rows (else -tall); cockpit.tcss and the widgets' CSS
switch layouts on them (the dashboard's columns become one scrolling column, headers lose their
padding). Below NARROW_BELOW the footer goes compact too, so every key, `? help` included, fits in 80
columns.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.widgets import Footer

NARROW_BELOW = 120
SHORT_BELOW = 32


class SizeClasses:
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (SHORT_BELOW, "-tall")]

    def on_resize(self, event: events.Resize) -> None:
        for footer in self.query(Footer):
            footer.compact = event.size.width < NARROW_BELOW
