"""The artifact figures (engine/artifacts.py) and a size-safe NIQE as basicsr metrics.

basicsr's validation calls every `val.metrics` entry through its METRIC_REGISTRY with the output and
GT it already holds (`img`, `img2`, uint8 BGR HWC) and the entry's other keys as keyword arguments,
sums them over the images and divides by their count, per dataset. Registered here, the figures are
averaged by basicsr's own loop, with no extra pass over the data; `better: lower/higher` in an entry
is basicsr's own key (its best-metric record reads it) and reaches these functions as a keyword.

    val:
      metrics:
        color_shift: {type: calculate_color_shift, crop_border: 2, better: lower}
        chroma_shift: {type: calculate_color_shift, channel: chroma, crop_border: 2, better: lower}
        checkerboard: {type: calculate_checkerboard, scale: 2, crop_border: 2, better: lower}
        sharpness: {type: calculate_sharpness, scale: 2, crop_border: 2, better: higher}
        niqe: {type: calculate_niqe_or_nan, crop_border: 2, better: lower}

engine/models.py imports this module, so every engine run has them registered. What each figure is
(label, unit, better direction) is in engine/metric_info.py, which the cockpit reads without torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine import artifacts
from engine.compat import load_basicsr
from engine.niqe import calculate_niqe

load_basicsr()
from basicsr.metrics.psnr_ssim import calculate_psnr  # noqa: E402
from basicsr.utils.registry import METRIC_REGISTRY  # noqa: E402

NIQE_MIN_SIDE = 2 * 96  # basicsr's NIQE also scores the image at half size, in 96 x 96 blocks: one must fit


@METRIC_REGISTRY.register()
def calculate_color_shift(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, channel: str = "max",
                          **kwargs: Any) -> float:
    """Mean SR - GT in grey levels: `channel` b, g, r, y, cb, cr (signed), max (largest |B|, |G|, |R|) or chroma."""
    return artifacts.color_shift(img, img2, crop_border, channel)


@METRIC_REGISTRY.register()
def calculate_checkerboard(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, scale: int = 2,
                           **kwargs: Any) -> float:
    """Share (0-1) of the luminance error's energy at the upscale's period (`scale`: the model's)."""
    return artifacts.checkerboard_share(img, img2, crop_border, scale)


@METRIC_REGISTRY.register()
def calculate_sharpness(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, scale: int = 2,
                        **kwargs: Any) -> float:
    """Detail energy of SR over GT (1.0 = as sharp as GT, below 1 smoother; `scale`: the model's)."""
    return artifacts.sharpness_ratio(img, img2, crop_border, scale)


@METRIC_REGISTRY.register()
def calculate_niqe_or_nan(img: np.ndarray, crop_border: int = 0, input_order: str = "HWC", convert_to: str = "y",
                          **kwargs: Any) -> float:
    """basicsr's calculate_niqe (engine/niqe.py: the same figures, 2x faster), or nan for an image it cannot score.

    basicsr's NIQE fits a Gaussian to 96 x 96 blocks at full and half resolution: an image under
    NIQE_MIN_SIDE px (after crop_border) on a side has no such block and basicsr raises, which would end the
    run at its first validation (the fast demo validates on 96 px crops, options/tiny_cpu.yml on 48 px)."""
    height, width = (n - 2 * crop_border for n in np.shape(img)[:2])
    if min(height, width) < NIQE_MIN_SIDE:
        return math.nan
    try:
        return float(calculate_niqe(img, crop_border, input_order=input_order, convert_to=convert_to))
    except np.linalg.LinAlgError:  # a flat image: its block statistics are degenerate
        return math.nan


def standard_figures(scale: int, crop_border: int) -> dict[str, dict[str, Any]]:
    """The artifact figures and NIQE as val.metrics entries, named as the shipped options name them: what the
    ranking and the comparison report score beside PSNR/SSIM, whatever a run's own options hold."""
    return {
        "color_shift": {"type": artifacts.COLOR_SHIFT_TYPE, "crop_border": crop_border, "better": "lower"},
        "chroma_shift": {"type": artifacts.COLOR_SHIFT_TYPE, "channel": "chroma", "crop_border": crop_border,
                         "better": "lower"},
        "checkerboard": {"type": artifacts.CHECKERBOARD_TYPE, "scale": scale, "crop_border": crop_border,
                         "better": "lower"},
        "sharpness": {"type": artifacts.SHARPNESS_TYPE, "scale": scale, "crop_border": crop_border, "better": "higher"},
        "niqe": {"type": artifacts.NIQE_TYPE, "crop_border": crop_border, "better": "lower"},
    }


def saved_image_psnr(images: Iterable[str | Path], pairs: Iterable[Mapping[str, str]],
                     psnr_settings: Mapping[str, Any]) -> dict[str, float]:
    """basicsr's calculate_psnr of each validation output basicsr saved, against its GT: {image name: dB}.

    `pairs` are the validation dataset's {lq_path, gt_path} (PairedImageDataset.paths); basicsr names a
    saved output after its LQ file and crops the GT to LQ size x scale, as done here. PNG is lossless, so
    the file holds the very pixels basicsr scored; the mean of these is the dataset's logged PSNR.
    """
    import cv2

    gt_of = {Path(pair["lq_path"]).stem: pair["gt_path"] for pair in pairs}
    scores: dict[str, float] = {}
    for image in map(Path, images):
        name = image.parent.name
        if name not in gt_of:
            continue
        out, gt = cv2.imread(str(image), cv2.IMREAD_COLOR), cv2.imread(gt_of[name], cv2.IMREAD_COLOR)
        if out is None or gt is None:
            continue
        gt = gt[:out.shape[0], :out.shape[1]]
        if gt.shape != out.shape:
            continue
        scores[name] = float(calculate_psnr(out, gt, int(psnr_settings.get("crop_border", 0)),
                                            test_y_channel=bool(psnr_settings.get("test_y_channel", False))))
    return scores
