"""A checked, reproducible training subset of several image folders (plan section 2.3, DF2K + OST).

    build_subset([SourceSpec(DIV2K, None), SourceSpec(Flickr2K, 1500), SourceSpec(OST, 1000)], out, seed=0)

- Each source gets its own random order from (seed, source folder name): the same seed picks the same
  files, whatever the other sources are. "all" (count None) keeps every usable image.
- Every picked image is decoded in full (truncation shows only then) and must be at least ``gt_size``
  on its short side; a bad image is replaced by the next one in the source's order and reported in
  ``left_out.tsv`` with the reason.
- A source without images at its top level but with images in sub-folders (OST: animal/, building/,
  ...) is read recursively, sub-folders being categories; ``balance`` draws them round-robin so each
  category gets the same share (a small category gives its unused share to the others).
- Output: ``out/<source name>/<relative path>`` (symlink, hardlink or copy; spaces in names become '_'
  because basicsr's meta_info reader splits on spaces), ``out/meta_info/meta_info_<out name>.txt`` in
  Real-ESRGAN's format (root ``out``), ``left_out.tsv`` and ``subset.json`` (what was asked, what was
  made). The subset is built in a hidden sibling folder and renamed into place when complete; an
  existing subset is only replaced with ``force``. A build killed before that is resumed by the next one
  of the same plan: the checks it had done are read from its journal (engine.data.journal), not redone.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.images import ImageCheck, check_image, iter_images, require_folder
from engine.data.journal import NAME as JOURNAL
from engine.data.journal import RESUMED, Journal, staging_folder, swap_in
from engine.data.meta_info import write_meta_info, write_text_atomic
from engine.protocol import ProgressFn, UserError

LINK_MODES = ("symlink", "hardlink", "copy")
MANIFEST = "subset.json"
LEFT_OUT = "left_out.tsv"
DEFAULT_GT_SIZE = 256  # the plan's gt_size


@dataclass(frozen=True)
class SourceSpec:
    path: Path
    count: int | None = None  # None: all

    def __str__(self) -> str:
        return f"{self.path}={'all' if self.count is None else self.count}"


def parse_source(text: str) -> SourceSpec:
    """'datasets/DF2K/OST=1000', 'datasets/DF2K/DIV2K_train_HR=all' or a bare folder (= all)."""
    folder, sep, count = text.rpartition("=")
    if not sep:
        return SourceSpec(Path(text), None)
    count = count.strip().lower()
    if count == "all":
        return SourceSpec(Path(folder), None)
    if not count.isdigit() or int(count) == 0:
        raise UserError(f"bad --source {text!r}: the count after '=' must be 'all' or a positive number",
                        "write FOLDER=all or FOLDER=1500")
    return SourceSpec(Path(folder), int(count))


@dataclass
class SourcePlan:
    spec: SourceSpec
    label: str  # the folder name inside the subset
    candidates: list[Path]  # every image, sorted by relative path
    recursive: bool
    order: list[Path]  # candidates in the order they are taken (seeded)
    categories: dict[str, int]  # sub-folder -> number of images ('' for the top level)

    @property
    def wanted(self) -> int:
        return len(self.candidates) if self.spec.count is None else self.spec.count

    def rel(self, path: Path) -> str:
        return path.relative_to(self.spec.path).as_posix()

    def category(self, path: Path) -> str:
        parts = path.relative_to(self.spec.path).parts
        return parts[0] if len(parts) > 1 else ""


@dataclass
class SubsetPlan:
    out: Path
    sources: list[SourcePlan]
    seed: int
    mode: str
    balance: bool
    gt_size: int

    def planned_bytes(self) -> int:
        """Size of the first-choice files (what copy mode needs, give or take replaced bad images)."""
        return sum(p.stat().st_size for s in self.sources for p in s.order[: s.wanted])


@dataclass
class SourceResult:
    label: str
    wanted: int
    chosen: list[Path]
    left_out: list[ImageCheck]
    renamed: int = 0

    @property
    def short(self) -> int:
        return max(0, self.wanted - len(self.chosen))


@dataclass
class SubsetResult:
    out: Path
    meta_info: Path
    left_out_file: Path
    sources: list[SourceResult] = field(default_factory=list)
    bytes_copied: int = 0
    seconds: float = 0.0
    resumed: int = 0  # image checks a killed earlier build had done, not done again

    @property
    def count(self) -> int:
        return sum(len(s.chosen) for s in self.sources)

    @property
    def left_out(self) -> list[ImageCheck]:
        return [c for s in self.sources for c in s.left_out]

    def summary(self) -> dict[str, object]:
        return {"out": str(self.out), "images": self.count, "left_out": len(self.left_out),
                "meta_info": str(self.meta_info), "seconds": round(self.seconds, 2), "resumed": self.resumed,
                "sources": {s.label: {"wanted": s.wanted, "chosen": len(s.chosen),
                                      "left_out": len(s.left_out), "short": s.short} for s in self.sources}}


def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _take_order(candidates: list[Path], categories: dict[str, list[Path]], rng: random.Random, *,
                 sample: bool, balance: bool) -> list[Path]:
    if not sample:
        return list(candidates)
    if not balance or len(categories) < 2:
        order = list(candidates)
        rng.shuffle(order)
        return order
    names = sorted(categories)
    rng.shuffle(names)  # which categories get the remainder is part of the seeded draw
    queues = {name: rng.sample(categories[name], len(categories[name])) for name in sorted(categories)}
    order = []
    for rank in range(max(map(len, queues.values()))):
        order.extend(queues[name][rank] for name in names if rank < len(queues[name]))
    return order


def plan_subset(sources: Sequence[SourceSpec], out: Path, *, seed: int = 0, mode: str = "symlink",
                balance: bool = False, gt_size: int = DEFAULT_GT_SIZE,
                recursive: bool | None = None) -> SubsetPlan:
    """Everything decided without reading images: which files, in which order (for --dry-run too)."""
    if mode not in LINK_MODES:
        raise UserError(f"unknown link mode {mode!r}", f"use one of {', '.join(LINK_MODES)}")
    if not sources:
        raise UserError("no --source given", "add --source FOLDER=all or --source FOLDER=N (one per folder)")
    plans: list[SourcePlan] = []
    labels: dict[str, Path] = {}
    for spec in sources:
        folder = require_folder(spec.path, "source folder")
        label = folder.resolve().name
        if label in labels:
            raise UserError(f"sources {labels[label]} and {spec.path} have the same folder name {label!r}",
                            "each source becomes out/<folder name>: rename or link one of them")
        labels[label] = spec.path
        if _inside(out, folder) or _inside(folder, out):
            raise UserError(f"the output {out} and the source {spec.path} overlap",
                            "write the subset to a folder beside the sources, e.g. datasets/DF2K_subset")
        deep = recursive
        top = list(iter_images(folder))
        if deep is None:
            deep = not top
        candidates = list(iter_images(folder, recursive=True)) if deep else top
        if not candidates:
            raise UserError(f"no images in source folder {spec.path}", "check the path; images must end in "
                            ".png, .jpg, .jpeg, .bmp, .tif or .webp")
        if spec.count is not None and spec.count > len(candidates):
            raise UserError(f"{spec.path} holds {len(candidates)} images, fewer than {spec.count}",
                            f"ask for at most {len(candidates)}, or write {spec.path}=all")
        plan = SourcePlan(spec, label, candidates, deep, [], {})
        by_category: dict[str, list[Path]] = {}
        for path in candidates:
            by_category.setdefault(plan.category(path), []).append(path)
        plan.categories = {name: len(paths) for name, paths in sorted(by_category.items())}
        rng = random.Random(f"srcockpit-subset:{seed}:{label}")
        plan.order = _take_order(candidates, by_category, rng, sample=spec.count is not None, balance=balance)
        plans.append(plan)
    return SubsetPlan(out, plans, seed, mode, balance, gt_size)


def _checks(batch: list[Path], gt_size: int, pool: ThreadPoolExecutor,
            journal: Journal) -> Iterator[tuple[ImageCheck, bool]]:
    """(check_image, held) of each path in order; a check the journal holds (a killed earlier build: held) is
    not redone."""
    held = {path: journal.done(path) for path in batch}
    fresh = pool.map(lambda p: check_image(p, min_size=gt_size), [p for p in batch if held[p] is None])
    for path in batch:
        entry = held[path]
        if entry is not None:
            yield ImageCheck(path, int(entry["width"]), int(entry["height"]), int(entry["channels"]),
                             str(entry["problem"])), True
            continue
        found = next(fresh)
        journal.record(path, width=found.width, height=found.height, channels=found.channels,
                       problem=found.problem)
        yield found, False


def _select(plan: SourcePlan, gt_size: int, pool: ThreadPoolExecutor, journal: Journal,
            progress: ProgressFn | None, done: list[int], total: int) -> SourceResult:
    """Walk the seeded order, checking images in batches, until `wanted` good images are found."""
    chosen: list[Path] = []
    left_out: list[ImageCheck] = []
    position = 0
    while len(chosen) < plan.wanted and position < len(plan.order):
        batch = plan.order[position: position + max(1, plan.wanted - len(chosen))]
        position += len(batch)
        for found, held in _checks(batch, gt_size, pool, journal):
            (chosen if found.ok else left_out).append(found.path if found.ok else found)
            done[0] += 1
            if progress:
                progress(min(done[0], total), total, f"{RESUMED if held else ''}checking {plan.label}")
    return SourceResult(plan.label, plan.wanted, sorted(chosen, key=plan.rel), left_out)


def _placed(src: Path, dst: Path, mode: str) -> bool:
    """dst is already src's link or complete copy (a killed earlier build made it)."""
    if mode == "symlink":
        return dst.is_symlink() and os.readlink(dst) == str(src.resolve())
    if not dst.is_file() or dst.is_symlink():
        return False
    return os.path.samefile(src, dst) if mode == "hardlink" else dst.stat().st_size == src.stat().st_size


