"""Set5-style paired validation sets: GT cropped to a multiple of 12, LR by MATLAB-style bicubic.

The layout is basicsr's (datasets/Set5/GTmod12 + LRbicx2, same file names in both), so an options
file's PairedImageDataset reads it with filename_tmpl '{}'. The LR images come from basicsr's own
MATLAB-compatible ``imresize`` (antialiased bicubic), rounded to uint8 as basicsr's tensor2img does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.compat import load_basicsr
from engine.data.images import list_images, read_rgb, write_png
from engine.protocol import ProgressFn, UserError

# Set5/Set14 in basicsr are cropped to a multiple of 12 so that x2, x3 and x4 LR images all exist.
GT_MULTIPLE = 12


def gt_mod_crop(image: np.ndarray, multiple: int = GT_MULTIPLE) -> np.ndarray:
    # basicsr (and torch with it) is imported here, not with the module: a folder without images, or with
    # an unreadable one, is refused before those seconds are spent
    load_basicsr()
    from basicsr.data.transforms import mod_crop

    return mod_crop(image, multiple)


def bicubic_downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 image -> uint8 image 1/scale the size, by basicsr's MATLAB-style bicubic."""
    if image.shape[0] % scale or image.shape[1] % scale:
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} is not a multiple of scale {scale}")
    load_basicsr()
    from basicsr.utils.matlab_functions import imresize

    small = imresize(image.astype(np.float32) / 255.0, 1 / scale)
    return np.clip(np.round(small * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ValSet:
    gt_dir: Path
    lq_dir: Path
    scale: int
    names: tuple[str, ...]


def valset_dirs(out: Path, scale: int) -> tuple[Path, Path]:
    return out / f"GTmod{GT_MULTIPLE}", out / f"LRbicx{scale}"


def write_pairs(images: Iterable[tuple[str, np.ndarray]], out: Path, *, scale: int = 2,
                count: int | None = None, progress: ProgressFn | None = None) -> ValSet:
    """Write (name, uint8 RGB HR image) pairs as GTmod12/<name>.png and LRbicx<scale>/<name>.png."""
    if GT_MULTIPLE % scale:
        raise UserError(f"scale {scale} does not divide {GT_MULTIPLE}", "use scale 2, 3 or 4")
    gt_dir, lq_dir = valset_dirs(out, scale)
    names = []
    for name, image in images:
        gt = gt_mod_crop(image)
        if min(gt.shape[:2]) < GT_MULTIPLE:
            raise UserError(f"{name} is too small for a validation image ({image.shape[1]}x{image.shape[0]})",
                            f"use images of at least {GT_MULTIPLE}x{GT_MULTIPLE} pixels")
        write_png(gt_dir / f"{name}.png", gt)
        write_png(lq_dir / f"{name}.png", bicubic_downscale(gt, scale))
        names.append(name)
        if progress:
            progress(len(names), count or len(names), name)
    return ValSet(gt_dir, lq_dir, scale, tuple(names))


def make_valset(hr_dir: Path, out: Path, *, scale: int = 2, force: bool = False,
                progress: ProgressFn | None = None) -> ValSet:
    """A paired set from every image in hr_dir (non-recursive); refuses to overwrite without force."""
    paths = list_images(hr_dir)
    gt_dir, lq_dir = valset_dirs(out, scale)
    taken = [d for d in (gt_dir, lq_dir) if d.exists() and any(d.iterdir())]
    if taken and not force:
        raise UserError(f"{taken[0]} already exists and is not empty",
                        "pick another -o folder or add --force")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        clash = sorted({s for s in stems if stems.count(s) > 1})
        raise UserError(f"{hr_dir} has several files named {clash[0]}.* (different extensions)",
                        "rename them: GT and LR are written as <name>.png")
    images = [(p.stem, read_rgb(p)) for p in paths]  # every image read and checked before anything is written
    for path, (_, image) in zip(paths, images, strict=True):
        if min(gt_mod_crop(image).shape[:2]) < GT_MULTIPLE:
            raise UserError(f"{path} is too small for a validation image ({image.shape[1]}x{image.shape[0]})",
                            f"use images of at least {GT_MULTIPLE}x{GT_MULTIPLE} pixels, or move it out of {hr_dir}")
    for folder in taken:  # --force: a stale image from an earlier set would pair with nothing
        shutil.rmtree(folder)
    return write_pairs(iter(images), out, scale=scale, count=len(paths), progress=progress)
