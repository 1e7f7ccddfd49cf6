"""What export steps share: the request (checkpoint, folder, options) and what earlier steps made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ExportContext:
    """One export's request and state; `made` holds what the steps declared in `makes` (see steps/__init__)."""

    checkpoint: Path
    out: Path
    size: tuple[int, int]
    sim_size: tuple[int, int]
    calib: Path | str | None
    quant: str
    min_psnr: float
    force: bool
    htp: bool
    sim_frames: int
    calib_frames: int
    eval_frames: int
    aihub: bool
    seed: int
    output_prepared: bool
    say: Callable[[str], None] = lambda text: None  # a progress line inside the running step (set by the pipeline)
    figures: dict[str, Any] = field(default_factory=dict)  # manifest figures, one entry per step
    roles: list[tuple[Path, str]] = field(default_factory=list)  # artefacts and what each is
    made: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return self.checkpoint.stem


@dataclass
class Outcome:
    """How a step ended: its message, status ("done", "warning", "skipped") and its report figures."""

    message: str
    status: str = "done"
    figures: dict[str, Any] = field(default_factory=dict)


def outcome(message: str, status: str = "done", **figures: Any) -> Outcome:
    return Outcome(message, status, figures)


def skipped(message: str) -> Outcome:
    return Outcome(message, "skipped")
