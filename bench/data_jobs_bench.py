"""Data jobs at the plan's scale: `srcockpit data subset`, `meta-info` and `extract-subimages` on generated 2K
photos, each beside the reference logic it replaces, at the same worker count, in one invocation.

    python -m bench.data_jobs_bench [--images 1100] [--png 0] [--threads N] [--keep DIR] [--quick]
                                    [--resume-images 200] [--no-resume]

The photos: scikit-image's colour photos, a random crop of one upscaled to 2040x1356 (one in ten
portrait), flipped, colour-shifted, with mild sensor noise, as JPEG q95 (~1 MB each); the first --png
of them PNG instead (DIV2K-like, ~4 MB: their 35 PNG crops cost about ten times a JPEG's, which a
2-core machine cannot afford on a thousand). Made once into DIR/pool2k (kept with --keep). The
subset's sources are folders of links into the pool, as the plan's DIV2K + Flickr2K + OST (five
category sub-folders).

References (reimplemented from their sources, not imported: neither script ships in a package):
- basicsr's scripts/data_preparation/extract_subimages.py: scandir, a multiprocessing Pool of n_thread,
  apply_async(worker) per image; worker = cv2.imread IMREAD_UNCHANGED, the crop grid, cv2.imwrite with
  IMWRITE_PNG_COMPRESSION 3; crop_size 480, step 240, thresh_size 0 (the script's DIV2K HR settings).
- Real-ESRGAN's scripts/generate_meta_info.py with --check: sorted(glob(folder/*)), cv2.imread of each.
- subset has no reference script: its floor is cv2.imread of the images it picks, in a Pool of n_thread.
Each side is a fresh process (the CLI as a user types it; the reference as `python -m bench.data_jobs_bench
--reference ...`), timed wall-clock from spawn to exit, the disk synced before each (not timed: neither side
pays for the write-back of the other's crops); the load average is read beside each run.
The resume check kills `extract-subimages --job` (SIGKILL: the CLI and its workers) once its progress
passes half of --resume-images photos, runs it again, and counts the images the second run cropped
(its result's `resumed`).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from bench.common import ROOT, Row

WIDTH, HEIGHT = 2040, 1356
CROP, STEP, THRESH, LEVEL = 480, 240, 0, 3  # basicsr's script, DIV2K HR
# (label, share of the pool, share of it taken): 1,100 photos give the plan's mix, 220 + 500 + 280 = 1,000
SOURCES = (("DIV2K_train_HR", 0.2, "all"), ("Flickr2K_HR", 0.5, 10 / 11), ("OST", 0.3, 0.85))
OST_CATEGORIES = ("animal", "building", "grass", "mountain", "plant")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
          "stereo_motorcycle")


# ---- the photos ----------------------------------------------------------------------------------------

def _photo(index: int) -> np.ndarray:
    """A 2K-class BGR photo, the same for the same index."""
    from skimage import data

    rng = np.random.default_rng(index)
    source = getattr(data, PHOTOS[index % len(PHOTOS)])()
    source = (source[0] if isinstance(source, tuple) else source)[..., :3]  # stereo_motorcycle: (left, right, disp)
    height, width = source.shape[:2]
    ch, cw = int(height * rng.uniform(0.55, 1.0)), int(width * rng.uniform(0.55, 1.0))
    top, left = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
    size = (HEIGHT, WIDTH) if index % 10 == 9 else (WIDTH, HEIGHT)  # cv2.resize takes (width, height)
    image = cv2.resize(np.ascontiguousarray(source[top: top + ch, left: left + cw]), size,
                       interpolation=cv2.INTER_CUBIC).astype(np.float32)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = image * rng.uniform(0.85, 1.15, 3) + rng.normal(0, 1.5, image.shape)
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8)[..., ::-1])


def _name(index: int, png: int) -> str:
    return f"{index + 1:04d}.png" if index < png else f"{index + 1:04d}.jpg"


def _make_one(task: tuple[int, int, str]) -> None:
    index, png, folder = task
    path = Path(folder) / _name(index, png)
    if path.is_file():
        return
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if path.suffix == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 95]
    ok, encoded = cv2.imencode(path.suffix, _photo(index), params)
    assert ok, path
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(encoded.tobytes())
    partial.replace(path)


def make_pool(folder: Path, count: int, png: int, threads: int, log: Callable[[str], None]) -> Path:
    """DIR/pool2k with `count` photos, the first `png` PNG (made once: existing ones are kept)."""
    pool = folder / "pool2k"
    pool.mkdir(parents=True, exist_ok=True)
    wanted = {_name(i, png) for i in range(count)}
    for stale in [p for p in pool.iterdir() if p.name not in wanted]:  # another --images/--png before
        stale.unlink()
    started = time.perf_counter()
    with Pool(threads) as workers:
        for _ in workers.imap_unordered(_make_one, [(i, png, str(pool)) for i in range(count)], chunksize=4):
            pass
    log(f"  pool: {count} photos in {pool} ({time.perf_counter() - started:.0f} s, "
        f"{sum(p.stat().st_size for p in pool.iterdir()) / 1e9:.2f} GB)")
    return pool


def source_folders(folder: Path, pool: Path) -> list[str]:
    """The plan's three sources as folders of links into the pool; the --source arguments of the subset."""
    names = sorted(p.name for p in pool.iterdir() if not p.name.startswith("."))
    count = len(names)
    start, specs = 0, []
    for label, share, take in SOURCES:
        chunk = names[start: start + round(count * share)]
        start += len(chunk)
        target = folder / "sources" / label
        shutil.rmtree(target, ignore_errors=True)
        for position, name in enumerate(chunk):
            sub = target / OST_CATEGORIES[position % len(OST_CATEGORIES)] if label == "OST" else target
            sub.mkdir(parents=True, exist_ok=True)
            (sub / name).symlink_to(pool / name)
        specs.append(f"{target}={take if take == 'all' else round(len(chunk) * take)}")
    return specs


