"""Opt-in training speed-ups that keep results right: the `srcockpit:` section of an options file.

    srcockpit:
      channels_last: true      # networks in NHWC memory layout (same numbers, other kernels)
      autocast: bf16           # bf16 (CPU or CUDA) or fp16 (CUDA only) for the networks' training passes
      compile: true            # torch.compile the networks' training passes
      usm: separable           # the USM sharpener's 51x51 Gaussian done as 1x51 then 51x1
      crop_pad_size: 320       # degrade a crop_pad_size window instead of RealESRGANDataset's 400 px one

basicsr and Real-ESRGAN ignore unknown top-level keys, so a file with this section still runs under
plain basicsr (without the speed-ups). Nothing here changes the recipe; each option has a test in
tests/test_speed.py stating how close its results stay to the plain run:

- channels_last: the same convolutions in another memory layout; losses equal within 1e-5.
- autocast: network forward passes (net_g, net_d and the perceptual loss's VGG) in bf16/fp16 while
  training; losses, degradations, optimizer and EMA stay float32, validation runs in float32.
  basicsr's optimize_parameters owns backward() and step(), so there is no GradScaler: prefer bf16,
  and use fp16 (CUDA only) knowing that small gradients can underflow.
- compile: torch.compile of the same training forward passes (validation stays eager); needs a C++
  compiler on CPU (inductor). The first iterations pay the compile time.
- usm: Real-ESRGAN's USMSharp blurs with a dense 51x51 Gaussian; the same Gaussian is separable,
  so two 1-D passes give the same blur (max difference ~4e-4 after the sharpening mask, see the test).
- crop_pad_size: RealESRGANDataset always crops/pads each GT image to 400x400 before the model degrades
  it, then keeps a gt_size crop; with crop_pad_size the model crops each GT to this size (a random
  window) before degrading. The degradations are local (blur, noise, JPEG) or whole-image resizes, so
  the pairs come from the same distribution with less work; keep crop_pad_size >= gt_size + 32 so
  that the final crop does not sit on the blur's reflect-padded border more often than before.

The data-loader settings (num_worker_per_gpu, persistent_workers) and pre-extracted sub-images are
basicsr's own levers (options and `srcockpit data sub-images`); `python -m bench` measures them too.

This module imports torch only inside the functions that need it, so option checks stay torch-free.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.protocol import UserError

SECTION = "srcockpit"
KEYS = ("channels_last", "autocast", "compile", "usm", "crop_pad_size")
OTHER_KEYS = ("notify",)  # the section's keys that are not speed-ups (engine/notify.py)
AUTOCAST = ("bf16", "fp16")
USM = ("dense", "separable")
DATASET_WINDOW = 400  # RealESRGANDataset's fixed crop_pad_size


@dataclass(frozen=True)
class SpeedOptions:
    channels_last: bool = False
    autocast: str | None = None
    compile: bool = False
    usm: str = "dense"
    crop_pad_size: int | None = None

    def active(self) -> list[str]:
        """The options switched on, as `key=value` words (for logs and the bench table)."""
        found = []
        for key in KEYS:
            value = getattr(self, key)
            if value not in (False, None, "dense"):
                found.append(key if value is True else f"{key}={value}")
        return found


def _gt_size(opt: dict[str, Any]) -> int | None:
    train = (opt.get("datasets") or {}).get("train") or {}
    size = opt.get("gt_size", train.get("gt_size"))
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def speed_options(opt: dict[str, Any]) -> SpeedOptions:
    """The `srcockpit:` section of opt, checked; UserError naming `srcockpit.<key>` for a bad value."""
    section = opt.get(SECTION)
    if section is None:
        return SpeedOptions()
    if not isinstance(section, dict):
        raise UserError(f"{SECTION}: must be a section (a mapping of keys), got {section!r}",
                        f"indent its keys under it: {', '.join(KEYS)}")
    for key in section:
        if key not in KEYS + OTHER_KEYS:
            raise UserError(f"{SECTION}.{key}: unknown key", f"one of: {', '.join(KEYS + OTHER_KEYS)}")
    for key in ("channels_last", "compile"):
        if not isinstance(section.get(key, False), bool):
            raise UserError(f"{SECTION}.{key}: must be true or false (got {section[key]!r})", "write true or false")
    autocast = section.get("autocast")
    if autocast not in (None, *AUTOCAST):
        raise UserError(f"{SECTION}.autocast: must be ~, bf16 or fp16 (got {autocast!r})",
                        "bf16 works on CPUs and recent GPUs; fp16 only on CUDA")
    usm = section.get("usm", "dense")
    if usm not in USM:
        raise UserError(f"{SECTION}.usm: must be dense or separable (got {usm!r})", "usm: separable")
    crop = section.get("crop_pad_size")
    if crop is not None:
        gt_size, scale = _gt_size(opt), opt.get("scale", 1)
        if not isinstance(crop, int) or isinstance(crop, bool) or crop <= 0:
            raise UserError(f"{SECTION}.crop_pad_size: must be a positive whole number (got {crop!r})",
                            "e.g. crop_pad_size: 320")
        if gt_size is not None and crop < gt_size:
            raise UserError(f"{SECTION}.crop_pad_size: {crop} is smaller than gt_size {gt_size}",
                            f"use at least gt_size + 32 = {gt_size + 32}")
        if isinstance(scale, int) and scale > 0 and crop % scale:
            raise UserError(f"{SECTION}.crop_pad_size: {crop} is not a multiple of scale {scale}",
                            f"crop_pad_size: {crop - crop % scale}")
        if crop > DATASET_WINDOW:
            raise UserError(f"{SECTION}.crop_pad_size: {crop} is larger than RealESRGANDataset's "
                            f"{DATASET_WINDOW} px window, so it would change nothing", "leave it out")
    return SpeedOptions(channels_last=section.get("channels_last", False), autocast=autocast,
                        compile=section.get("compile", False), usm=usm, crop_pad_size=crop)


# ---- the pieces --------------------------------------------------------------------------------------

def _separable_usm_class() -> type:
    import cv2
    import numpy as np
    import torch
    from torch.nn import functional as F

    class SeparableUSMSharp(torch.nn.Module):
        """basicsr's USMSharp (same radius, sigma, weight, threshold), blurring with two 1-D passes.

        USMSharp builds its kernel as the outer product of cv2.getGaussianKernel with itself, so
        convolving rows then columns with that 1-D kernel, after the same reflect padding, is the same
        blur: O(2k) instead of O(k^2) per pixel, 51x51 -> 2x51.
        """

        def __init__(self, radius: int = 50, sigma: float = 0) -> None:
            super().__init__()
            if radius % 2 == 0:
                radius += 1
            self.radius = radius
            kernel = torch.from_numpy(np.asarray(cv2.getGaussianKernel(radius, sigma), dtype=np.float32)).flatten()
            self.register_buffer("kernel", kernel)

        def blur(self, img: torch.Tensor) -> torch.Tensor:
            b, c, h, w = img.shape
            pad = self.radius // 2
            flat = F.pad(img.reshape(b * c, 1, h, w), (pad, pad, pad, pad), mode="reflect")
            kernel = self.kernel.to(img.dtype)
            flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
            flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
            return flat.view(b, c, h, w)

        def forward(self, img: torch.Tensor, weight: float = 0.5, threshold: float = 10) -> torch.Tensor:
            blur = self.blur(img)
            residual = img - blur
            mask = (torch.abs(residual) * 255 > threshold).float()
            soft_mask = self.blur(mask)
            sharp = torch.clip(img + weight * residual, 0, 1)
            return soft_mask * sharp + (1 - soft_mask) * img

    return SeparableUSMSharp


@functools.cache
def separable_usm_class() -> type:
    return _separable_usm_class()


def SeparableUSMSharp(radius: int = 50, sigma: float = 0) -> Any:
    """A SeparableUSMSharp module (the class is made on first use, so importing this file needs no torch)."""
    return separable_usm_class()(radius, sigma)


def random_crop_batch(gt: Any, size: int, rng: random.Random | None = None) -> Any:
    """Each image of a BxCxHxW batch cropped to size x size at its own random window (python's random,
    as basicsr's crops); a batch already that small is returned as it is."""
    import torch

    h, w = gt.shape[-2:]
    if h <= size and w <= size:
        return gt
    draw = rng or random
    crops = []
    for image in gt:
        top, left = draw.randint(0, max(h - size, 0)), draw.randint(0, max(w - size, 0))
        crops.append(image[..., top:top + size, left:left + size])
    return torch.stack(crops)


def _to_float(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {key: _to_float(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(item) for item in value)
    return value


def _wrap_forward(net: Any, *, device_type: str, dtype: Any, compile_it: bool, train_only: bool) -> None:
    """Replace net.forward (on the instance: state_dict keys stay the same) by one that runs under
    autocast and/or torch.compile while the net is in training mode (eval mode keeps the original)."""
    import torch

    eager = net.forward
    fast = eager
    if dtype is not None:
        inner = fast

        @functools.wraps(inner)
        def autocast_forward(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(device_type=device_type, dtype=dtype):
                out = inner(*args, **kwargs)
            return _to_float(out)

        fast = autocast_forward
    if compile_it:
        fast = torch.compile(fast)

    def forward(*args: Any, **kwargs: Any) -> Any:
        return fast(*args, **kwargs) if (net.training or not train_only) else eager(*args, **kwargs)

    net.forward = forward


def apply_speed_options(model: Any, opt: dict[str, Any]) -> Any:
    """Switch on what opt's `srcockpit:` section asks for on a built basicsr model; returns the model."""
    spec = speed_options(opt)
    if not spec.active():
        return model
    import torch

    device = model.device
    if spec.usm == "separable" and hasattr(model, "usm_sharpener"):
        model.usm_sharpener = SeparableUSMSharp().to(device)
    nets = [model.get_bare_model(getattr(model, name)) for name in ("net_g", "net_d") if hasattr(model, name)]
    if spec.channels_last:
        for name in ("net_g", "net_d", "net_g_ema"):
            if hasattr(model, name):
                model.get_bare_model(getattr(model, name)).to(memory_format=torch.channels_last)
    dtype = None
    if spec.autocast:
        if spec.autocast == "fp16" and device.type != "cuda":
            raise UserError(f"{SECTION}.autocast: fp16 needs a CUDA device (this run is on {device.type})",
                            "use autocast: bf16, or leave autocast out")
        dtype = torch.bfloat16 if spec.autocast == "bf16" else torch.float16
    if dtype is not None or spec.compile:
        for net in nets:
            _wrap_forward(net, device_type=device.type, dtype=dtype, compile_it=spec.compile, train_only=True)
        perceptual = getattr(getattr(model, "cri_perceptual", None), "vgg", None)
        if dtype is not None and perceptual is not None:  # used only by the training losses
            _wrap_forward(perceptual, device_type=device.type, dtype=dtype, compile_it=False, train_only=False)
    if spec.crop_pad_size:
        _crop_before_degrading(model, spec.crop_pad_size)
    return model


def _crop_before_degrading(model: Any, size: int) -> None:
    original = model.feed_data

    def feed_data(data: dict[str, Any]) -> None:
        if model.is_train and model.opt.get("high_order_degradation", True) and "kernel1" in data:
            data = dict(data, gt=random_crop_batch(data["gt"], size))
        original(data)

    model.feed_data = feed_data



def busy_cores(interval: float = 0.5) -> float:
    """Cores other processes keep busy now: the machine's CPU use over `interval` less this process's own.

    A short sample rather than the load average: the load average lags a minute and counts this very
    process (a demo's second stage would see its first stage's threads as someone else's)."""
    import psutil

    me = psutil.Process()
    me.cpu_percent(None)
    machine = psutil.cpu_percent(interval) / 100 * (psutil.cpu_count() or 1)
    return max(0.0, machine - me.cpu_percent(None) / 100)


def usable_threads(busy: float | None = None, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """How many threads torch should use here, and why (a sentence for the log).

    The cores this process may run on come from its affinity mask (a container's or taskset's limit),
    not the machine's count. Cores other processes keep busy are left to them: with more threads than
    free cores, each of torch's parallel regions waits for its slowest, descheduled thread. Local ranks
    of a distributed run split the cores; OMP_NUM_THREADS, when set, is the user's choice and wins.
    """
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS", "").isdigit() and int(environ["OMP_NUM_THREADS"]) > 0:
        return int(environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS is set"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = busy_cores() if busy is None else busy
    taken = min(cores, round(busy * cores / (os.cpu_count() or cores)))  # our share of the machine's busy cores
    ranks = max(1, int(environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    threads = max(1, (cores - taken) // ranks)
    return threads, (f"{cores} cores this process may use, {taken} of them busy with other processes, "
                     f"{ranks} local rank(s)")


def set_torch_threads() -> tuple[int, str]:
    """torch.set_num_threads(usable_threads()); returns what usable_threads said."""
    import torch

    threads, why = usable_threads()
    torch.set_num_threads(threads)
    return threads, why
