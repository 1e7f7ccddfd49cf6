"""Live health detectors: the plan's failure table (section 7.4) as `alert` events.

Each detector looks only at figures the loop already has (losses, speed, validation metrics, free
disk), so watching costs nothing measurable. An alert is raised once per episode, not per
iteration. Two conditions stop the run: a non-finite loss (the weights about to be written would
be NaN, so nothing is saved and the last good checkpoint stays the newest) and a disk about to
fill (stopped cleanly while a checkpoint still fits).
"""

from __future__ import annotations

import math
import shutil
from collections import deque
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

from engine.events import EventWriter
from engine.protocol import AlertEvent, LossKind, classify_loss

WINDOW = 200  # iterations compared for trends
MIN_FREE_BYTES = 1 << 30  # stop when less than this is left on the experiment's disk
DISK_CHECK_EVERY = 50
SLOW_IT_S = 2.0  # the plan's "training too slow" threshold, on a GPU
D_COLLAPSE = 1e-3  # discriminator losses this small: it wins every time (mode collapse)


class HealthMonitor:
    def __init__(self, opt: dict[str, Any], events: EventWriter) -> None:
        self.events = events
        self.on_gpu = opt.get("num_gpu", 0) > 0
        self.folder = Path(opt["path"]["experiments_root"])
        self.history: dict[str, deque[float]] = {}
        self.raised: set[str] = set()
        self.best_psnr: dict[str, float] = {}

    def alert(self, code: str, level: str, message: str, hint: str = "") -> None:
        if code in self.raised:
            return
        self.raised.add(code)
        self.events.emit(AlertEvent(level=level, code=code, message=message, hint=hint))

    def clear(self, code: str) -> None:
        self.raised.discard(code)

    def after_iter(self, current_iter: int, losses: dict[str, float], it_s: float) -> str | None:
        """Record one iteration; a reason string when the run must stop now."""
        for name, value in losses.items():
            if not math.isfinite(value):
                self.alert("nan", "error", f"{name} is {value} at iteration {current_iter}",
                           "lower the learning rate or the GAN loss weight, and check the data; "
                           "resume starts from the last good checkpoint")
                return f"{name} became {value}"
            self.history.setdefault(name, deque(maxlen=WINDOW)).append(value)
        self._trends()
        if self.on_gpu and current_iter > 100 and 0 < it_s < SLOW_IT_S:
            self.alert("slow", "warning", f"{it_s:.2f} it/s is below the plan's {SLOW_IT_S} it/s",
                       "check the data-wait share: more num_worker_per_gpu, prefetch_mode cuda, or "
                       "pre-extracted sub-images (`srcockpit data extract-subimages`)")
        if current_iter % DISK_CHECK_EVERY == 0:
            free = shutil.disk_usage(self.folder).free
            if free < MIN_FREE_BYTES:
                self.alert("disk", "error", f"only {free / 2**20:.0f} MiB free on the disk of {self.folder}",
                           "free space, then `srcockpit resume`")
                return "low disk space"
        return None

    def _trends(self) -> None:
        # the model's own names (l_g_pix for RealESRGAN, l_pix for RealESRNet / SRModel): sorted by engine.losses
        for name, values in self.history.items():
            kind = classify_loss(name)
            if kind is LossKind.PIXEL and len(values) == WINDOW:
                self._pixel_trend(name, list(values))
            elif kind in (LossKind.D_REAL, LossKind.D_FAKE):
                self._d_collapse(name, values)

    def _pixel_trend(self, name: str, values: list[float]) -> None:
        half = WINDOW // 2
        first, second = values[:half], values[half:]
        if fmean(second) > 1.5 * fmean(first):
            self.alert("diverging", "warning", f"{name} rose {fmean(second) / fmean(first):.1f}x over the "
                       f"last {WINDOW} iterations", "reduce the learning rate; check the data")
        elif pstdev(second) > fmean(second):
            self.alert("oscillating", "warning", f"{name} oscillates more than its own size",
                       "reduce the learning rate")

    def _d_collapse(self, name: str, values: deque[float]) -> None:
        if len(values) >= 50 and max(list(values)[-50:]) < D_COLLAPSE:
            self.alert("d_collapse", "warning", f"{name} stayed below {D_COLLAPSE} for 50 iterations: "
                       "the discriminator wins every time", "lower the GAN loss weight or raise net_d_iters")

    def after_val(self, current_iter: int, dataset: str, metrics: dict[str, float]) -> None:
        psnr = metrics.get("psnr")
        if psnr is None:
            return
        best = self.best_psnr.get(dataset)
        if best is not None and psnr < best - 0.5:
            self.alert(f"psnr_falling:{dataset}", "warning", f"{dataset} PSNR {psnr:.2f} dB is "
                       f"{best - psnr:.2f} dB below its best", "the best checkpoint is kept; "
                       "`srcockpit rank` picks it")
        else:
            self.clear(f"psnr_falling:{dataset}")
        self.best_psnr[dataset] = max(psnr, best if best is not None else psnr)
