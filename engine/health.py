"""Live health detectors: the plan's failure table (section 7.4) as `alert` events.

Each detector looks only at figures the loop already has (losses, speed, validation metrics, free
disk), so watching costs nothing measurable. An alert is raised once per episode, not per
iteration. Two conditions stop the run, as a failure (non-zero exit): a non-finite loss (the
weights about to be written would be NaN, so nothing is saved and the last good checkpoint stays
the newest) and a disk about to fill (DiskGuard: stopped with a checkpoint while one still fits).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

from engine.artifacts import figure_names
from engine.events import EventWriter
from engine.files import free_bytes, mount_point, size_text
from engine.protocol import AlertEvent, LossKind, classify_loss

WINDOW = 200  # iterations compared for trends
# The disk guard stops the run when less than CHECKPOINTS_KEPT_FREE checkpoints plus DISK_SLACK are free: one
# scheduled save may come before the next check, and the stop writes one more. The slack covers what else a
# run writes between two checks (validation images, the event log, basicsr's log).
CHECKPOINTS_KEPT_FREE = 2
DISK_SLACK = 8 << 20
LOW_DISK_WARNING = 10  # checkpoints short of the stop: a warning first
SLOW_IT_S = 2.0  # the plan's "training too slow" threshold, on a GPU
D_COLLAPSE = 1e-3  # discriminator losses this small: it wins every time (mode collapse)
# Artifact limits (engine/artifacts.py figures), set from the demo's 5 validation photos (issue 20): bicubic shifts
# no colour (0.01 grey level); the shipped original model and its 32/32 transfer brighten by 1.6-2.0 (chroma
# 0.13-0.35); a 40-iteration CPU GAN stage's raw weights swing from -1.7 to +0.2 between validations. Their
# checkerboard share is 0.16-0.48% (bicubic 0.17%); their detail 0.84-0.96 of GT's (raw GAN weights without
# perceptual loss 0.42-0.52, bicubic 0.49, nearest 0.53).
COLOR_SHIFT_MAX = 3.0  # grey levels, largest |mean SR - GT| of B, G, R: 1.5x the demo's start
CHROMA_SHIFT_MAX = 1.0  # grey levels, |mean (Cb, Cr) shift|: 3x the original model's
COLOR_GROWTH = {"color": 0.5, "chroma": 0.25}  # a rise this large over 3 validations in a row is a drift
CHECKERBOARD_MAX = 0.01  # share of the error energy at the upscale's period: 2x the most measured
CHECKERBOARD_OVER_BICUBIC = 3.0  # ... and this many times bicubic's share on the same images
SHARPNESS_MIN = 0.6  # detail energy vs GT's: below it the output is nearer bicubic's smoothness than GT's
COLOR_HINT = ("reduce the GAN loss weight (train.gan_opt.loss_weight) and check the data's channel order (BGR/RGB); "
              "`srcockpit rank` keeps the checkpoint before the drift")


@dataclass(frozen=True)
class Verdict:
    """Why the run must stop now, what the user can do, and whether the stop writes a checkpoint."""

    reason: str
    hint: str
    save: bool


def checkpoint_bytes_estimate(model: Any) -> int:
    """One checkpoint before any is on disk: the weights of net_g, its EMA and net_d, the optimizers' moments
    (Adam keeps two per weight) and the training-pair pool."""
    nets = [getattr(model, name) for name in ("net_g", "net_g_ema", "net_d") if hasattr(model, name)]
    weights = sum(t.numel() * t.element_size() for net in nets for t in net.state_dict().values())
    moments = sum(2 * p.numel() * p.element_size() for optimizer in getattr(model, "optimizers", [])
                  for group in optimizer.param_groups for p in group["params"])
    pool = sum(getattr(model, name).nbytes for name in ("queue_lr", "queue_gt") if hasattr(model, name))
    return weights + moments + pool


class DiskGuard:
    """Stops the run while a checkpoint still fits. One statvfs per iteration (microseconds); the size of a
    checkpoint is measured from the files of the newest save, estimated from the model before the first."""

    def __init__(self, folder: Path, model: Any) -> None:
        self.folder = folder
        self.model = model
        self.checkpoint_bytes: int | None = None
        self._mount: Path | None = None

    def saved(self, files: Sequence[Path]) -> None:
        """The files one checkpoint wrote (net_g with its EMA, net_d, the training state)."""
        self.checkpoint_bytes = sum(path.stat().st_size for path in files if path.is_file())

    def margin(self) -> int:
        if self.checkpoint_bytes is None:  # estimated once the pair pool exists (after the first iteration)
            self.checkpoint_bytes = checkpoint_bytes_estimate(self.model)
        return CHECKPOINTS_KEPT_FREE * self.checkpoint_bytes + DISK_SLACK

    def check(self, alert: Any) -> Verdict | None:
        free = free_bytes(self.folder)
        margin = self.margin()
        if free >= margin + LOW_DISK_WARNING * self.checkpoint_bytes:
            return None
        self._mount = self._mount or mount_point(self.folder)
        disk = f"the disk of {self.folder} (mounted at {self._mount}, {size_text(free)} free)"
        if free >= margin:
            alert("disk_low", "warning", f"{disk} has room for fewer than {LOW_DISK_WARNING} more checkpoints",
                  f"the run stops, with a checkpoint, below {size_text(margin)} free")
            return None
        reason = f"low disk space: {disk}; a checkpoint takes {size_text(self.checkpoint_bytes)}"
        hint = f"free space on {self._mount}, then `srcockpit resume {self.folder.name}`"
        alert("disk", "error", reason, hint)
        return Verdict(reason, hint, save=True)


IterDetector = Callable[["HealthMonitor", int], None]
"""detector(monitor, current_iter): after each iteration, with monitor.history (loss name -> its last WINDOW
values) to read and monitor.alert(code, level, message, hint) to raise an alert once per episode."""
ITER_DETECTORS: list[IterDetector] = []


def register_detector(detector: IterDetector) -> IterDetector:
    """Add a detector that every HealthMonitor runs after each iteration (usable as a decorator)."""
    ITER_DETECTORS.append(detector)
    return detector


def unregister_detector(detector: IterDetector) -> None:
    ITER_DETECTORS[:] = [known for known in ITER_DETECTORS if known is not detector]


class HealthMonitor:
    def __init__(self, opt: dict[str, Any], events: EventWriter, model: Any) -> None:
        self.events = events
        self.on_gpu = opt.get("num_gpu", 0) > 0
        self.folder = Path(opt["path"]["experiments_root"])
        self.disk = DiskGuard(self.folder, model)
        self.history: dict[str, deque[float]] = {}
        self.raised: set[str] = set()
        self.best_psnr: dict[str, float] = {}
        self.scale = int(opt.get("scale", 2))
        self.figures = figure_names((opt.get("val") or {}).get("metrics"))  # figure -> its val.metrics entry
        self.val_trail: dict[tuple[str, str], deque[float]] = {}  # (dataset, figure) -> last 3 validations
        self.last_psnr: dict[str, float] = {}

    def alert(self, code: str, level: str, message: str, hint: str = "") -> None:
        if code in self.raised:
            return
        self.raised.add(code)
        self.events.emit(AlertEvent(level=level, code=code, message=message, hint=hint))

    def clear(self, code: str) -> None:
        self.raised.discard(code)

    def after_iter(self, current_iter: int, losses: dict[str, float], it_s: float) -> Verdict | None:
        """Record one iteration; a Verdict when the run must stop now."""
        for name, value in losses.items():
            if not math.isfinite(value):
                hint = ("lower the learning rate or the GAN loss weight, and check the data; "
                        "resume starts from the last good checkpoint")
                self.alert("nan", "error", f"{name} is {value} at iteration {current_iter}", hint)
                return Verdict(f"{name} became {value} at iteration {current_iter}", hint, save=False)
            self.history.setdefault(name, deque(maxlen=WINDOW)).append(value)
        self._trends()
        for detector in ITER_DETECTORS:
            detector(self, current_iter)
        if self.on_gpu and current_iter > 100 and 0 < it_s < SLOW_IT_S:
            self.alert("slow", "warning", f"{it_s:.2f} it/s is below the plan's {SLOW_IT_S} it/s",
                       "check the data-wait share: more num_worker_per_gpu, prefetch_mode cuda, or "
                       "pre-extracted sub-images (`srcockpit data extract-subimages`)")
        return self.disk.check(self.alert)

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

    def after_val(self, current_iter: int, dataset: str, metrics: dict[str, float],
                  bicubic: dict[str, float] | None = None) -> None:
        """Judge one validation's figures; bicubic: the same figures of bicubic upscaling (the val event's)."""
        psnr = metrics.get("psnr")
        previous = self.last_psnr.get(dataset)
        rising = psnr is not None and previous is not None and psnr > previous
        self._artifacts(dataset, metrics, bicubic or {}, rising)
        if psnr is None:
            return
        self.last_psnr[dataset] = psnr
        best = self.best_psnr.get(dataset)
        if best is not None and psnr < best - 0.5:
            self.alert(f"psnr_falling:{dataset}", "warning", f"{dataset} PSNR {psnr:.2f} dB is "
                       f"{best - psnr:.2f} dB below its best", "the best checkpoint is kept; "
                       "`srcockpit rank` picks it")
        else:
            self.clear(f"psnr_falling:{dataset}")
        self.best_psnr[dataset] = max(psnr, best if best is not None else psnr)

    def _figure(self, metrics: dict[str, float], figure: str) -> float | None:
        value = metrics.get(self.figures.get(figure, ""))
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def _artifacts(self, dataset: str, metrics: dict[str, float], bicubic: dict[str, float], rising: bool) -> None:
        for figure, limit in (("color", COLOR_SHIFT_MAX), ("chroma", CHROMA_SHIFT_MAX)):
            self._color(dataset, figure, limit, metrics)
        self._checkerboard(dataset, metrics, bicubic)
        self._smoothing(dataset, metrics, bicubic, rising)

    def _color(self, dataset: str, figure: str, limit: float, metrics: dict[str, float]) -> None:
        value = self._figure(metrics, figure)
        if value is None:
            return
        trail = self.val_trail.setdefault((dataset, figure), deque(maxlen=3))
        trail.append(value)
        code = f"{'color' if figure == 'color' else 'chroma'}_shift:{dataset}"
        what = "colour shift (largest channel mean of SR - GT)" if figure == "color" else "chroma shift (mean Cb/Cr)"
        if value > limit:
            self.alert(code, "warning", f"{dataset} {what} {value:.2f} grey levels, above {limit}", COLOR_HINT)
        elif len(trail) == 3 and trail[0] < trail[1] < trail[2] and trail[2] - trail[0] >= COLOR_GROWTH[figure]:
            self.alert(code, "warning", f"{dataset} {what} grew 3 validations running: "
                       f"{' -> '.join(f'{v:.2f}' for v in trail)} grey levels", COLOR_HINT)
        else:
            self.clear(code)

    def _checkerboard(self, dataset: str, metrics: dict[str, float], bicubic: dict[str, float]) -> None:
        value = self._figure(metrics, "checkerboard")
        if value is None:
            return
        reference = self._figure(bicubic, "checkerboard")
        code = f"checkerboard:{dataset}"
        if value > CHECKERBOARD_MAX and (reference is None or value > CHECKERBOARD_OVER_BICUBIC * reference):
            against = f" (bicubic {reference:.2%})" if reference is not None else ""
            self.alert(code, "warning", f"{dataset} checkerboard: {value:.2%} of the error energy at the "
                       f"{self.scale}-pixel period{against}",
                       "reduce the GAN loss weight (train.gan_opt.loss_weight); `srcockpit rank` keeps the "
                       "checkpoint before the pattern")
        else:
            self.clear(code)

    def _smoothing(self, dataset: str, metrics: dict[str, float], bicubic: dict[str, float], rising: bool) -> None:
        value = self._figure(metrics, "sharpness")
        if value is None:
            return
        trail = self.val_trail.setdefault((dataset, "sharpness"), deque(maxlen=2))
        trail.append(value)
        reference = self._figure(bicubic, "sharpness")
        code = f"smooth:{dataset}"
        if value < SHARPNESS_MIN and rising and len(trail) == 2 and trail[1] < trail[0]:
            against = f", bicubic {reference:.2f}" if reference is not None else ""
            self.alert(code, "warning", f"{dataset} over-smoothing: detail fell to {value:.2f} of GT's{against} "
                       "while PSNR rose",
                       "increase the perceptual loss weight (train.perceptual_opt.perceptual_weight)")
        else:
            self.clear(code)
