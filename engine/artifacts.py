"""Artifact figures of one super-resolved image against its ground truth (the plan's section 7.4, issue 20).

Each figure is computed from the two images basicsr's validation already holds (uint8 BGR HWC, as its
metrics receive them: `img` the output, `img2` the GT), so watching them costs no pass over the data:

- colour shift: the mean of SR - GT per channel (B, G, R) and in YCbCr (Y, Cb, Cr), in grey levels
  (0-255). A GAN fine-tune that drifts its colours moves these means away from 0; any sound
  upscaler (bicubic included) keeps them near 0, because it preserves local means.
- checkerboard share: the share of the luminance error's energy (SR - GT, its mean removed) that
  sits at the upscale's period: for x2 the Nyquist row and column of the error's 2D spectrum, for
  x s the rows and columns at k/s cycles per pixel. A sub-pixel or transposed-convolution upsampler
  that is off by a fixed pattern per output phase puts its error exactly there.
- sharpness: the detail energy (Laplacian of the luminance, in the band the LR image carries) of SR
  over GT's; 1.0 is as sharp as GT, below 1 smoother (over-smoothing), above 1 sharper (GAN
  sharpening, or noise).

numpy only: the cockpit and the health detectors read the names and thresholds without torch.
engine/metrics.py registers these figures in basicsr's metric registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# basicsr.utils.color_util.bgr2ycbcr's coefficients (ITU-R BT.601, MATLAB's rgb2ycbcr), for BGR in [0, 255],
# applied in float: basicsr's function rounds a uint8 input back to uint8, which would bias small means.
_BGR_TO_YCBCR = np.array([[24.966, 112.0, -18.214], [128.553, -74.203, -93.786],
                          [65.481, -37.797, 112.0]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])

CHANNELS = ("b", "g", "r", "y", "cb", "cr")
SUMMARIES = ("max", "chroma")  # max: the largest |B|, |G|, |R| shift; chroma: the length of the (Cb, Cr) shift

# The figures the ranking and the comparison report show beside PSNR/SSIM, by engine.metrics.standard_figures'
# names: key, short heading (terminal tables), heading (report), format.
COLOR_SHIFT_TYPE = "calculate_color_shift"
CHECKERBOARD_TYPE = "calculate_checkerboard"
SHARPNESS_TYPE = "calculate_sharpness"
NIQE_TYPE = "calculate_niqe_or_nan"  # engine/metrics.py's NIQE


def _pair(img: np.ndarray, img2: np.ndarray, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 HWC, their crop_border pixels cut off each edge."""
    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img.shape} and {img2.shape}")
    sr, gt = (np.asarray(a, dtype=np.float64) for a in (img, img2))
    if sr.ndim == 2:
        sr, gt = sr[..., None], gt[..., None]
    if crop_border:
        sr = sr[crop_border:-crop_border, crop_border:-crop_border]
        gt = gt[crop_border:-crop_border, crop_border:-crop_border]
    return sr, gt


def _luma(bgr: np.ndarray) -> np.ndarray:
    """Y (16-235) of a float BGR image in [0, 255]; a single-channel image is its own luminance."""
    if bgr.shape[-1] == 1:
        return bgr[..., 0]
    return bgr @ _BGR_TO_YCBCR[:, 0] + _YCBCR_OFFSET[0]