# ---- the references -------------------------------------------------------------------------------------

def _basicsr_scandir(dir_path: str):
    """basicsr.utils.scandir(dir_path, full_path=True), non-recursive."""
    for entry in os.scandir(dir_path):
        if not entry.name.startswith(".") and entry.is_file():
            yield entry.path


def basicsr_worker(path: str, opt: dict) -> str:
    """basicsr's extract_subimages.py worker(), line for line (tests/test_data_subimages.py checks our crops
    against it)."""
    crop_size, step, thresh_size = opt["crop_size"], opt["step"], opt["thresh_size"]
    img_name, extension = os.path.splitext(os.path.basename(path))
    img_name = img_name.replace("x2", "").replace("x3", "").replace("x4", "").replace("x8", "")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    h, w = img.shape[0:2]
    h_space = np.arange(0, h - crop_size + 1, step)
    if h - (h_space[-1] + crop_size) > thresh_size:
        h_space = np.append(h_space, h - crop_size)
    w_space = np.arange(0, w - crop_size + 1, step)
    if w - (w_space[-1] + crop_size) > thresh_size:
        w_space = np.append(w_space, w - crop_size)
    index = 0
    for x in h_space:
        for y in w_space:
            index += 1
            cropped_img = np.ascontiguousarray(img[x:x + crop_size, y:y + crop_size, ...])
            cv2.imwrite(os.path.join(opt["save_folder"], f"{img_name}_s{index:03d}{extension}"), cropped_img,
                        [cv2.IMWRITE_PNG_COMPRESSION, opt["compression_level"]])
    return f"Processing {img_name} ..."


def basicsr_extract_subimages(input_folder: str, save_folder: str, n_thread: int) -> None:
    """basicsr's extract_subimages(opt): one apply_async per image on a Pool(n_thread), a tqdm bar."""
    from tqdm import tqdm

    opt = {"crop_size": CROP, "step": STEP, "thresh_size": THRESH, "compression_level": LEVEL,
           "save_folder": save_folder}
    os.makedirs(save_folder)
    img_list = list(_basicsr_scandir(input_folder))
    pbar = tqdm(total=len(img_list), unit="image", desc="Extract")
    pool = Pool(n_thread)
    for path in img_list:
        pool.apply_async(basicsr_worker, args=(path, opt), callback=lambda arg: pbar.update(1))
    pool.close()
    pool.join()
    pbar.close()


def realesrgan_meta_info(folders: list[str], roots: list[str], meta_info: str) -> None:
    """Real-ESRGAN's generate_meta_info.py with --check (its __main__ makes the file's folder, then main(args))."""
    os.makedirs(os.path.dirname(meta_info), exist_ok=True)
    with open(meta_info, "w") as txt_file:
        for folder, root in zip(folders, roots, strict=True):
            for img_path in sorted(glob.glob(os.path.join(folder, "*"))):
                img = cv2.imread(img_path)
                if img is not None:
                    txt_file.write(f"{os.path.relpath(img_path, root)}\n")


