"""PSNR/SSIM of a super-resolution model (or of nearest/bicubic upscaling) on a paired validation set.

One place where srcockpit scores images, so that the weights report, checkpoint ranking, the comparison
report and the training engine's validation all give the same figures for the same images:

- pairs: GT and LQ folders with the same file names (basicsr's PairedImageDataset with
  filename_tmpl '{}', as engine/data/valset.py writes them); read once into `PairedImages`.
- metrics: basicsr's own `calculate_psnr` / `calculate_ssim` on uint8 BGR images (basicsr's
  tensor2img convention: clamp to [0, 1], x255, round), with `crop_border` and `test_y_channel`
  stated in every result.
- defaults: crop_border = the scale, test_y_channel = True (the usual SR benchmark convention, and
  what design.md section 7 reports). basicsr's validation in the plan's YAML uses crop 4 on RGB:
  pass those to compare with its log.
- baselines: nearest = pixel repetition (what SRVGGNetCompact adds before its residual);
  bicubic = basicsr's MATLAB-compatible `imresize` (bicubic a = -0.5) of the LR image, the same
  function that makes the LR images in engine/data/valset.py, rounded to uint8.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

import engine.metrics  # noqa: F401  (registers the artifact figures that baseline_figures scores)
from engine.compat import load_basicsr
from engine.data.images import list_images, read_rgb, require_folder
from engine.protocol import ProgressFn, UserError
from engine.score_memo import images_key, keep, network_key, recall, settings_key

load_basicsr()
from basicsr.metrics import calculate_metric  # noqa: E402
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.utils.matlab_functions import imresize  # noqa: E402

Model = Callable[[torch.Tensor], torch.Tensor]
"""An SR model: N x C x h x w float RGB in [0, 1] -> N x C x (h*s) x (w*s). nn.Module fits."""

BICUBIC_CONVENTION = "basicsr matlab_functions.imresize (MATLAB bicubic, a=-0.5) of the LR, rounded to uint8"
NEAREST_CONVENTION = "pixel repetition of the LR (== F.interpolate mode='nearest')"
METRIC_CONVENTION = "basicsr calculate_psnr / calculate_ssim on uint8 BGR (tensor2img rounding)"


@dataclass(frozen=True)
class PairedImages:
    """A validation set in memory: uint8 RGB GT and LQ images, same names, one scale."""

    names: tuple[str, ...]
    gt: tuple[np.ndarray, ...]
    lq: tuple[np.ndarray, ...]
    scale: int
    gt_dir: Path | None = None
    lq_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def content_key(self) -> str:
        """Names, scale and every pixel, hashed once: what engine.score_memo finds these images' scores by."""
        return images_key(self.names, self.gt, self.lq, self.scale)


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr: float
    ssim: float
    figures: dict[str, float] = field(default_factory=dict)  # the other metrics asked for (artifacts, NIQE)


@dataclass
class EvalResult:
    """Per-image and mean PSNR/SSIM, and how they were measured."""

    label: str
    scale: int
    crop_border: int
    test_y_channel: bool
    images: list[ImageScore]
    seconds: float = 0.0
    device: str = "cpu"
    method: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def psnr(self) -> float:
        return float(np.mean([score.psnr for score in self.images]))

    @property
    def ssim(self) -> float:
        return float(np.mean([score.ssim for score in self.images]))

    @property
    def figures(self) -> dict[str, float]:
        """Each other metric's mean over the images, as basicsr's validation averages it (a nan stays nan)."""
        names = self.images[0].figures if self.images else {}
        return {name: float(np.mean([score.figures[name] for score in self.images])) for name in names}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(psnr=self.psnr, ssim=self.ssim, figures=self.figures)
        return data

    def summary(self) -> str:
        channel = "Y" if self.test_y_channel else "RGB"
        return (f"{self.label}: PSNR {self.psnr:.2f} dB, SSIM {self.ssim:.4f} "
                f"({channel}, crop {self.crop_border})")


def find_valset(root: Path, scale: int) -> tuple[Path, Path]:
    """GT and LQ folders of a set written by engine/data/valset.py: root/GTmod12 and root/LRbicx<scale>."""
    from engine.data.valset import valset_dirs

    require_folder(root, "validation set")
    gt_dir, lq_dir = valset_dirs(root, scale)
    if not gt_dir.is_dir() or not lq_dir.is_dir():
        found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "no folders"
        raise UserError(f"{root} has no {gt_dir.name}/ and {lq_dir.name}/ pair (found: {found})",
                        f"make one with `srcockpit data valset HR_DIR -o {root} --scale {scale}`")
    return gt_dir, lq_dir


