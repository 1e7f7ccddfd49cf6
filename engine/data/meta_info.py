"""meta_info files as Real-ESRGAN and basicsr write them, and a check that an options file's data resolves.

Two formats, both read by taking the first space-separated token of each line:

- Real-ESRGAN's ``scripts/generate_meta_info.py`` (the plan's section 2.3, read by RealESRGANDataset):
  for each (input folder, root) pair, ``sorted(glob(folder/*))``, one ``relpath(image, root)`` per line.
  Our output is byte-identical for folders of images. Differences, on purpose: sub-folders and
  non-image files are skipped (the script writes them too, and training then fails on them), and
  ``check`` decodes the whole file with Pillow (the script's cv2.imread passes truncated files).
- basicsr's ``scripts/data_preparation/generate_meta_info.py`` (``with_shape``): sorted names relative to
  the folder, each followed by `` (h,w,c)`` as PairedImageDataset's meta_info_file expects.

basicsr's train script divides by the number of iterations per epoch: an empty dataset ends in a bare
ZeroDivisionError, a missing file in a FileNotFoundError hours later in a worker. ``check_datasets``
finds both before launch and names the first missing file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from engine.data.images import check_image, is_image_name, iter_images, require_folder
from engine.data.journal import NAME as JOURNAL
from engine.data.journal import RESUMED, Journal
from engine.options_yaml import Report, key_lines, read_yaml
from engine.protocol import ProgressFn, UserError


def _listing(folder: Path, recursive: bool) -> list[Path]:
    if recursive:
        return list(iter_images(folder, recursive=True))
    # Real-ESRGAN's script: sorted(glob.glob(os.path.join(folder, '*'))) sorts the joined strings.
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image_name(e.name))
    return [Path(os.path.join(folder, name)) for name in names]


def _shape(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as image:  # header only, as basicsr's script does
        width, height = image.size
        return height, width, len(image.getbands())


@dataclass(frozen=True)
class MetaInfo:
    path: Path
    lines: tuple[str, ...]
    skipped: tuple[tuple[Path, str], ...] = ()
    resumed: int = 0  # images a killed earlier run had read, not read again

    @property
    def count(self) -> int:
        return len(self.lines)


def _line(path: Path, root: Path, check: bool, with_shape: bool) -> tuple[str, str]:
    """(meta_info line, '') for one image, or ('', why it is left out)."""
    if check:
        found = check_image(path)
        if not found.ok:
            return "", found.problem
    name = os.path.relpath(path, root)
    if with_shape:
        try:
            height, width, channels = _shape(path)
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            return "", f"unreadable: {error}"
        name = f"{name} ({height},{width},{channels})"
    return name, ""


def meta_info_lines(inputs: Sequence[Path], roots: Sequence[Path] | None = None, *, check: bool = False,
                    with_shape: bool = False, recursive: bool = False, progress: ProgressFn | None = None,
                    journal: Journal | None = None) -> tuple[list[str], list[tuple[Path, str]]]:
    """The lines (without newline) and the (file, reason) pairs left out by ``check``.

    roots default to each input's parent folder, so lines read ``<input folder name>/<file>``. An image the
    journal holds (a killed earlier run read it) is not read again.
    """
    roots = list(roots) if roots else [Path(folder).parent for folder in inputs]
    if len(roots) != len(inputs):
        raise UserError(f"{len(inputs)} input folders but {len(roots)} roots",
                        "give one --root per --input (or none: each input's parent folder is its root)")
    listings = [_listing(require_folder(Path(folder), "input folder"), recursive) for folder in inputs]
    total = sum(map(len, listings))
    if total == 0:
        hint = "add --recursive: the images are in sub-folders" if not recursive and any(
            any(iter_images(Path(f), recursive=True)) for f in inputs) else "check the --input folders"
        raise UserError(f"no images in {', '.join(map(str, inputs))}", hint)
    lines: list[str] = []
    skipped: list[tuple[Path, str]] = []
    done = 0
    for listing, root in zip(listings, roots, strict=True):
        for path in listing:
            done += 1
            entry = journal.done(path) if journal else None
            if entry is not None:
                line, problem = str(entry["line"]), str(entry["problem"])
            else:
                line, problem = _line(path, root, check, with_shape)
                if journal:
                    journal.record(path, line=line, problem=problem)
            if problem:
                skipped.append((path, problem))
                continue
            lines.append(line)
            if progress:
                progress(done, total, path.name if entry is None else RESUMED + path.name)
    return lines, skipped


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="\n") as handle:
        handle.write(text)
    partial.replace(path)


def write_meta_info(meta_info: Path, lines: Sequence[str]) -> None:
    write_text_atomic(meta_info, "".join(f"{line}\n" for line in lines))


def generate_meta_info(inputs: Sequence[Path], meta_info: Path, roots: Sequence[Path] | None = None, *,
                       check: bool = False, with_shape: bool = False, recursive: bool = False,
                       progress: ProgressFn | None = None) -> MetaInfo:
    """Write the meta_info file for the images of ``inputs`` (see the module docstring for the format).

    When images are read (check, with_shape), each one's outcome goes to a journal beside the file until it is
    written, so that a run killed meanwhile and started again reads only the images it had not reached.
    """
    journal = None
    if check or with_shape:
        settings = {"inputs": [Path(f).resolve() for f in inputs], "roots": [Path(r).resolve() for r in roots or []],
                    "check": check, "with_shape": with_shape, "recursive": recursive}
        journal = Journal(meta_info.parent / f".{meta_info.name}{JOURNAL}", settings)
    try:
        lines, skipped = meta_info_lines(inputs, roots, check=check, with_shape=with_shape, recursive=recursive,
                                         progress=progress, journal=journal)
    finally:
        if journal:
            journal.close()
    if not lines:
        if journal:
            journal.remove()
        raise UserError(f"every image in {', '.join(map(str, inputs))} failed the check: {skipped[0][1]}",
                        f"first bad file: {skipped[0][0]}")
    write_meta_info(meta_info, lines)
    if journal:
        journal.remove()
    return MetaInfo(meta_info, tuple(lines), tuple(skipped), journal.reused if journal else 0)


# ---- checking an options file's datasets -------------------------------------------------------------

# Datasets that read their file list from 'meta_info' (the others from 'meta_info_file').
_META_INFO_KEY = {"RealESRGANDataset": "meta_info", "RealESRGANPairedDataset": "meta_info"}
# RealESRGANDataset pads every image to 400 px before cropping: small images do not crash it.
_PADDING_DATASETS = {"RealESRGANDataset"}


@dataclass
class DatasetCheck:
    """What one datasets.<phase> entry of an options file would load."""

    phase: str
    name: str
    kind: str
    count: int = 0
    problems: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str, hint: str = "") -> None:
        self.problems.append(problem)
        self.hints.append(hint)


def _resolve(value: Any, base: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


# How many images a check decodes in full (a header hides a torn body); a larger training set gets a header
# check only, so that a launch on a DF2K-size set stays quick. Validation sets are always decoded.
FULL_DECODE_LIMIT = 200
_BAD_IMAGE_HINT = "replace or remove it (`srcockpit data subset` builds a checked copy of a folder)"


def _image_problem(path: Path, min_size: int, full: bool) -> tuple[str, str] | None:
    """(problem, hint) for one image file, or None when it reads (in full, or its header) and is large enough."""
    if full:
        found = check_image(path, min_size=min_size)
        if found.ok:
            return None
        if found.width:
            return (f"{path} is {found.width}x{found.height}, smaller than gt_size {min_size}",
                    "lower gt_size or leave such images out (`srcockpit data subset --gt-size`)")
        return f"{path} is not a readable image ({found.problem})", _BAD_IMAGE_HINT
    try:
        height, width, _ = _shape(path)
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        return f"{path} is not a readable image ({error})", _BAD_IMAGE_HINT
    if min(height, width) < min_size:
        return (f"{path} is {width}x{height}, smaller than gt_size {min_size}",
                "lower gt_size or leave such images out (`srcockpit data subset --gt-size`)")
    return None


def _check_files(report: DatasetCheck, paths: list[Path], source: str, *, min_size: int = 0,
                 full: bool = False, lq: frozenset[Path] = frozenset()) -> None:
    """Every path must be a readable image file, a GT one at least min_size (an LQ one in `lq` is GT / scale,
    which _check_scale holds it to); report the count and the first missing or broken one."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        report.add(f"{len(missing)} of {len(paths)} images listed by {source} are missing; "
                   f"first: {missing[0]}",
                   "the paths in a meta_info file are relative to dataroot_gt: fix dataroot_gt or regenerate "
                   "the file with `srcockpit data meta-info`")
        return
    full = full or len(paths) <= FULL_DECODE_LIMIT
    for path in paths:
        problem = _image_problem(path, 0 if path in lq else min_size, full)
        if problem:
            report.add(*problem)
            return


