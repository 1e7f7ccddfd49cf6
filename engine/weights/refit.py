"""Least-squares refit of a pruned SRVGGNetCompact (channel pruning with reconstruction).

He et al. 2017 ("Channel Pruning for Accelerating Very Deep Neural Networks") and ThiNet refit the
layer after a pruned one so that, fed with the pruned network's features, it reproduces the original
network's responses. Here, layer by layer from the second conv on:

    W_j = argmin ||conv(A'_{j-1}; W) - Z_j[kept_j]||^2 + lambda ||W - W0_j||^2        (bias unpenalised)

A'_{j-1}: the pruned (already refit) network's activations; Z_j: the original network's
pre-activations of the matching conv (for the last conv: the original output before PixelShuffle);
W0_j: the plainly pruned weights, so lambda pulls toward plain pruning; lambda = ridge * mean diagonal
of the Gram matrix. Solved exactly from the Gram matrix (float64) on im2col columns of every pixel of
every calibration patch.

Calibration inputs: random `patch` x `patch` crops (seeded) of the given images after bicubic
downscaling by the model's scale (basicsr's MATLAB imresize, as the validation LR is made), i.e. the
kind of LR input the network sees; images are picked uniformly, positions uniformly.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.data.images import list_images, read_rgb
from engine.protocol import ProgressFn, UserError

CHUNK = 8  # patches per im2col chunk


@dataclass(frozen=True)
class RefitSettings:
    folder: Path | None = None  # calibration images (any size, grey is read as RGB)
    patches: int = 64
    patch: int = 48  # LR pixels
    ridge: float = 1e-2
    seed: int = 0
    downscale: bool = True  # bicubic-downscale the images by the model scale first
    images: tuple[np.ndarray, ...] = ()  # uint8 RGB images instead of (or besides) folder

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("images")
        data["folder"] = str(self.folder) if self.folder else None
        return data


def calibration_patches(settings: RefitSettings, scale: int) -> tuple[torch.Tensor, int]:
    """N x 3 x p x p float patches in [0, 1] and the number of images they came from."""
    from engine.data.valset import bicubic_downscale, gt_mod_crop

    images = list(settings.images)
    if settings.folder is not None:
        images += [read_rgb(path) for path in list_images(settings.folder)]
    if settings.patches < 1 or settings.patch < 3:
        raise UserError(f"refit needs at least 1 patch of at least 3x3 pixels (got {settings.patches} x "
                        f"{settings.patch})")
    lr = []
    for image in images:
        if settings.downscale and scale > 1:
            image = gt_mod_crop(image, scale)
            if min(image.shape[:2]) < scale:
                continue
            image = bicubic_downscale(image, scale)
        if min(image.shape[:2]) >= settings.patch:
            lr.append(image)
    if not lr:
        raise UserError(f"no calibration image is large enough for {settings.patch}x{settings.patch} "
                        f"LR patches (after x{scale} downscaling)",
                        "give larger images or a smaller patch size")
    rng = random.Random(settings.seed)
    crops = []
    for _ in range(settings.patches):
        image = lr[rng.randrange(len(lr))]
        top = rng.randrange(image.shape[0] - settings.patch + 1)
        left = rng.randrange(image.shape[1] - settings.patch + 1)
        crops.append(image[top:top + settings.patch, left:left + settings.patch])
    batch = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy()).float() / 255.0
    return batch, len(lr)


def _columns(x: torch.Tensor) -> torch.Tensor:
    """im2col of a 3x3/pad 1 conv, plus a ones column for the bias: (N*H*W) x (C*9 + 1)."""
    cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, x.shape[1] * 9)
    return torch.cat([cols, cols.new_ones(cols.shape[0], 1)], dim=1)


def solve_layer(features: torch.Tensor, target: torch.Tensor, weight0: torch.Tensor, bias0: torch.Tensor,
                ridge: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Ridge least squares of one conv: features N x Cin x H x W, target N x Cout x H x W (pre-activation)."""
    dim = features.shape[1] * 9 + 1
    gram = torch.zeros(dim, dim, dtype=torch.float64)
    cross = torch.zeros(dim, target.shape[1], dtype=torch.float64)
    target_energy = 0.0
    for start in range(0, features.shape[0], CHUNK):
        cols = _columns(features[start:start + CHUNK])
        y = target[start:start + CHUNK].permute(0, 2, 3, 1).reshape(-1, target.shape[1])
        # float32 products per chunk (fast), accumulated in float64 across chunks
        gram += (cols.T @ cols).double()
        cross += (cols.T @ y).double()
        target_energy += float(y.double().pow(2).sum())
    w0 = torch.cat([weight0.reshape(weight0.shape[0], -1), bias0[:, None]], dim=1).T.double()  # dim x Cout
    penalty = torch.ones(dim, dtype=torch.float64)
    penalty[-1] = 0.0  # the bias is not pulled toward its pruned value
    lam = ridge * float(gram.diagonal()[:-1].mean())
    solution = torch.linalg.solve(gram + lam * torch.diag(penalty), cross + lam * penalty[:, None] * w0)

    def error(w: torch.Tensor) -> float:  # ||Xw - Y||^2 / ||Y||^2 from the Gram matrix
        residual = float((w * (gram @ w)).sum() - 2 * (w * cross).sum()) + target_energy
        return max(residual, 0.0) / target_energy if target_energy else 0.0

    figures = {"error_before": error(w0), "error_after": error(solution), "lambda": lam}
    weight = solution[:-1].T.reshape(weight0.shape).to(weight0.dtype)
    bias = solution[-1].to(bias0.dtype)
    return weight.contiguous(), bias.contiguous(), figures


def refit_chain(original: Any, narrow: Any, origin: list[int], kept: list[list[int]],
                settings: RefitSettings, *, progress: ProgressFn | None = None,
                ) -> tuple[dict[str, Any], list[dict[str, float] | None]]:
    """Refit narrow (a transfer.ConvChain, edited in place) conv by conv against original.

    origin[j]: the original conv that narrow conv j stands for; kept[j]: its kept output channels.
    Returns the refit summary and per narrow conv the relative pre-activation errors (None: not refit).
    """
    start = time.perf_counter()
    x, image_count = calibration_patches(settings, original.upscale)
    per_layer: list[dict[str, float] | None] = [None]
    total = len(narrow.weights) - 1
    with torch.no_grad():
        ours = narrow.activation(0, narrow.conv(0, x))
        theirs = original.activation(0, original.conv(0, x))
        position = 0  # original conv whose activation `theirs` holds
        for j in range(1, len(narrow.weights)):
            while position < origin[j] - 1:
                position += 1
                theirs = original.activation(position, original.conv(position, theirs))
            target = original.conv(origin[j], theirs)[:, kept[j]]
            weight, bias, figures = solve_layer(ours, target, narrow.weights[j], narrow.biases[j],
                                                settings.ridge)
            narrow.weights[j], narrow.biases[j] = weight, bias
            per_layer.append(figures)
            if j < len(narrow.weights) - 1:
                ours = narrow.activation(j, narrow.conv(j, ours))
            if progress:
                progress(j, total, f"refit conv {j}/{total}")
    inputs = "bicubic-downscaled by the model scale" if settings.downscale else "images as LR inputs"
    summary = {**settings.describe(), "calibration_images": image_count,
               "pixels_per_layer": int(x.numel() // 3), "inputs": inputs,
               "objective": "ridge least squares toward the pruned weights on original pre-activations",
               "seconds": round(time.perf_counter() - start, 2)}
    return summary, per_layer
