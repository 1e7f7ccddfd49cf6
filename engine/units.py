"""Formats and names both rooms share; stdlib only, so the cockpit imports it without the engine's libraries."""

from __future__ import annotations

import math

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