def _check_scale(report: DatasetCheck, pairs: list[tuple[Path, Path]], scale: Any) -> None:
    """Each GT image must be exactly `scale` times its LQ partner (basicsr crops and scores pairs that way)."""
    if not report.ok or not isinstance(scale, int) or scale < 1:
        return
    for gt, lq in pairs:
        (gt_h, gt_w, _), (lq_h, lq_w, _) = _shape(gt), _shape(lq)
        if (gt_h, gt_w) != (lq_h * scale, lq_w * scale):
            report.add(f"{lq} ({lq_w}x{lq_h}) is not x{scale} smaller than its GT {gt} ({gt_w}x{gt_h})",
                       f"make the LQ images from the GT ones at x{scale} (`srcockpit data valset HR -o SET "
                       f"--scale {scale}`), or set the options' scale to what they are")
            return


def _check_one(phase: str, dataset: dict[str, Any], base: Path, scale: Any = None) -> DatasetCheck:
    kind = str(dataset.get("type", "?"))
    report = DatasetCheck(phase, str(dataset.get("name", phase)), kind)
    if str((dataset.get("io_backend") or {}).get("type", "disk")) != "disk":
        return report  # lmdb: basicsr reads its own meta_info.txt inside the database
    folders = _dataroots(report, phase, dataset, base)
    if not report.ok:
        return report
    key = _META_INFO_KEY.get(kind, "meta_info_file")
    min_size = 0
    if phase.startswith("train") and kind not in _PADDING_DATASETS and dataset.get("gt_size"):
        min_size = int(dataset["gt_size"])
    if dataset.get(key) is not None:
        _check_meta_info(report, phase, dataset, key, base, folders, min_size, scale)
    elif kind in _PADDING_DATASETS:
        report.add(f"{kind} needs a meta_info file", "generate one with `srcockpit data meta-info`")
    else:
        _check_listing(report, phase, dataset, folders, min_size, scale)
    return report


