"""Layouts chosen by the terminal's size.

A screen that mixes in SizeClasses carries -narrow below NARROW_BELOW columns (else -wide) and -short
below SHORT_BELOW rows (else -tall); cockpit.tcss and the screens' CSS switch layouts on them (the
dashboard's columns become one scrolling column, headers lose their padding). Below NARROW_BELOW the
footer goes compact too, so every key, `? help` included, fits in 80 columns. The classes are set again
when a screen comes back to the top: a terminal resized under another screen is seen then.
"""

from __future__ import annotations

from textual import events
from textual.geometry import Size
from textual.widgets import Footer

NARROW_BELOW = 120
SHORT_BELOW = 32


class SizeClasses:
    def apply_size(self, size: Size) -> None:
        narrow, short = size.width < NARROW_BELOW, size.height < SHORT_BELOW
        self.update_classes({"-narrow": narrow, "-wide": not narrow, "-short": short, "-tall": not short})
        for footer in self.query(Footer):
            footer.compact = narrow

    def on_resize(self, event: events.Resize) -> None:
        self.apply_size(event.size)

    def on_screen_resume(self) -> None:
        self.apply_size(self.app.size)
