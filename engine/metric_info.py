"""What each validation metric is: its label, unit, better direction and how it is written.

Standard library only, so the cockpit (tui/) reads it without torch; engine/metrics.py registers the
functions with basicsr beside it. A `val.metrics` entry is known by its key (psnr, niqe, ...) or its
basicsr `type` (calculate_psnr, ...); its own `better: higher|lower` (basicsr's key, which basicsr's
best-metric record also reads) wins over the table. A metric in neither table is higher-better, as
basicsr assumes.

Adding a metric: register its function in engine/metrics.py and add one MetricInfo line here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricInfo:
    label: str  # short: a table column at 80 columns
    better: Better
    unit: str = ""
    digits: int = 3
    percent: bool = False  # a share 0-1, written as a percentage
    title: str = ""  # long: a report's column heading (the label when empty)

    @property
    def arrow(self) -> str:
        return "↑" if self.better == "higher" else "↓"

    def format(self, value: float | None) -> str:
        """The figure as the cockpit writes it ("-" when there is none)."""
        if value is None or not math.isfinite(value):
            return "-" if value is None or math.isnan(value) else str(value)
        return f"{value:.{self.digits}%}" if self.percent else f"{value:.{self.digits}f}"

    def is_better(self, value: float, than: float) -> bool:
        return value > than if self.better == "higher" else value < than


METRICS: dict[str, MetricInfo] = {
    "psnr": MetricInfo("PSNR", "higher", "dB", 2),
    "ssim": MetricInfo("SSIM", "higher", "", 4),
    "niqe": MetricInfo("NIQE", "lower", "", 2),
    "color_shift": MetricInfo("colour", "lower", "grey levels", 2, title="colour shift"),
    "chroma_shift": MetricInfo("chroma", "lower", "grey levels", 2, title="chroma shift"),
    "checkerboard": MetricInfo("checker", "lower", "of error energy", 2, percent=True, title="checkerboard"),
    "sharpness": MetricInfo("sharp", "higher", "× GT detail", 2, title="sharpness"),
}
# The figures the ranking and the comparison report show beside PSNR/SSIM: (key, label, title)
SHOWN_FIGURES = tuple((key, METRICS[key].label, METRICS[key].title or METRICS[key].label)
                      for key in ("niqe", "color_shift", "chroma_shift", "checkerboard", "sharpness"))
TYPES: dict[str, str] = {  # basicsr metric type -> the METRICS entry it computes
    "calculate_psnr": "psnr",
    "calculate_psnr_pt": "psnr",
    "calculate_ssim": "ssim",
    "calculate_ssim_pt": "ssim",
    "calculate_niqe": "niqe",
    "calculate_niqe_or_nan": "niqe",
    "calculate_color_shift": "color_shift",
    "calculate_checkerboard": "checkerboard",
    "calculate_sharpness": "sharpness",
}
ORDER = tuple(METRICS)  # the order tables and charts list them in


def metric_info(name: str, entry: Mapping[str, Any] | None = None) -> MetricInfo:
    """What the `val.metrics` entry `name` (its settings `entry`, if known) measures."""
    entry = entry or {}
    known = METRICS.get(name) or METRICS.get(TYPES.get(str(entry.get("type", "")), ""))
    info = known or MetricInfo(name[:8], "higher")
    better = entry.get("better")
    if better in ("higher", "lower") and better != info.better:
        return MetricInfo(info.label, better, info.unit, info.digits, info.percent)
    return info


def ordered(names: Iterable[str]) -> list[str]:
    """The metric names in the table's order, unknown ones last (alphabetically)."""
    rank = {name: k for k, name in enumerate(ORDER)}
    return sorted(set(names), key=lambda name: (rank.get(name, len(rank)), name))


def figure_text(key: str, value: object) -> str:
    """One shown figure in its format; '-' for none or nan (NIQE of an image too small for it)."""
    return METRICS[key].format(value) if isinstance(value, (int, float)) and math.isfinite(value) else "-"
