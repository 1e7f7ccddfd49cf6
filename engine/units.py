"""Formats and names both rooms share; stdlib only, so the cockpit imports it without the engine's libraries."""

from __future__ import annotations

import math
import re

from engine.protocol import UserError

# basicsr's own list (basicsr.data.data_util / IMG_EXTENSIONS of the paired datasets), lower case.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def duration(seconds: float | None) -> str:
    """A span as a dashboard shows it: m:ss below an hour, then 1h05m, then 2d03h; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


MAX_SIDE = 4096  # an export's frame side, in pixels


def format_size(size: tuple[int, int]) -> str:
    """(270, 480) -> '270x480', as parse_size reads it."""
    return f"{size[0]}x{size[1]}"


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """'270x480' -> (270, 480): height x width, positive integers up to MAX_SIDE."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match:
        raise UserError(f"{option} {text!r} is not HEIGHTxWIDTH",
                        f"write HEIGHTxWIDTH, e.g. {option} 270x480 (a 540p frame at x2)")
    size = int(match[1]), int(match[2])
    if min(size) < 1 or max(size) > MAX_SIDE:
        raise UserError(f"{option} {text!r}: each side must be between 1 and {MAX_SIDE} pixels",
                        f"e.g. {option} 270x480")
    return size