def _dataroots(report: DatasetCheck, phase: str, dataset: dict[str, Any], base: Path) -> dict[str, Path]:
    """dataroot_gt / dataroot_lq resolved; a problem for each that is not a folder, or when neither is set."""
    folders: dict[str, Path] = {}
    for key in ("dataroot_gt", "dataroot_lq"):
        if dataset.get(key) is None:
            continue
        folder = _resolve(dataset[key], base)
        if not folder.is_dir():
            report.add(f"{key} {folder} is not a folder",
                       f"check datasets.{phase}.{key} (relative paths start from {base})")
        folders[key] = folder
    if not folders:
        report.add("neither dataroot_gt nor dataroot_lq is set", f"set datasets.{phase}.dataroot_gt")
    return folders


def _check_meta_info(report: DatasetCheck, phase: str, dataset: dict[str, Any], key: str, base: Path,
                     folders: dict[str, Path], min_size: int, scale: Any) -> None:
    """A dataset with a meta_info file: its lines as basicsr reads them, then the files they name."""
    meta_value = dataset[key]
    meta_path = _resolve(meta_value, base)
    if not meta_path.is_file():
        report.add(f"{key} {meta_path} does not exist",
                   "generate it with `srcockpit data meta-info --input <image folder> "
                   f"--root {dataset.get('dataroot_gt')} --meta-info {meta_value}`")
        return
    with open(meta_path) as handle:
        raw = handle.read().splitlines()
    blank = [i + 1 for i, line in enumerate(raw) if not line.strip()]
    if blank:
        report.add(f"{meta_path}:{blank[0]} is an empty line (basicsr would read the folder itself as an "
                   "image)", "delete the empty lines")
        return
    listed = _meta_paths(report, dataset, meta_path, raw, folders)
    if listed is None:
        return
    if report.count == 0:
        report.add(f"{meta_path} lists no images: basicsr would stop with ZeroDivisionError",
                   "regenerate it with `srcockpit data meta-info`")
        return
    paths, paired = listed
    _check_files(report, paths, str(meta_path), min_size=min_size, full=not phase.startswith("train"),
                 lq=frozenset(lq for _, lq in paired))
    _check_scale(report, paired, scale)


def _meta_paths(report: DatasetCheck, dataset: dict[str, Any], meta_path: Path, raw: list[str],
                folders: dict[str, Path]) -> tuple[list[Path], list[tuple[Path, Path]]] | None:
    """(every file the meta_info lines name, the GT/LQ pairs); sets report.count; None after a problem."""
    if str(dataset.get("type", "?")) == "RealESRGANPairedDataset":
        pairs = [line.strip().split(", ") for line in raw]
        if any(len(pair) != 2 for pair in pairs):
            report.add(f"{meta_path}: each line must read '<gt path>, <lq path>'")
            return None
        paired = [(folders["dataroot_gt"] / gt, folders["dataroot_lq"] / lq) for gt, lq in pairs]
        report.count = len(pairs)
        return [gt for gt, _ in paired] + [lq for _, lq in paired], paired
    names = [line.strip().split(" ")[0] for line in raw]
    gt_root = folders.get("dataroot_gt") or folders["dataroot_lq"]
    paths = [gt_root / name for name in names]
    paired = []
    if "dataroot_lq" in folders and "dataroot_gt" in folders:
        template = str(dataset.get("filename_tmpl", "{}"))
        lq_root = folders["dataroot_lq"]
        paired = [(gt_root / n, lq_root / (template.format(Path(n).stem) + Path(n).suffix)) for n in names]
        paths += [lq for _, lq in paired]
    report.count = len(names)
    spaced = [line for line in raw if " " in line.strip() and not line.strip().endswith(")")]
    if spaced:
        report.add(f"{meta_path}: '{spaced[0].strip()}' has a space: basicsr reads only up to the "
                   "first space", "rename such files (srcockpit data subset replaces spaces by '_')")
        return None
    return paths, paired


