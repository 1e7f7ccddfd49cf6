"""Show a panel's new Text only when it differs, and re-lay the screen only when its height can change.

A Static's update lays out the whole screen by default, and Textual then repaints every widget, the braille
charts included; a live run's panels change a figure a second, rarely their number of lines.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def update_text(widget: Static, text: Text) -> None:
    """`widget` shows `text`: nothing is done when it already does; an unwrapped text with as many lines
    as the shown one keeps the widget's height, so the screen is not laid out again."""
    shown = widget.content
    if isinstance(shown, Text) and shown == text:
        return
    same_height = bool(text.no_wrap) and isinstance(shown, Text) and shown.plain.count("\n") == text.plain.count("\n")
    widget.update(text, layout=not same_height)