def load_pairs(gt_dir: Path, lq_dir: Path, scale: int | None = None) -> PairedImages:
    """Read every GT image and its same-named LQ image; every pair must be x`scale` (default: the first pair's,
    at least x2), so a wrongly sized LQ image is named before any model runs."""
    gt_paths = list_images(gt_dir)
    lq_paths = {path.stem: path for path in list_images(lq_dir)}
    missing = [path.name for path in gt_paths if path.stem not in lq_paths]
    if missing:
        raise UserError(f"{lq_dir} has no LQ image for {missing[0]} ({len(missing)} missing)",
                        "GT and LQ folders must hold the same file names")
    names, gts, lqs = [], [], []
    for path in gt_paths:
        gt, lq = read_rgb(path), read_rgb(lq_paths[path.stem])
        if scale is None:
            scale = gt.shape[0] // lq.shape[0]
            if scale < 2:
                raise UserError(f"{lq_paths[path.stem]} ({lq.shape[1]}x{lq.shape[0]}) is not x2 or more smaller "
                                f"than its GT {path} ({gt.shape[1]}x{gt.shape[0]})",
                                "the LQ folder must hold the downscaled images (`srcockpit data valset HR -o SET`)")
        if gt.shape[:2] != (lq.shape[0] * scale, lq.shape[1] * scale):
            raise UserError(f"{lq_paths[path.stem]} ({lq.shape[1]}x{lq.shape[0]}) is not x{scale} smaller than its "
                            f"GT {path} ({gt.shape[1]}x{gt.shape[0]})",
                            f"one validation set holds one scale: make it with `srcockpit data valset HR -o SET "
                            f"--scale {scale}` (GT cropped to a multiple of 12)")
        names.append(path.stem)
        gts.append(gt)
        lqs.append(lq)
    return PairedImages(tuple(names), tuple(gts), tuple(lqs), int(scale or 1), gt_dir, lq_dir)


def score(sr: np.ndarray, gt: np.ndarray, *, crop_border: int, test_y_channel: bool) -> tuple[float, float]:
    """basicsr PSNR and SSIM of two uint8 RGB images (converted to BGR as basicsr's metrics expect)."""
    if sr.shape != gt.shape:
        raise UserError(f"output {sr.shape[1]}x{sr.shape[0]} does not match GT {gt.shape[1]}x{gt.shape[0]}",
                        "the model's scale must match the validation set's")
    sr_bgr, gt_bgr = sr[..., ::-1], gt[..., ::-1]
    psnr = calculate_psnr(sr_bgr, gt_bgr, crop_border, input_order="HWC", test_y_channel=test_y_channel)
    ssim = calculate_ssim(sr_bgr, gt_bgr, crop_border, input_order="HWC", test_y_channel=test_y_channel)
    return float(psnr), float(ssim)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """1 x C x H x W float in [0, 1] -> H x W x C uint8, as basicsr's tensor2img rounds."""
    image = tensor.detach().float().clamp_(0, 1).squeeze(0).permute(1, 2, 0).cpu().numpy()
    return (image * 255.0).round().astype(np.uint8)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    return torch.from_numpy(chw).float().div_(255.0)[None].to(device)