def _decode(path: str) -> bool:
    return cv2.imread(path, cv2.IMREAD_UNCHANGED) is not None


def decode_floor(paths: list[str], n_thread: int) -> None:
    """What a subset must at least do: decode each picked image once, in a Pool(n_thread)."""
    with Pool(n_thread) as pool:
        assert all(pool.imap_unordered(_decode, paths, chunksize=4))


def reference_main(argv: list[str]) -> int:
    """`--reference extract IN OUT N` | `meta-info FOLDER ROOT FILE` | `decode LISTFILE N`, in a fresh process."""
    what, *rest = argv
    if what == "extract":
        basicsr_extract_subimages(rest[0], rest[1], int(rest[2]))
    elif what == "meta-info":
        realesrgan_meta_info([rest[0]], [rest[1]], rest[2])
    else:
        decode_floor(Path(rest[0]).read_text().splitlines(), int(rest[1]))
    return 0


# ---- measuring ------------------------------------------------------------------------------------------

def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", COLUMNS="120")


def _timed(command: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of a fresh process from spawn to exit, and the load average when it ended."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=7200)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:5])}... exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, " ".join(f"{x:.1f}" for x in os.getloadavg())


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", "data", *args]


def _reference(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.data_jobs_bench", "--reference", *args]


def _pair(name: str, segments: list[tuple[list[str], list[str]]], images: int, cwd: Path, against: str,
          log: Callable[[str], None], clean: Callable[[], None]) -> Row:
    """Each segment (ours, reference) once, in the order A B, then B A for the next (a full-scale run is minutes:
    drift of a shared machine falls on both); images/s over all segments, the ratio, walls and loads."""
    walls: dict[str, float] = {"ours": 0.0, "reference": 0.0}
    loads: dict[str, list[str]] = {"ours": [], "reference": []}
    for index, (ours, theirs) in enumerate(segments):
        order = [("reference", theirs), ("ours", ours)]
        for side, command in order if index % 2 == 0 else order[::-1]:
            clean()
            os.sync()  # the last run's crops (hundreds of MB) are written back now, not during this run
            seconds, load = _timed(command, cwd)
            walls[side] += seconds
            loads[side].append(load)
            log(f"  {name if side == 'ours' else against} [{index + 1}/{len(segments)}]: {seconds:.1f} s "
                f"(load {load})")
    clean()
    t_ours, t_ref = walls["ours"], walls["reference"]
    log(f"  {name}: {images / t_ours:.2f} images/s; {against}: {images / t_ref:.2f} images/s")
    context = (f"{images} images: {images / t_ours:.2f} vs {images / t_ref:.2f} images/s, {t_ours:.0f} s vs "
               f"{t_ref:.0f} s wall (load {', '.join(loads['ours'])} / {', '.join(loads['reference'])})")
    return Row("7 data jobs", f"srcockpit data {name}", t_ref / t_ours, against, context, [t_ours, t_ref])


def _links(folder: Path, names: list[str], pool: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).symlink_to(pool / name)
    return folder


def _events(job: Path) -> list[dict]:
    from engine.protocol import read_events

    log = job / "cockpit" / "events.jsonl"
    return list(read_events(log)) if log.is_file() else []


def resume_check(pool: Path, images: int, out: Path, threads: int, cwd: Path, log: Callable[[str], None]) -> Row:
    """extract-subimages killed (SIGKILL) past half its images, then run again: how much the rerun redid."""
    pool = _links(cwd / "resume-pool", sorted(p.name for p in pool.iterdir() if not p.name.startswith("."))[-images:],
                  pool)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / f".{out.name}.partial", ignore_errors=True)
    args = ["extract-subimages", str(pool), "-o", str(out), "--crop-size", str(CROP), "--step", str(STEP),
            "--workers", str(threads), "-q"]
    first, second = cwd / "resume-job1", cwd / "resume-job2"
    for job in (first, second):
        shutil.rmtree(job, ignore_errors=True)
    process = subprocess.Popen(_cli(*args, "--job", str(first)), cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    total = len([p for p in pool.iterdir() if not p.name.startswith(".")])
    killed_at = 0
    while process.poll() is None and killed_at < total // 2:
        time.sleep(0.5)
        killed_at = max((e["done"] for e in _events(first) if e["type"] == "progress"), default=0)
    os.killpg(process.pid, signal.SIGKILL)  # the CLI and its pool's workers, as a kill -9 of the session
    process.wait()
    seconds, load = _timed(_cli(*args, "--job", str(second)), cwd)
    record = next(e for e in _events(second) if e["type"] == "result")
    redone = record["images"] - record["resumed"]
    log(f"  resume: killed at {killed_at}/{total}; the rerun kept {record['resumed']}, cropped {redone} "
        f"({seconds:.0f} s, load {load})")
    shutil.rmtree(out, ignore_errors=True)
    context = (f"killed (SIGKILL) at {killed_at}/{total} images; the rerun kept {record['resumed']} and cropped "
               f"{redone} ({seconds:.0f} s, load {load})")
    return Row("7 data jobs", "extract-subimages killed halfway, run again", None, "-", context,
               [killed_at, record["resumed"], redone])


def data_jobs(folder: Path, *, images: int, png: int, threads: int, extract_images: int, resume_images: int,
              log: Callable[[str], None]) -> list[Row]:
    """Generate (or reuse) the photos, then each job beside its reference; the resume check last (0: none)."""
    pool = make_pool(folder, images, png, threads, log)
    specs = source_folders(folder, pool)
    subset_out, meta_file = folder / "subset", folder / "meta" / "meta_info_pool2k.txt"
    sub_ours, sub_ref = folder / "crops", folder / "crops_basicsr"

    def clean() -> None:
        for path in (subset_out, folder / ".subset.partial", sub_ours, sub_ref, folder / ".crops.partial"):
            shutil.rmtree(path, ignore_errors=True)
        meta_file.unlink(missing_ok=True)

    from engine.data.subset import parse_source, plan_subset

    plan = plan_subset([parse_source(s) for s in specs], subset_out, balance=True)
    picked = [str(p) for s in plan.sources for p in s.order[: s.wanted]]
    (folder / "picked.txt").write_text("\n".join(picked) + "\n")
    source_args = [part for spec in specs for part in ("--source", spec)]
    names = sorted(p.name for p in pool.iterdir() if not p.name.startswith("."))[:extract_images]
    halves = [_links(folder / f"extract-{k}", names[k::2], pool) for k in (0, 1)]  # the same mix of PNG and JPEG
    extract = [(_cli("extract-subimages", str(half), "-o", str(sub_ours), "--crop-size", str(CROP), "--step",
                     str(STEP), "--workers", str(threads), "-q"),
                _reference("extract", str(half), str(sub_ref), str(threads))) for half in halves]
    rows = [
        _pair("subset", [(_cli("subset", *source_args, "-o", str(subset_out), "--balance", "--workers",
                                str(threads), "-q"), _reference("decode", str(folder / "picked.txt"), str(threads)))],
              len(picked), folder, f"cv2.imread of the same {len(picked)} images, Pool({threads}) (no reference tool)",
              log, clean),
        _pair("meta-info --check", [(_cli("meta-info", "--input", str(pool), "--meta-info", str(meta_file), "--check",
                                          "-q"), _reference("meta-info", str(pool), str(folder), str(meta_file)))],
              images, folder, "Real-ESRGAN generate_meta_info.py --check", log, clean),
        _pair(f"extract-subimages --workers {threads}", extract * 2, 2 * len(names), folder,  # A B, B A, A B, B A
              f"basicsr extract_subimages.py, n_thread {threads}", log, clean),
    ]
    if resume_images:
        rows.append(resume_check(pool, min(resume_images, images), sub_ours, threads, folder, log))
        clean()
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--reference"]:
        return reference_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.data_jobs_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1100, help="photos to make (1100: the subset takes 1000)")
    parser.add_argument("--extract-images", type=int, default=1000, help="of them, to crop (1000)")
    parser.add_argument("--png", type=int, default=0, help="how many of them are PNG (0; --quick: 5)")
    parser.add_argument("--quick", action="store_true", help="50 photos, 20 in the resume check")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="workers on both sides (default: the cores this process may use)")
    parser.add_argument("--keep", type=Path, help="work (and keep the photos) in this folder")
    parser.add_argument("--resume-images", type=int, default=200, help="photos of the kill/resume check (200)")
    parser.add_argument("--no-resume", dest="resume_images", action="store_const", const=0,
                        help="leave out the kill/resume check")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    images, png = (50, 5) if args.quick else (args.images, args.png)
    resume_images = min(args.resume_images, 20) if args.quick else args.resume_images
    with tempfile.TemporaryDirectory(prefix="srcockpit-datajobs-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = data_jobs(folder, images=images, png=png, threads=args.threads,
                         extract_images=50 if args.quick else args.extract_images, resume_images=resume_images,
                         log=print)
    from bench.__main__ import markdown

    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
