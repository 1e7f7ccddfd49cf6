"""Crop large images into overlapping sub-images, as basicsr's scripts/data_preparation/extract_subimages.py.

Same windows (a grid of ``crop_size`` squares every ``step`` pixels, plus a last row/column flush with
the border when more than ``thresh_size`` pixels would be left over), same names
(``<name>_s001<ext>``, row-major), same pixels (read with IMREAD_UNCHANGED, written with PNG compression
level 3). Differences, on purpose: the output folder may exist with ``force``; an image smaller than one
crop or unreadable is reported instead of crashing a worker; the DIV2K habit of deleting 'x2', 'x3',
'x4', 'x8' anywhere in a name is opt-in (``strip_scale``), and then only removes a trailing suffix after a digit;
a JPEG crop is written without the PNG level (OpenCV ignores it there, with a warning per crop); a run killed
halfway is resumed by the next (engine.data.journal).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import sys
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from engine.data.images import check_image, decodes_to_the_end, list_images
from engine.data.journal import NAME as JOURNAL
from engine.data.journal import RESUMED, Journal, staging_folder, swap_in
from engine.data.meta_info import write_text_atomic
from engine.protocol import ProgressFn, UserError

CROP_SIZE, STEP, THRESH_SIZE, COMPRESSION_LEVEL = 400, 200, 0, 3
_SCALE_SUFFIX = re.compile(r"(?<=\d)x(2|3|4|8)$")  # DIV2K LR: 0001x2 -> 0001


def crop_starts(length: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
    """Window starts along one axis (basicsr's h_space / w_space); [] when length < crop_size."""
    starts = list(range(0, length - crop_size + 1, step))
    if not starts:
        return []
    if length - (starts[-1] + crop_size) > thresh_size:
        starts.append(length - crop_size)
    return starts


def subimage_name(path: Path, index: int, strip_scale: bool = False) -> str:
    stem = _SCALE_SUFFIX.sub("", path.stem) if strip_scale else path.stem
    return f"{stem}_s{index:03d}{path.suffix}"


@dataclass(frozen=True)
class _Job:
    path: Path
    out: Path
    crop_size: int
    step: int
    thresh_size: int
    compression_level: int
    strip_scale: bool


def _crop_one(job: _Job) -> tuple[Path, int, str]:
    """(image, crops written, problem); runs in a worker process."""
    problem = decodes_to_the_end(job.path)  # OpenCV fills a truncated JPEG with grey and says nothing
    if problem:
        return job.path, 0, problem
    image = cv2.imread(str(job.path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return job.path, 0, check_image(job.path).problem or "unreadable by OpenCV"
    if image.ndim not in (2, 3):
        return job.path, 0, f"unexpected image shape {image.shape}"
    height, width = image.shape[:2]
    rows = crop_starts(height, job.crop_size, job.step, job.thresh_size)
    cols = crop_starts(width, job.crop_size, job.step, job.thresh_size)
    if not rows or not cols:
        return job.path, 0, f"{width}x{height} is smaller than one {job.crop_size}px crop"
    # basicsr passes the PNG level for a JPEG too, where OpenCV ignores it with a warning per crop
    params = [cv2.IMWRITE_PNG_COMPRESSION, job.compression_level] if job.path.suffix.lower() == ".png" else []
    index = 0
    for top in rows:
        for left in cols:
            index += 1
            crop = np.ascontiguousarray(image[top: top + job.crop_size, left: left + job.crop_size, ...])
            target = job.out / subimage_name(job.path, index, job.strip_scale)
            if not cv2.imwrite(str(target), crop, params):
                return job.path, index - 1, f"could not write {target}"
    return job.path, index, ""


@dataclass
class SubimageResult:
    out: Path
    images: int = 0
    crops: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    workers: int = 1
    resumed: int = 0  # images a killed earlier run had finished, not cropped again


def _pool(workers: int) -> Executor:
    # basicsr forks its workers, the cheapest start. A fork is safe only from a process with no other thread
    # (a lock one holds stays held in the child) and no torch (its OpenMP pool can hang a child); else
    # forkserver starts clean workers, each importing the caller's __main__ again.
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and "torch" not in sys.modules:
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))


def _check_request(input_dir: Path, out_dir: Path, crop_size: int, step: int, thresh_size: int,
                   compression_level: int, force: bool) -> list[Path]:
    """The images to crop; a UserError for bad settings or an output folder that may not be replaced."""
    if crop_size <= 0 or step <= 0 or thresh_size < 0:
        raise UserError(f"bad crop settings: crop_size {crop_size}, step {step}, thresh_size {thresh_size}",
                        "crop size and step must be positive, thresh_size zero or more")
    if not 0 <= compression_level <= 9:
        raise UserError(f"PNG compression level {compression_level} is outside 0..9")
    paths = list_images(input_dir)
    if out_dir.resolve() == input_dir.resolve():
        raise UserError("the output folder is the input folder", "write the crops to e.g. <input>_sub")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise UserError(f"{out_dir} already exists", "pick another output folder or add --force")
    return paths


def extract_subimages(input_dir: Path, out_dir: Path, *, crop_size: int = CROP_SIZE, step: int = STEP,
                      thresh_size: int = THRESH_SIZE, compression_level: int = COMPRESSION_LEVEL,
                      workers: int | None = None, strip_scale: bool = False, force: bool = False,
                      progress: ProgressFn | None = None) -> SubimageResult:
    """Crop every image of input_dir (non-recursive) into out_dir; workers=1 runs in this process.

    The crops go to a hidden sibling folder, renamed to out_dir when every image is done; a run killed
    before that is resumed by the next one with the same settings (engine.data.journal): the images it had
    finished are not cropped again.
    """
    paths = _check_request(input_dir, out_dir, crop_size, step, thresh_size, compression_level, force)
    staging = staging_folder(out_dir)
    settings = {"input": input_dir.resolve(), "crop_size": crop_size, "step": step, "thresh_size": thresh_size,
                "compression_level": compression_level, "strip_scale": strip_scale}
    journal = Journal(staging / JOURNAL, settings) if staging.is_dir() else None
    if journal is not None and not journal.resumed:
        journal.close()
        shutil.rmtree(staging)  # a killed run with other settings: its crops are not these
        journal = None
    staging.mkdir(parents=True, exist_ok=True)
    journal = journal or Journal(staging / JOURNAL, settings)
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    result = SubimageResult(out_dir, workers=workers)
    try:
        _crop_all(paths, staging, journal, result, _Job(Path(), staging, crop_size, step, thresh_size,
                                                        compression_level, strip_scale), progress)
    finally:
        journal.close()
    result.skipped.sort()
    if not result.crops:
        shutil.rmtree(staging)
        path, problem = result.skipped[0]
        raise UserError(f"no sub-image made from {input_dir}: {path}: {problem}",
                        f"give images of at least {crop_size}x{crop_size} pixels that decode completely, or a "
                        "smaller --crop-size")
    journal.remove()
    swap_in(staging, out_dir)
    return result


def _crop_all(paths: list[Path], staging: Path, journal: Journal, result: SubimageResult, template: _Job,
              progress: ProgressFn | None) -> None:
    """Crop each image the journal does not hold yet (in a pool of result.workers), recording each as it ends."""
    total = len(paths)

    def record(outcome: tuple[Path, int, str], fresh: bool = True) -> None:
        path, crops, problem = outcome
        if fresh:
            journal.record(path, crops=crops, problem=problem)
        result.images += 1
        result.crops += crops
        if problem:
            result.skipped.append((path, problem))
        if progress:
            progress(result.images, total, path.name if fresh else RESUMED + path.name)

    todo = []
    for path in paths:
        entry = journal.done(path)
        if entry is None:
            todo.append(replace(template, path=path))
        else:
            result.resumed += 1
            record((path, int(entry.get("crops", 0)), str(entry.get("problem", ""))), fresh=False)
    if result.workers == 1 or len(todo) < 2:
        for job in todo:
            record(_crop_one(job))
        return
    with _pool(min(result.workers, len(todo))) as pool:
        for future in as_completed([pool.submit(_crop_one, job) for job in todo]):
            record(future.result())


@dataclass(frozen=True)
class PairedSubimages:
    gt_dir: Path
    lq_dir: Path
    meta_info: Path  # every source image's crops listed equally often (see paired_subimages)
    crops: int
    sources: int


_CROP_SUFFIX = re.compile(r"_s\d{3,}$")


def paired_subimages(gt_dir: Path, lq_dir: Path, out: Path, *, scale: int, gt_crop: int,
                     workers: int | None = None, force: bool = False) -> PairedSubimages:
    """Sub-images of a paired set (GT exactly `scale` x LQ) that stay pairs: the LQ grid is the GT grid
    divided by scale, so <name>_sNNN of one folder shows what it shows in the other. The meta_info list
    (PairedImageDataset's meta_info_file) repeats each source image's crops up to the largest image's count,
    so training draws the images as evenly as it drew the whole images, not by their areas."""
    if gt_crop % (2 * scale):
        raise UserError(f"gt_crop {gt_crop} is not a multiple of {2 * scale}",
                        "the LQ grid must be the GT grid divided by the scale")
    step = gt_crop // 2
    for source, target, crop in ((gt_dir, out / "GT", gt_crop), (lq_dir, out / "LQ", gt_crop // scale)):
        extract_subimages(source, target, crop_size=crop, step=step * crop // gt_crop, workers=workers, force=force)
    names = sorted(p.name for p in (out / "GT").iterdir())
    if names != sorted(p.name for p in (out / "LQ").iterdir()):
        raise UserError(f"the crops of {gt_dir} and {lq_dir} do not pair up",
                        f"give LQ images exactly 1/{scale} of their GT images' size (GTmod12 + bicubic)")
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_CROP_SUFFIX.sub("", Path(name).stem), []).append(name)
    most = max(len(crops) for crops in groups.values())
    meta = out / "meta_info_balanced.txt"
    write_text_atomic(meta, "".join(f"{crops[i % len(crops)]}\n" for crops in groups.values() for i in range(most)))
    return PairedSubimages(out / "GT", out / "LQ", meta, len(names), len(groups))