def tiled_forward(model: Model, x: torch.Tensor, scale: int, tile: int, tile_pad: int = 10) -> torch.Tensor:
    """model(x) computed tile by tile (each tile with tile_pad LR pixels of context), Real-ESRGAN style."""
    n, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return model(x)
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - tile_pad, 0), max(left - tile_pad, 0)
            t1, l1 = min(bottom + tile_pad, h), min(right + tile_pad, w)
            piece = model(x[:, :, t0:t1, l0:l1])
            if out is None:
                out = piece.new_zeros(n, piece.shape[1], h * scale, w * scale)
            out[:, :, top * scale:bottom * scale, left * scale:right * scale] = piece[
                :, :, (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    return out


def pick_device(device: str | torch.device | None, model: Model | None = None) -> torch.device:
    """device as given; else an nn.Module's own device (CUDA when available if it sits on the CPU);
    else, for a plain callable, the CPU."""
    if device is not None:
        try:
            chosen = torch.device(device)
        except RuntimeError as error:
            raise UserError(f"unknown device {device!r}", "use cpu, cuda or cuda:N") from error
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"device {device} asked for but CUDA is not available here", "use --device cpu")
        return chosen
    if isinstance(model, torch.nn.Module):
        param = next(model.parameters(), None)
        if param is not None and param.device.type != "cpu":
            return param.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cpu")


def upscale(model: Model, lq: np.ndarray, *, scale: int, device: str | torch.device | None = None,
            tile: int = 0, tile_pad: int = 10) -> np.ndarray:
    """One uint8 RGB LR image through the model, as a uint8 RGB image."""
    target = pick_device(device, model)
    with torch.inference_mode():
        return to_uint8(tiled_forward(model, to_tensor(lq, target), scale, tile, tile_pad))


def evaluate_model(model: Model, gt_dir: Path | PairedImages, lq_dir: Path | None = None, *,
                   crop_border: int | None = None, test_y_channel: bool = True,
                   device: str | torch.device | None = None, tile: int = 0, tile_pad: int = 10,
                   label: str = "model", figures: Mapping[str, dict[str, Any]] | None = None,
                   progress: ProgressFn | None = None) -> EvalResult:
    """Score model on a paired set (folders, or a PairedImages already read); figures: other val.metrics entries
    (engine.metrics.standard_figures) scored on the same outputs.

    An nn.Module is moved to `device` (default: where it already is) and put in eval mode for the run;
    its train/eval flag is restored afterwards, so the training engine can call this mid-run.
    """
    pairs = gt_dir if isinstance(gt_dir, PairedImages) else load_pairs(Path(gt_dir), Path(lq_dir or ""))
    crop = pairs.scale if crop_border is None else crop_border
    target = pick_device(device, model)
    network = network_key(model)  # the same weights on the same images: their scores from earlier in this process
    run = None if network is None else _run_key(network, pairs, target, tile, tile_pad)
    key = None if run is None else "|".join(["model", run, settings_key(crop=crop, y=test_y_channel,
                                                                        figures=figures or {})])
    result = recall(key)
    if result is None:
        result = _run_model(model, pairs, crop, test_y_channel, target, tile, tile_pad, figures or {}, progress,
                            None if run is None else f"outputs|{run}")
        keep(key, result)
    elif progress:
        progress(len(pairs), len(pairs), "scored earlier in this process")
    return replace(result, label=label)


def _run_key(network: str, pairs: PairedImages, target: torch.device, tile: int, tile_pad: int) -> str:
    return "|".join([network, pairs.content_key, settings_key(device=str(target), tile=tile,
                                                               tile_pad=tile_pad if tile else 0)])


def remember_outputs(model: torch.nn.Module, pairs: PairedImages, outputs: Sequence[np.ndarray],
                     device: str | torch.device) -> None:
    """Outputs of model on pairs' LR images computed elsewhere, bit for bit as evaluate_model computes them on
    device (whole images, untiled), kept for it: basicsr's validation saves its EMA network's outputs losslessly,
    and the ranking that follows in the same process then scores them without running the network again."""
    network = network_key(model)
    if network is None or len(outputs) != len(pairs):
        return
    _keep_outputs(f"outputs|{_run_key(network, pairs, torch.device(device), 0, 0)}", outputs)


def _keep_outputs(key: str | None, outputs: Sequence[np.ndarray]) -> None:
    keep(key, tuple(outputs), nbytes=sum(output.nbytes for output in outputs))


def _run_model(model: Model, pairs: PairedImages, crop: int, test_y_channel: bool, target: torch.device, tile: int,
               tile_pad: int, figures: Mapping[str, dict[str, Any]], progress: ProgressFn | None,
               outputs_key: str | None) -> EvalResult:
    """evaluate_model's work: every LR image through the model (unless its outputs are remembered), each output
    scored against its GT."""
    known = recall(outputs_key)
    outputs: list[np.ndarray] = list(known) if known is not None else []
    was_training = None
    if known is None and isinstance(model, torch.nn.Module):
        was_training = model.training
        model.to(target).eval()
    start = time.perf_counter()
    # each output is scored (numpy and OpenCV, which let go of the GIL) while the network runs on the next image
    with ThreadPoolExecutor(max_workers=1) as scorer:
        pending = []
        try:
            for number, (name, gt, lq) in enumerate(zip(pairs.names, pairs.gt, pairs.lq, strict=True), start=1):
                if known is None:
                    outputs.append(upscale(model, lq, scale=pairs.scale, device=target, tile=tile,
                                           tile_pad=tile_pad))
                pending.append(scorer.submit(image_score, name, outputs[number - 1], gt, crop, test_y_channel,
                                             figures))
                if progress:
                    progress(number, len(pairs), name)
        finally:
            if was_training:
                model.train()
        scores = [job.result() for job in pending]
    if known is None:
        _keep_outputs(outputs_key, outputs)
    return EvalResult("model", pairs.scale, crop, test_y_channel, scores, time.perf_counter() - start,
                      str(target), "network",
                      {"tile": tile, "tile_pad": tile_pad, "metrics": METRIC_CONVENTION})


def image_score(name: str, sr: np.ndarray, gt: np.ndarray, crop: int, test_y_channel: bool,
                figures: Mapping[str, dict[str, Any]]) -> ImageScore:
    """One output's PSNR, SSIM and other figures against its GT."""
    return ImageScore(name, *score(sr, gt, crop_border=crop, test_y_channel=test_y_channel),
                      image_figures(sr, gt, figures))


def nearest_upscale(lq: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(lq, scale, axis=0), scale, axis=1)


def bicubic_upscale(lq: np.ndarray, scale: int) -> np.ndarray:
    big = imresize(lq.astype(np.float32) / 255.0, scale)
    return np.clip(np.round(big * 255.0), 0, 255).astype(np.uint8)


BASELINES: dict[str, tuple[Callable[[np.ndarray, int], np.ndarray], str]] = {
    "nearest": (nearest_upscale, NEAREST_CONVENTION),
    "bicubic": (bicubic_upscale, BICUBIC_CONVENTION),
}


def evaluate_baselines(gt_dir: Path | PairedImages, lq_dir: Path | None = None, *,
                       crop_border: int | None = None, test_y_channel: bool = True,
                       which: Sequence[str] = ("nearest", "bicubic"),
                       figures: Mapping[str, dict[str, Any]] | None = None,
                       progress: ProgressFn | None = None) -> dict[str, EvalResult]:
    """Nearest-neighbour and bicubic upscaling of the same LR images, scored like evaluate_model (and, like it,
    given back from earlier in this process for the same images and settings)."""
    pairs = gt_dir if isinstance(gt_dir, PairedImages) else load_pairs(Path(gt_dir), Path(lq_dir or ""))
    crop = pairs.scale if crop_border is None else crop_border
    unknown = [kind for kind in which if kind not in BASELINES]
    if unknown:
        raise UserError(f"unknown baseline {unknown[0]}", f"choose from {', '.join(BASELINES)}")
    key = "|".join(["baselines", pairs.content_key, settings_key(crop=crop, y=test_y_channel, which=list(which),
                                                                   figures=figures or {})])
    results = recall(key)
    if results is None:
        results = {kind: _run_baseline(kind, pairs, crop, test_y_channel, figures or {}) for kind in which}
        keep(key, results)
    if progress:
        for done, kind in enumerate(which, start=1):
            progress(done, len(which), kind)
    return dict(results)


def _run_baseline(kind: str, pairs: PairedImages, crop: int, test_y_channel: bool,
                  figures: Mapping[str, dict[str, Any]]) -> EvalResult:
    method, convention = BASELINES[kind]
    start = time.perf_counter()
    scores = [image_score(name, method(lq, pairs.scale), gt, crop, test_y_channel, figures)
              for name, gt, lq in zip(pairs.names, pairs.gt, pairs.lq, strict=True)]
    return EvalResult(kind, pairs.scale, crop, test_y_channel, scores, time.perf_counter() - start, "cpu", convention)


SCORED_BY_EVALUATE = ("calculate_psnr", "calculate_ssim")  # evaluate_baselines' own figures


def baseline_figures(pairs: PairedImages, metrics: dict[str, dict[str, Any]],
                     which: Sequence[str] = ("nearest", "bicubic")) -> dict[str, dict[str, float]]:
    """The baselines' outputs through `metrics` (val.metrics entries), averaged per baseline as basicsr's
    validation averages a model's: the artifact figures and NIQE a model's val event is judged against.

    Entries of the types evaluate_baselines already scores (PSNR, SSIM) are left out."""
    chosen = {name: metric for name, metric in metrics.items() if metric.get("type") not in SCORED_BY_EVALUATE}
    key = "|".join(["baseline figures", pairs.content_key, settings_key(metrics=chosen, which=list(which))])
    figures = recall(key)
    if figures is None:
        figures = {kind: _mean_figures(BASELINES[kind][0], pairs, chosen) for kind in which} if chosen else {}
        keep(key, figures)
    return {kind: dict(values) for kind, values in figures.items()}


def _mean_figures(method: Callable[[np.ndarray, int], np.ndarray], pairs: PairedImages,
                  metrics: Mapping[str, dict[str, Any]]) -> dict[str, float]:
    sums = dict.fromkeys(metrics, 0.0)
    for gt, lq in zip(pairs.gt, pairs.lq, strict=True):
        for name, value in image_figures(method(lq, pairs.scale), gt, metrics).items():
            sums[name] += value
    return {name: total / len(pairs) for name, total in sums.items()}


def image_figures(sr: np.ndarray, gt: np.ndarray, metrics: Mapping[str, dict[str, Any]]) -> dict[str, float]:
    """val.metrics entries on one uint8 RGB output and its GT, through basicsr's calculate_metric (as BGR, as
    basicsr's validation passes them)."""
    if not metrics:
        return {}
    data = {"img": np.ascontiguousarray(sr[..., ::-1]), "img2": np.ascontiguousarray(gt[..., ::-1])}
    return {name: float(calculate_metric(data, metric)) for name, metric in metrics.items()}