def color_shifts(img: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> dict[str, float]:
    """Mean of SR - GT in grey levels, per channel: b, g, r and y, cb, cr (uint8 BGR HWC inputs)."""
    sr, gt = _pair(img, img2, crop_border)
    bgr = (sr - gt).reshape(-1, sr.shape[-1]).mean(axis=0)
    if bgr.shape[0] != 3:
        raise ValueError("colour shift needs 3-channel BGR images")
    ycbcr = bgr @ _BGR_TO_YCBCR  # the offset cancels in a difference
    return dict(zip(CHANNELS, (float(v) for v in (*bgr, *ycbcr)), strict=True))


def color_shift(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, channel: str = "max") -> float:
    """One colour-shift figure: a signed channel mean (b, g, r, y, cb, cr), or a summary (max, chroma)."""
    shifts = color_shifts(img, img2, crop_border)
    if channel == "max":
        return max(abs(shifts[c]) for c in "bgr")
    if channel == "chroma":
        return math.hypot(shifts["cb"], shifts["cr"])
    if channel not in shifts:
        raise ValueError(f"unknown colour-shift channel {channel!r}: choose from {', '.join(CHANNELS + SUMMARIES)}")
    return shifts[channel]


def checkerboard_share(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, scale: int = 2) -> float:
    """Share (0-1) of the luminance error's energy at the upscale's period; 0 when SR equals GT."""
    if scale < 2:
        raise ValueError(f"scale {scale}: a checkerboard share needs an upscale of 2 or more")
    sr, gt = _pair(img, img2, crop_border)
    error = _luma(sr) - _luma(gt)
    h, w = (n - n % scale for n in error.shape)  # whole periods only: the pattern then falls on exact bins
    error = error[:h, :w] - error[:h, :w].mean()
    power = np.abs(np.fft.fft2(error)) ** 2
    total = float(power.sum())
    if total == 0.0:
        return 0.0
    at_period = np.zeros(power.shape, dtype=bool)
    for j in range(1, scale):
        at_period[j * h // scale, :] = True
        at_period[:, j * w // scale] = True
    return float(power[at_period].sum()) / total


def _gaussian(luma: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (radius 3 sigma, edges reflected)."""
    radius = max(1, round(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (0, 1):
        padded = np.pad(luma, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        n = luma.shape[axis]
        luma = sum(w * np.take(padded, np.arange(k, k + n), axis=axis) for k, w in enumerate(taps))
    return luma


def _laplacian_energy(luma: np.ndarray) -> float:
    lap = (4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:])
    return float(np.mean(lap ** 2))


def sharpness_ratio(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, scale: int = 2) -> float:
    """Detail energy of SR's luminance over GT's (1.0 = as sharp as GT, below 1 smoother); nan for a flat GT.

    Detail = the Laplacian of the luminance blurred by a Gaussian of sigma scale / 2: the band an LR
    image of that scale still carries. Above it no upscaler can restore GT's energy, and a plain
    Laplacian ratio would call every model smooth (measured on the demo's photos: 0.09 for bicubic,
    0.32 for the original model, vs 0.48 and 0.96 in this band)."""
    sr, gt = _pair(img, img2, crop_border)
    sigma = scale / 2
    reference = _laplacian_energy(_gaussian(_luma(gt), sigma))
    return _laplacian_energy(_gaussian(_luma(sr), sigma)) / reference if reference > 0 else math.nan


def figure_names(metrics: Mapping[str, Mapping[str, Any]] | None) -> dict[str, str]:
    """Which val.metrics entry holds which figure: {'color', 'chroma', 'checkerboard', 'sharpness'} -> name.

    The option files choose the entries' names; the detectors find them by type (and channel)."""
    found: dict[str, str] = {}
    for name, metric in (metrics or {}).items():
        kind = metric.get("type")
        if kind == COLOR_SHIFT_TYPE and metric.get("channel", "max") in ("max", "chroma"):
            found.setdefault("color" if metric.get("channel", "max") == "max" else "chroma", name)
        elif kind == CHECKERBOARD_TYPE:
            found.setdefault("checkerboard", name)
        elif kind == SHARPNESS_TYPE:
            found.setdefault("sharpness", name)
    return found


def shown_names(metrics: Mapping[str, Mapping[str, Any]] | None) -> dict[str, str]:
    """Which val.metrics entry holds which shown figure (engine.metric_info.SHOWN_FIGURES' keys) -> the entry's name."""
    keys = {"color": "color_shift", "chroma": "chroma_shift", "checkerboard": "checkerboard", "sharpness": "sharpness"}
    found = {keys[figure]: name for figure, name in figure_names(metrics).items()}
    niqe = next((name for name, metric in (metrics or {}).items() if metric.get("type") == NIQE_TYPE), None)
    return {**found, "niqe": niqe} if niqe else found
