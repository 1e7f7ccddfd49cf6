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
from collections.abc import Callable, Mapping, Sequence
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


COLOR_LIMITS = {"color": COLOR_SHIFT_MAX, "chroma": CHROMA_SHIFT_MAX}


def color_over(figure: str, value: float) -> bool:
    """A colour ('color') or chroma ('chroma') shift above its limit."""
    return value > COLOR_LIMITS[figure]


def checkerboard_over(value: float, bicubic: float | None) -> bool:
    """A checkerboard share above its limit and, when bicubic's on the same images is known, above a multiple of it."""
    return value > CHECKERBOARD_MAX and (bicubic is None or value > CHECKERBOARD_OVER_BICUBIC * bicubic)


def _finite(metrics: Mapping[str, float], name: str | None) -> float | None:
    value = metrics.get(name or "")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def artifact_problems(metrics: Mapping[str, float], names: Mapping[str, str],
                      bicubic: Mapping[str, float] | None = None) -> list[str]:
    """Why one model's figures on one validation set are above the limits the live alerts use (empty: clean).

    names: figure ('color', 'chroma', 'checkerboard') -> the key holding it in metrics (engine.artifacts.figure_names);
    bicubic: the same keys for bicubic upscaling of the same images. The ranking and the comparison report mark a
    checkpoint with these, so a model the cockpit warned about is never silently the best."""
    problems = []
    for figure, what in (("color", "colour shift"), ("chroma", "chroma shift")):
        value = _finite(metrics, names.get(figure))
        if value is not None and color_over(figure, value):
            problems.append(f"{what} {value:.2f} > {COLOR_LIMITS[figure]} grey levels")
    value = _finite(metrics, names.get("checkerboard"))
    reference = _finite(bicubic or {}, names.get("checkerboard"))
    if value is not None and checkerboard_over(value, reference):
        against = f" (bicubic {reference:.2%})" if reference is not None else ""
        problems.append(f"checkerboard {value:.2%} > {CHECKERBOARD_MAX:.0%}{against}")
    return problems


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


@dataclass(frozen=True)
class Finding:
    """What a loss detector saw: the alert's code, message and hint."""

    code: str
    message: str
    hint: str


LossDetector = Callable[[str, Sequence[float]], Finding | None]
LR_HINT = "reduce the learning rate (the plan's answer to non-converging losses)"


def _halves(values: Sequence[float]) -> tuple[list[float], list[float]] | None:
    """The window's older and newer halves, once the window is full."""
    if len(values) < WINDOW:
        return None
    window = list(values)[-WINDOW:]
    return window[:WINDOW // 2], window[WINDOW // 2:]


def rising(factor: float, hint: str) -> LossDetector:
    """The newer half's mean above `factor` x the older half's: the loss diverges. A loss that can be negative
    (a WGAN's) has no such ratio: watched only while its older half is positive."""
    def detect(name: str, values: Sequence[float]) -> Finding | None:
        halves = _halves(values)
        if halves is None or fmean(halves[0]) <= 0 or fmean(halves[1]) <= factor * fmean(halves[0]):
            return None
        return Finding(f"diverging:{name}", f"{name} rose {fmean(halves[1]) / fmean(halves[0]):.1f}x over the last "
                       f"{WINDOW} iterations", hint)
    return detect


def oscillating(spread: float, hint: str) -> LossDetector:
    """The newer half's standard deviation above `spread` x its mean: the loss swings more than its own size."""
    def detect(name: str, values: Sequence[float]) -> Finding | None:
        halves = _halves(values)
        if halves is None or fmean(halves[1]) <= 0 or pstdev(halves[1]) <= spread * fmean(halves[1]):
            return None
        return Finding(f"oscillating:{name}", f"{name} oscillates more than its own size", hint)
    return detect


def collapsed(limit: float, iterations: int = 50) -> LossDetector:
    """Every one of the last `iterations` values below `limit`: the discriminator wins every time."""
    def detect(name: str, values: Sequence[float]) -> Finding | None:
        if len(values) < iterations or max(list(values)[-iterations:]) >= limit:
            return None
        return Finding("d_collapse", f"{name} stayed below {limit} for {iterations} iterations: "
                       "the discriminator wins every time", "lower the GAN loss weight or raise net_d_iters")
    return detect


# Every loss class of engine.losses and how it is watched; a new detector is one more entry here (D_OUTPUT is the
# discriminator's mean output, not a loss). Pixel and perceptual losses fall as the network learns. A generator's
# GAN loss and the discriminator's real/fake losses move as the other network learns, so only a larger rise (2x)
# counts: a rising D loss means D no longer tells real from fake, a D loss near 0 that it wins every time.
_G_STEADY = (rising(1.5, f"{LR_HINT}; check the data"), oscillating(1.0, LR_HINT))
_GAME = (rising(2.0, f"{LR_HINT}, or lower the GAN loss weight (train.gan_opt.loss_weight)"),
         oscillating(1.0, LR_HINT))
_D_GAME = (collapsed(D_COLLAPSE), rising(2.0, f"{LR_HINT}, or raise net_d_iters: the discriminator falls behind"),
           oscillating(1.0, LR_HINT))
LOSS_DETECTORS: dict[LossKind, tuple[LossDetector, ...]] = {
    LossKind.PIXEL: _G_STEADY, LossKind.PERCEPTUAL: _G_STEADY, LossKind.STYLE: _G_STEADY,
    LossKind.GENERATOR_OTHER: _G_STEADY, LossKind.GAN: _GAME,
    LossKind.D_REAL: _D_GAME, LossKind.D_FAKE: _D_GAME, LossKind.D_OTHER: _D_GAME,
}


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
            for detector in LOSS_DETECTORS.get(classify_loss(name), ()):
                finding = detector(name, values)
                if finding is not None:
                    self.alert(finding.code, "warning", finding.message, finding.hint)

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
        return _finite(metrics, self.figures.get(figure))

    def _artifacts(self, dataset: str, metrics: dict[str, float], bicubic: dict[str, float], rising: bool) -> None:
        for figure in COLOR_LIMITS:
            self._color(dataset, figure, metrics)
        self._checkerboard(dataset, metrics, bicubic)
        self._smoothing(dataset, metrics, bicubic, rising)

    def _color(self, dataset: str, figure: str, metrics: dict[str, float]) -> None:
        value = self._figure(metrics, figure)
        if value is None:
            return
        trail = self.val_trail.setdefault((dataset, figure), deque(maxlen=3))
        trail.append(value)
        code = f"{'color' if figure == 'color' else 'chroma'}_shift:{dataset}"
        what = "colour shift (largest channel mean of SR - GT)" if figure == "color" else "chroma shift (mean Cb/Cr)"
        if color_over(figure, value):
            self.alert(code, "warning", f"{dataset} {what} {value:.2f} grey levels, above {COLOR_LIMITS[figure]}",
                       COLOR_HINT)
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
        if checkerboard_over(value, reference):
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
        code = f"over_smoothing:{dataset}"
        if value < SHARPNESS_MIN and rising and len(trail) == 2 and trail[1] < trail[0]:
            against = f", bicubic {reference:.2f}" if reference is not None else ""
            self.alert(code, "warning", f"{dataset} over-smoothing: detail fell to {value:.2f} of GT's{against} "
                       "while PSNR rose",
                       "increase the perceptual loss weight (train.perceptual_opt.perceptual_weight)")
        else:
            self.clear(code)