def _place(src: Path, dst: Path, mode: str) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dst):
        if _placed(src, dst, mode):
            return dst.stat().st_size if mode == "copy" else 0
        dst.unlink()
    if mode == "symlink":
        os.symlink(src.resolve(), dst)
        return 0
    if mode == "hardlink":
        try:
            os.link(src, dst)
        except OSError as error:
            if error.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise UserError(f"cannot hard-link {src} into {dst.parent}: {error.strerror}",
                                "hard links need one file system: use --mode symlink or copy") from error
            raise
        return 0
    partial = dst.with_name(f".{dst.name}.partial")  # a copy cut short by a kill never has dst's name
    shutil.copy2(src, partial)
    partial.replace(dst)
    return dst.stat().st_size


def _is_subset(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def check_target(out: Path, force: bool) -> None:
    """A UserError unless out is absent, empty, or a previous subset and force is given."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file", "give a folder for the subset with -o")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise UserError(f"{out} already exists", "pick another -o folder, or add --force to replace it")
    if not _is_subset(out):
        raise UserError(f"{out} exists and is not a subset made by srcockpit (no {MANIFEST}); --force does "
                        "not delete it", "pick another -o folder, or remove it yourself")


def build_subset(sources: Sequence[SourceSpec], out: Path, *, seed: int = 0, mode: str = "symlink",
                 balance: bool = False, gt_size: int = DEFAULT_GT_SIZE, recursive: bool | None = None,
                 force: bool = False, workers: int = 2, progress: ProgressFn | None = None,
                 plan: SubsetPlan | None = None) -> SubsetResult:
    """Check, pick and link the images; write meta_info, left_out.tsv and subset.json (module docstring)."""
    started = time.monotonic()
    check_target(out, force)
    plan = plan or plan_subset(sources, out, seed=seed, mode=mode, balance=balance, gt_size=gt_size,
                               recursive=recursive)
    if plan.mode == "copy":
        _check_space(plan, out)
    staging = staging_folder(out)
    journal = _journal(plan, staging)
    total = sum(s.wanted for s in plan.sources)
    done = [0]
    result = SubsetResult(out, out / "meta_info" / f"meta_info_{out.name}.txt", out / LEFT_OUT)
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:  # Pillow decodes without holding the GIL
            for source in plan.sources:
                result.sources.append(_select(source, plan.gt_size, pool, journal, progress, done, total))
    finally:
        journal.close()
    result.resumed = journal.reused
    lines = _place_all(plan, result, staging, progress)
    if journal.resumed:
        _prune(staging, plan, lines)
    journal.remove()
    if not lines:
        shutil.rmtree(staging)
        first = result.left_out[0]
        raise UserError(f"no usable image in the sources: {first.path}: {first.problem}",
                        f"images must decode completely and be at least {plan.gt_size} px on the short side "
                        "(--gt-size)")
    _write_records(plan, result, staging, lines)
    swap_in(staging, out)
    result.seconds = time.monotonic() - started
    return result


def _check_space(plan: SubsetPlan, out: Path) -> None:
    need = plan.planned_bytes()
    free = shutil.disk_usage(out.parent if out.parent.exists() else Path.cwd()).free
    if need > free * 0.98:
        raise UserError(f"copying needs about {need / 1e9:.1f} GB but {free / 1e9:.1f} GB are free there",
                        "use --mode symlink or hardlink, or free some space")


def _place_all(plan: SubsetPlan, result: SubsetResult, staging: Path, progress: ProgressFn | None) -> list[str]:
    """Link or copy every chosen image into staging (spaces in names become '_'); the meta_info lines."""
    lines: list[str] = []
    count = result.count
    for source, picked in zip(plan.sources, result.sources, strict=True):
        taken: set[str] = set()
        for path in picked.chosen:
            rel = source.rel(path)
            safe = rel.replace(" ", "_")
            if safe != rel:
                picked.renamed += 1
            if safe in taken:  # 'a b.png' and 'a_b.png' in the same folder
                picked.left_out.append(ImageCheck(path, problem=f"name clash: {safe} after replacing spaces"))
                continue
            taken.add(safe)
            result.bytes_copied += _place(path, staging / source.label / safe, plan.mode)
            lines.append(f"{source.label}/{safe}")
            if progress:
                progress(len(lines), count, f"{plan.mode} {source.label}")
        dropped = {c.path for c in picked.left_out}
        picked.chosen = [p for p in picked.chosen if p not in dropped]
    return lines


def _write_records(plan: SubsetPlan, result: SubsetResult, staging: Path, lines: list[str]) -> None:
    """meta_info, left_out.tsv and subset.json in staging."""
    write_meta_info(staging / "meta_info" / result.meta_info.name, lines)
    report = [f"# {len(result.left_out)} images left out (source path<TAB>reason); seed {plan.seed}, "
              f"gt_size {plan.gt_size}"]
    report += [f"{c.path}\t{c.problem}" for c in result.left_out]
    write_text_atomic(staging / LEFT_OUT, "\n".join(report) + "\n")
    manifest = {
        "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seed": plan.seed, "mode": plan.mode, "balance": plan.balance, "gt_size": plan.gt_size,
        "sources": [{"path": str(s.spec.path), "asked": "all" if s.spec.count is None else s.spec.count,
                     "label": s.label, "recursive": s.recursive, "available": len(s.candidates),
                     "categories": s.categories, "chosen": len(r.chosen), "left_out": len(r.left_out),
                     "renamed": r.renamed}
                    for s, r in zip(plan.sources, result.sources, strict=True)],
        "images": len(lines),
        "meta_info": f"meta_info/{result.meta_info.name}",
        "options": {"dataroot_gt": str(result.out), "meta_info": str(result.meta_info)},
    }
    write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _journal(plan: SubsetPlan, staging: Path) -> Journal:
    """The checks of a killed earlier build of the same plan (its staging folder is kept), or a fresh start."""
    settings = {"sources": [[str(s.spec.path.resolve()), s.spec.count] for s in plan.sources], "seed": plan.seed,
                "mode": plan.mode, "balance": plan.balance, "gt_size": plan.gt_size,
                "recursive": [s.recursive for s in plan.sources]}
    if staging.is_dir():
        journal = Journal(staging / JOURNAL, settings)
        if journal.resumed:
            return journal
        journal.close()
        shutil.rmtree(staging)  # a killed build of another plan: its links are not these
    staging.mkdir(parents=True)
    return Journal(staging / JOURNAL, settings)


def _prune(staging: Path, plan: SubsetPlan, lines: list[str]) -> None:
    """Remove what a killed earlier build placed but this one did not pick (a source image changed since)."""
    keep = set(lines)
    for source in plan.sources:
        folder = staging / source.label
        for root, _, files in os.walk(folder):
            for name in files:
                path = Path(root, name)
                if path.relative_to(staging).as_posix() not in keep:
                    path.unlink()