def _check_listing(report: DatasetCheck, phase: str, dataset: dict[str, Any], folders: dict[str, Path],
                   min_size: int, scale: Any) -> None:
    """No meta_info: basicsr lists the folder (every file, not only images) and pairs GT with LQ by name."""
    gt = folders.get("dataroot_gt")
    lq = folders.get("dataroot_lq")
    listed = {k: sorted(e.name for e in os.scandir(f) if e.is_file() and not e.name.startswith("."))
              for k, f in folders.items()}
    first = next(iter(listed))
    report.count = len(listed[first])
    if report.count == 0:
        report.add(f"{folders[first]} holds no images: basicsr would stop with ZeroDivisionError",
                   "put the images there or fix the path")
        return
    for key_, names in listed.items():
        odd = [n for n in names if not is_image_name(n)]
        if odd:
            report.add(f"{folders[key_] / odd[0]} is not an image, and basicsr would try to read it",
                       "move non-image files out of the image folders")
            return
    template = str(dataset.get("filename_tmpl", "{}"))
    if gt is not None and lq is not None and not _pairs_by_name(report, gt, lq, listed, template):
        return
    full = not phase.startswith("train")
    _check_files(report, [folders[first] / n for n in listed[first]], str(folders[first]), min_size=min_size,
                 full=full)
    if gt is not None and lq is not None:
        paired = [(gt / n, lq / (template.format(Path(n).stem) + Path(n).suffix)) for n in listed["dataroot_gt"]]
        _check_files(report, [lq_path for _, lq_path in paired], str(lq), full=full)
        _check_scale(report, paired, scale)


def _pairs_by_name(report: DatasetCheck, gt: Path, lq: Path, listed: dict[str, list[str]], template: str) -> bool:
    """Whether every GT name has its LQ partner (filename_tmpl) and both folders hold as many; else a problem."""
    lq_names = set(listed["dataroot_lq"])
    for name in listed["dataroot_gt"]:
        wanted = template.format(Path(name).stem) + Path(name).suffix
        if wanted not in lq_names:
            report.add(f"{gt / name} has no LQ partner {lq / wanted}",
                       "GT and LQ folders must hold the same names (filename_tmpl '{}' by default)")
            return False
    if len(lq_names) != len(listed["dataroot_gt"]):
        report.add(f"{gt} holds {len(listed['dataroot_gt'])} images but {lq} holds {len(lq_names)}",
                   "GT and LQ folders must hold the same images")
        return False
    return True


def check_datasets(opt: dict[str, Any], *, base: Path | None = None) -> list[DatasetCheck]:
    """One DatasetCheck per datasets.<phase>; relative paths resolve from base (default: the cwd)."""
    base = base or Path.cwd()
    datasets = opt.get("datasets") or {}
    if not isinstance(datasets, dict) or not datasets:
        report = DatasetCheck("-", "-", "-")
        report.add("the options have no datasets section", "copy one from options/*.yml")
        return [report]
    return [_check_one(phase, dict(dataset or {}), base, opt.get("scale")) for phase, dataset in datasets.items()]


def check_options_file(path: Path, *, base: Path | None = None) -> list[DatasetCheck]:
    """`srcockpit data check`: the datasets section's schema first (all its problems at once), then each dataset."""
    from engine.options_check import check_dataset_types  # pydantic: only for this command

    opt = read_yaml(path)
    report = Report(path, key_lines(path))
    check_dataset_types(opt, report)
    report.raise_problems()
    return check_datasets(opt, base=base)


def require_datasets(opt: dict[str, Any], *, base: Path | None = None,
                     on_report: Callable[[DatasetCheck], None] | None = None) -> list[DatasetCheck]:
    """check_datasets, raising a UserError for the first problem (for launch code)."""
    reports = check_datasets(opt, base=base)
    for report in reports:
        if on_report:
            on_report(report)
    for report in reports:
        if not report.ok:
            raise UserError(f"datasets.{report.phase} ({report.name}): {report.problems[0]}", report.hints[0])
    return reports
