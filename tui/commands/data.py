"""`srcockpit data ...`: subsets, meta_info files, dataset checks, sub-images, validation sets, demo data.

Handlers import engine.data lazily (it loads OpenCV, and valset loads basicsr/torch), so `--help` stays
fast. With --job DIR a command also runs as an engine job: DIR/cockpit/events.jsonl gets its status,
progress and result events, and the cockpit shows it like any other job.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from engine.protocol import ProgressFn

DATA_HELP = """\
Build and check training data the way basicsr and Real-ESRGAN read it.

  srcockpit data subset --source DIR=all --source DIR=1500 -o datasets/DF2K_subset
  srcockpit data meta-info --input DIR... --root ROOT... --meta-info FILE
  srcockpit data check OPTIONS.yml      every dataset path and meta_info line resolves to an image
  srcockpit data extract-subimages DIR -o DIR_sub
  srcockpit data valset HR_DIR -o datasets/MySet --scale 2
  srcockpit data demo [datasets/demo]

--job DIR runs a command as an engine job too (DIR/cockpit/events.jsonl), so the cockpit shows it.
"""
_PHASES = frozenset({"checking", "symlink", "hardlink", "copy"})


@contextlib.contextmanager
def _progress_bar(quiet: bool = False) -> Iterator[ProgressFn]:
    if quiet:
        yield lambda done, total, message: None
        return
    from engine.data.journal import RESUMED

    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    # no refresh thread: extract-subimages forks its workers only from a single-threaded process
    with Progress(*columns, console=Console(stderr=True), transient=False, auto_refresh=False) as bar:
        tasks: dict[str, Any] = {}
        resuming: set[str] = set()
        drawn = [0.0]

        def update(done: int, total: int, message: str) -> None:
            resumed = message.startswith(RESUMED)
            text = message.removeprefix(RESUMED)
            first = text.split(" ")[0]
            phase = first if first in _PHASES else ""  # one bar per phase, else one bar in all
            if phase not in tasks:
                tasks[phase] = bar.add_task(text, total=total, completed=done)
            if resumed:
                resuming.add(phase)
            elif phase in resuming:  # the ETA's speed counts this run's work, not what a killed run had done
                resuming.discard(phase)
                bar.reset(tasks[phase], completed=done, total=total)
            now = time.monotonic()
            redraw = done >= total or now - drawn[0] >= 0.1
            if redraw:
                drawn[0] = now
            bar.update(tasks[phase], completed=done, total=total, description=message[:28], refresh=redraw)

        yield update


def _run(args: argparse.Namespace, kind: str, params: dict[str, Any], work: Callable[[ProgressFn], Any],
         summary: Callable[[Any], dict[str, Any]]) -> Any:
    """work(progress) under a rich progress bar, and inside an engine Job when --job is given."""
    with _progress_bar(getattr(args, "quiet", False)) as bar:
        if not getattr(args, "job", None):
            return work(bar)
        from engine.jobs import run_in_job

        return run_in_job(Path(args.job), kind, params, lambda progress, _result: work(progress), summary, bar)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", metavar="DIR", help="also run as an engine job: events in DIR/cockpit/")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


# ---- subset ------------------------------------------------------------------------------------------

def _subset(args: argparse.Namespace) -> int:
    from engine.data.subset import build_subset, parse_source, plan_subset

    specs = [parse_source(text) for text in args.source or []]
    out = Path(args.output)
    recursive = True if args.recursive else None
    plan = plan_subset(specs, out, seed=args.seed, mode=args.mode, balance=args.balance, gt_size=args.gt_size,
                       recursive=recursive)
    console = Console(soft_wrap=True)
    table = Table(title=f"subset plan -> {out} (seed {plan.seed}, {plan.mode}, gt_size {plan.gt_size})")
    table.add_column("source", no_wrap=True)
    table.add_column("available", justify="right")
    table.add_column("take", justify="right")
    table.add_column("categories / folder", overflow="fold")
    for source in plan.sources:
        cats = ", ".join(f"{k or '.'}:{v}" for k, v in source.categories.items()) if source.recursive else ""
        table.add_row(source.label, str(len(source.candidates)),
                      "all" if source.spec.count is None else str(source.spec.count),
                      f"{cats[:60]}\n{source.spec.path}" if cats else str(source.spec.path))
    if args.dry_run:
        from engine.data.subset import check_target
        from engine.protocol import UserError

        console.print(table)
        images, need = sum(s.wanted for s in plan.sources), _size(plan.planned_bytes())
        if plan.mode == "copy":
            console.print(f"{images} images; copying them needs about {need}")
        else:
            console.print(f"{images} images; {plan.mode} mode needs next to no disk (copy would need {need})")
        console.print("dry run: no image was read; bad images found in a real run are replaced by the next "
                      "ones of the same source")
        try:
            check_target(out, args.force)
        except UserError as error:  # a dry run reports, it does not stop
            console.print(f"[yellow]note:[/] {error}")
        return 0
    params = {"sources": [str(s) for s in specs], "out": str(out), "seed": args.seed, "mode": args.mode,
              "balance": args.balance, "gt_size": args.gt_size}
    result = _run(args, "subset", params,
                  lambda progress: build_subset(specs, out, force=args.force, workers=args.workers,
                                                progress=progress, plan=plan),
                  lambda r: r.summary())
    for source in result.sources:
        note = f", {len(source.left_out)} left out" if source.left_out else ""
        short = f" [yellow](asked {source.wanted}: not enough usable images)[/]" if source.short else ""
        console.print(f"  {source.label}: {len(source.chosen)} images{note}{short}")
    resumed = f", {result.resumed} checks kept from a killed earlier build" if result.resumed else ""
    console.print(f"subset: {result.count} images in {result.out} ({result.seconds:.1f} s{resumed})")
    console.print(f"meta_info: {result.meta_info}")
    if result.left_out:
        console.print(f"[yellow]left out {len(result.left_out)}[/], reasons in {result.left_out_file}:")
        for check in result.left_out[:5]:
            console.print(f"  {check.path}: {check.problem}")
    console.print(f"options: dataroot_gt: {result.out}   meta_info: {result.meta_info}")
    return 0


# ---- meta-info / check -------------------------------------------------------------------------------

def _meta_info(args: argparse.Namespace) -> int:
    from engine.data.meta_info import generate_meta_info

    inputs = [Path(p) for p in args.input]
    roots = [Path(p) for p in args.root] if args.root else None
    meta = Path(args.meta_info)
    result = _run(args, "meta-info", {"input": args.input, "root": args.root, "meta_info": args.meta_info},
                  lambda progress: generate_meta_info(inputs, meta, roots, check=args.check,
                                                      with_shape=args.with_shape, recursive=args.recursive,
                                                      progress=progress),
                  lambda r: {"meta_info": str(r.path), "images": r.count, "skipped": len(r.skipped),
                             "resumed": r.resumed})
    resumed = f" ({result.resumed} read by a killed earlier run, not read again)" if result.resumed else ""
    print(f"{result.path}: {result.count} images{resumed}")
    for path, problem in result.skipped:
        print(f"  left out {path}: {problem}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from engine.data.meta_info import check_options_file
    from engine.protocol import UserError

    reports = check_options_file(Path(args.options), base=Path(args.base) if args.base else None)
    for report in reports:
        mark = "ok " if report.ok else "BAD"
        print(f"{mark} datasets.{report.phase} ({report.name}, {report.kind}): {report.count} images")
        for problem, hint in zip(report.problems, report.hints, strict=True):
            print(f"    {problem}" + (f"\n    hint: {hint}" if hint else ""))
    bad = next((r for r in reports if not r.ok), None)
    if bad:
        raise UserError(f"{args.options}: datasets.{bad.phase} ({bad.name}): {bad.problems[0]}", bad.hints[0])
    return 0


# ---- extract-subimages / valset / demo ---------------------------------------------------------------

def _extract(args: argparse.Namespace) -> int:
    from engine.data.subimages import extract_subimages

    source, out = Path(args.input), Path(args.output)
    params = {"input": args.input, "out": args.output, "crop_size": args.crop_size, "step": args.step,
              "thresh_size": args.thresh_size, "workers": args.workers}
    result = _run(args, "extract-subimages", params,
                  lambda progress: extract_subimages(source, out, crop_size=args.crop_size, step=args.step,
                                                     thresh_size=args.thresh_size,
                                                     compression_level=args.compression_level,
                                                     workers=args.workers, strip_scale=args.strip_scale,
                                                     force=args.force, progress=progress),
                  lambda r: {"out": str(r.out), "images": r.images, "crops": r.crops,
                             "skipped": len(r.skipped), "resumed": r.resumed})
    resumed = f", {result.resumed} images done by a killed earlier run" if result.resumed else ""
    print(f"{result.crops} sub-images from {result.images} images in {result.out} ({result.workers} workers"
          f"{resumed})")
    for path, problem in result.skipped:
        print(f"  skipped {path}: {problem}")
    return 0


def _valset(args: argparse.Namespace) -> int:
    from engine.data.valset import make_valset

    result = _run(args, "valset", {"hr_dir": args.hr_dir, "out": args.output, "scale": args.scale},
                  lambda progress: make_valset(Path(args.hr_dir), Path(args.output), scale=args.scale,
                                               force=args.force, progress=progress),
                  lambda r: {"gt": str(r.gt_dir), "lq": str(r.lq_dir), "images": len(r.names)})
    print(f"{len(result.names)} pairs: dataroot_gt: {result.gt_dir}   dataroot_lq: {result.lq_dir}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from engine.data.demo import build_demo_data

    result = _run(args, "demo-data", {"root": args.root, "scale": args.scale},
                  lambda progress: build_demo_data(Path(args.root), scale=args.scale, force=args.force,
                                                   progress=progress),
                  lambda r: {"options": r.options()})
    for phase, paths in result.options().items():
        print(f"{phase}: " + "   ".join(f"{k}: {v}" for k, v in paths.items()))
    print(f"train pairs (options/tiny_cpu.yml): dataroot_gt: {result.train_gt}   dataroot_lq: {result.train_lq}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build and check datasets: subset, meta-info, check, sub-images, "
                          "valset, demo", description=DATA_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _add_subset(commands)
    _add_meta_info(commands)
    _add_check(commands)
    _add_extract(commands)
    _add_valset(commands)
    _add_demo(commands)


def _add_subset(commands: argparse._SubParsersAction) -> None:
    """`srcockpit data subset`."""
    p = commands.add_parser("subset", help="a checked, seeded sample of several image folders (+ meta_info)",
                            description="Pick images from several folders into one subset folder, checking "
                            "each (complete decode, short side >= --gt-size); writes meta_info, left_out.tsv "
                            "and subset.json. Example: --source datasets/DF2K/DIV2K_train_HR=all --source "
                            "datasets/DF2K/Flickr2K_HR=1500 --source datasets/DF2K/OST=1000 "
                            "-o datasets/DF2K_subset")
    p.add_argument("--source", action="append", metavar="FOLDER=N|all", help="a source folder and how many "
                   "images to take (repeat per folder)")
    p.add_argument("-o", "--output", required=True, help="the subset folder to create")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed picks the same files (0)")
    p.add_argument("--mode", choices=("symlink", "hardlink", "copy"), default="symlink",
                   help="how files get into the subset (symlink)")
    p.add_argument("--gt-size", type=int, default=256, help="leave out smaller images (short side, 256)")
    p.add_argument("--balance", action="store_true", help="equal shares per category sub-folder (OST-style)")
    p.add_argument("--recursive", action="store_true", help="read sub-folders too (automatic when a source "
                   "has images only in sub-folders)")
    p.add_argument("--workers", type=int, default=2, help="threads decoding images for the check (2)")
    p.add_argument("--force", action="store_true", help="replace an existing subset made by srcockpit")
    p.add_argument("--dry-run", action="store_true", help="print the plan (files per source, disk for copy)")
    _common(p)
    p.set_defaults(handler=_subset)


def _add_meta_info(commands: argparse._SubParsersAction) -> None:
    """`srcockpit data meta-info`."""
    p = commands.add_parser("meta-info", help="a meta_info file as Real-ESRGAN's generate_meta_info.py "
                            "writes it")
    p.add_argument("--input", nargs="+", required=True, help="image folders")
    p.add_argument("--root", nargs="+", help="one root per input; lines are relative to it (default: parent)")
    p.add_argument("--meta-info", "--meta_info", dest="meta_info", required=True, help="the file to write")
    p.add_argument("--check", action="store_true", help="decode every image; leave out the unreadable ones")
    p.add_argument("--with-shape", action="store_true", help="basicsr's format: 'name (h,w,c)' per line")
    p.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    _common(p)
    p.set_defaults(handler=_meta_info)


def _add_check(commands: argparse._SubParsersAction) -> None:
    """`srcockpit data check`."""
    p = commands.add_parser("check", help="check that an options file's datasets resolve to existing images")
    p.add_argument("options", help="a basicsr/Real-ESRGAN options YAML")
    p.add_argument("--base", help="folder that relative dataset paths start from (default: current folder)")
    p.set_defaults(handler=_check)


def _add_extract(commands: argparse._SubParsersAction) -> None:
    """`srcockpit data extract-subimages`."""
    p = commands.add_parser("extract-subimages", help="crop large images into overlapping sub-images "
                            "(basicsr's extract_subimages.py)")
    p.add_argument("input", help="folder of large images")
    p.add_argument("-o", "--output", required=True, help="folder for the sub-images")
    p.add_argument("--crop-size", type=int, default=400, help="(400)")
    p.add_argument("--step", type=int, default=200, help="(200)")
    p.add_argument("--thresh-size", type=int, default=0, help="(0)")
    p.add_argument("--compression-level", type=int, default=3, help="PNG compression 0-9 (3)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--strip-scale", action="store_true", help="drop a trailing x2/x3/x4/x8 from names")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    _common(p)
    p.set_defaults(handler=_extract)


def _add_valset(commands: argparse._SubParsersAction) -> None:
    """`srcockpit data valset`."""
    p = commands.add_parser("valset", help="a Set5-style pair set (GTmod12 + LRbicx<scale>) from HR images")
    p.add_argument("hr_dir", help="folder of HR images")
    p.add_argument("-o", "--output", required=True, help="set folder (gets GTmod12/ and LRbicx<scale>/)")
    p.add_argument("--scale", type=int, default=2, choices=(2, 3, 4), help="(2)")
    p.add_argument("--force", action="store_true", help="replace existing GTmod12/LRbicx folders")
    _common(p)
    p.set_defaults(handler=_valset)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    """`srcockpit data demo`."""
    p = commands.add_parser("demo", help="build the demo's train and validation data (scikit-image photos)")
    p.add_argument("root", nargs="?", default="datasets/demo", help="(datasets/demo)")
    p.add_argument("--scale", type=int, default=2, choices=(2, 3, 4), help="(2)")
    p.add_argument("--force", action="store_true", help="rebuild even if built")
    _common(p)
    p.set_defaults(handler=_demo)

