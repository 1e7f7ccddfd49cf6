"""What every bench part shares: the photos, the options it trains with, interleaved timing, result rows.

Every figure of `python -m bench` is a ratio of two things measured side by side in one invocation,
interleaved (A B A B ...) so that drift of a shared machine (other jobs, thermal state) falls on both.
Absolute times are printed beside them as context only.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAN_OPTIONS = ROOT / "options" / "finetune_small_realesr_animevideox2v3.yml"
# scikit-image's colour photos (design.md section 6); retina is 1411 px, hubble_deep_field 872x1000.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


@dataclass
class Row:
    """One line of the table: a ratio (higher is better unless `lower_is_better`) and its context."""

    part: str
    name: str
    ratio: float | None
    baseline: str
    context: str = ""
    samples: list[float] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Profile:
    """Sizes for one device: the plan's on CUDA, scaled down on CPU (same recipe, fewer pixels)."""

    device: str
    quick: bool
    gt_size: int
    batch: int
    queue: int
    workers: int
    warmup: int
    timed: int
    rounds: int
    print_freq: int
    vgg: Path | None = None  # the perceptual loss's VGG19 weights; None: the loss is left out
    vgg_label: str = "perceptual loss off"

    @classmethod
    def make(cls, device: str, quick: bool) -> Profile:
        if device == "cuda":  # the plan's sizes (gt 256, batch 16, queue 180, 5 workers)
            return cls(device, quick, 256, 16, 160, 5, 5, 10 if quick else 30, 2 if quick else 3, 1)
        # CPU: the same recipe on 64 px crops, batch 2 (2 cores: ~2-4 s per iteration, mostly the dense USM
        # on the 400 px window and the discriminator); every iteration emits (print_freq 1)
        return cls(device, quick, 64, 2, 4, 0, 1, 3 if quick else 8, 2, 1)

    def with_perceptual(self, folder: Path, weights: Path | None) -> Profile:
        """The plan's perceptual loss on: VGG19 from `weights` (torchvision's ImageNet file) or, without one,
        with seeded random weights, written into folder: the same work per iteration, meaningless loss values."""
        if weights is not None:
            return replace(self, vgg=weights, vgg_label=f"perceptual loss with VGG19 from {weights.name}")
        path = folder / "vgg19_random_seed0.pth"
        if not path.is_file():
            import torch
            import torchvision

            torch.manual_seed(0)
            torch.save(torchvision.models.vgg19(weights=None).state_dict(), path)
        return replace(self, vgg=path, vgg_label="perceptual loss with RANDOM VGG19 weights (no ImageNet file)")

    @property
    def crop_pad_size(self) -> int:
        """The lever's setting here: gt_size + 64 (>= gt_size + 32, as engine/speed.py advises)."""
        return min(400, self.gt_size + 64)


def prepare_photos(folder: Path) -> tuple[Path, Path]:
    """The photos as PNG files with a meta_info list (RealESRGANDataset's input); returns (folder, meta_info)."""
    import cv2
    from skimage import data

    images = folder / "photos"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in PHOTOS:
        try:
            rgb = getattr(data, name)()
        except Exception:  # a photo scikit-image would have to download (pooch) is not there offline
            continue
        if rgb.ndim != 3:
            continue
        path = images / f"{name}.png"
        if not path.is_file():
            cv2.imwrite(str(path), cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        lines.append(f"{path.name} ({rgb.shape[0]},{rgb.shape[1]},3)")
    meta = folder / "meta_info_photos.txt"
    meta.write_text("\n".join(lines) + "\n")
    return images, meta


def prepare_subimages(folder: Path, photos: Path) -> tuple[Path, Path]:
    """basicsr's pre-extracted sub-images (400 px windows every 200 px) of the photos, with their meta_info."""
    from engine.data.subimages import extract_subimages

    out = folder / "photos_sub"
    if not out.is_dir():
        extract_subimages(photos, out, crop_size=400, step=200, workers=1)
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    meta = folder / "meta_info_photos_sub.txt"
    meta.write_text("".join(f"{name} (400,400,3)\n" for name in names))
    return out, meta


def bench_options(profile: Profile, photos: Path, meta: Path, *, name: str, total_iter: int,
                  speed: dict[str, Any] | None = None, dataset: dict[str, Any] | None = None,
                  for_engine: bool = False) -> dict[str, Any]:
    """The plan's options file with the bench's sizes: same recipe (RealESRGANModel, second-order
    degradations, USM, UNet discriminator, EMA), the perceptual loss as profile.vgg says (VGG19 ImageNet
    weights are not installable offline), random initial weights (the pretrained file is the user's), no
    validation, no checkpoints inside the timed window. for_engine: the file run_engine reads, given
    vgg_weights=profile.vgg, as `srcockpit train --vgg-weights` would."""
    opt = yaml.safe_load(PLAN_OPTIONS.read_text())
    opt["name"] = name
    opt["num_gpu"] = 1 if profile.device == "cuda" else 0
    opt["gt_size"] = profile.gt_size
    opt["queue_size"] = profile.queue
    train = opt["datasets"]["train"]
    train.update(dataroot_gt=str(photos), meta_info=str(meta), gt_size=profile.gt_size,
                 batch_size_per_gpu=profile.batch, num_worker_per_gpu=profile.workers, dataset_enlarge_ratio=200)
    train.update(dataset or {})
    opt["datasets"] = {"train": train}
    opt.pop("val", None)
    if profile.vgg is None:
        opt["train"].pop("perceptual_opt", None)
    elif not for_engine:  # a plain loop gets what the engine makes of it with vgg_weights (engine/launch.py)
        from engine.perceptual import with_weights_file

        opt["train"]["perceptual_opt"] = with_weights_file(opt["train"]["perceptual_opt"], profile.vgg)
    opt["train"]["total_iter"] = total_iter
    opt["path"]["pretrain_network_g"] = None
    opt["logger"].update(print_freq=profile.print_freq, save_checkpoint_freq=10 ** 9, use_tb_logger=False)
    if speed:
        opt["srcockpit"] = dict(speed)
    return opt


def write_options(opt: dict[str, Any], folder: Path) -> Path:
    path = folder / f"{opt['name']}.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def quiet_basicsr_logger(log_file: Path) -> None:
    """basicsr's root logger, made once for the whole bench: its file gets every line (as in a real run),
    the console only warnings (the table stays readable)."""
    from engine.compat import load_basicsr

    load_basicsr()
    from basicsr.utils import get_root_logger

    logger = get_root_logger(logger_name="basicsr", log_level=logging.INFO, log_file=str(log_file))
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def interleave(variants: dict[str, Callable[[], float]], rounds: int,
               log: Callable[[str], None] = print) -> dict[str, list[float]]:
    """Run each variant once per round, in turn (A B C A B C ...); each returns a time (or a rate)."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(rounds):
        order = list(variants) if index % 2 == 0 else list(variants)[:1] + list(variants)[1:][::-1]
        for name in order:
            value = variants[name]()
            results[name].append(value)
            log(f"  round {index + 1}/{rounds} {name}: {value:.4g}")
    return results


def paired_ratio(value: list[float], baseline: list[float], *, higher_is_faster: bool) -> float:
    """Median over rounds of value/baseline (rates) or baseline/value (times): > 1 means faster."""
    pairs = [(v / b if higher_is_faster else b / v) for v, b in zip(value, baseline, strict=True) if v and b]
    return statistics.median(pairs) if pairs else float("nan")


def clone(opt: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(opt)


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu
