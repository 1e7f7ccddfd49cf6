"""`python -m bench [--device cpu|cuda] [--quick] [--json out.json] [--only PARTS]`: the speed table.

1 engine overhead   srcockpit's engine vs a plain basicsr loop, same options, data and seed (it/s); its it/s
                    against the plan's 2 it/s floor (RTX 3090, batch 16, gt 256) and its peak memory
2 levers            each opt-in speed-up of engine/speed.py and basicsr's own levers vs plain (it/s)
3 data pipeline     RealESRGANDataset + feed_data degradations: our settings vs defaults (samples/s)
4 cockpit           cold start, 200k-iteration replay (vs floors measured beside them), its CPU live and idle
5 export            onnxruntime float and a8w8 QDQ vs torch eager, per 270x480 frame
6 timing            the report's timing method on two copies of one model (they must agree within 10%)
7 data jobs         subset, meta-info, extract-subimages on 1,100 generated 2K photos vs basicsr/Real-ESRGAN
                    logic (images/s), and extract-subimages killed halfway then resumed (bench/data_jobs_bench.py)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import Profile, Row, prepare_photos, prepare_subimages, quiet_basicsr_logger

PARTS = ("1", "2", "3", "4", "5", "6", "7")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer iterations and rounds; compile left out")
    parser.add_argument("--compile", dest="with_compile", action=argparse.BooleanOptionalAction, default=None,
                        help="measure torch.compile too (default: on CUDA without --quick; on CPU its warm-up "
                             "alone takes minutes on 2 cores)")
    parser.add_argument("--json", type=Path, help="also write every figure (and its per-round samples) here")
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run, e.g. 1,2 (default: all)")
    parser.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    parser.add_argument("--perceptual", action=argparse.BooleanOptionalAction, default=None,
                        help="train with the plan's perceptual loss (default: on CUDA); its VGG19 weights from "
                             "--vgg-weights, else seeded random weights (same work, named so in the table)")
    parser.add_argument("--vgg-weights", type=Path, help="torchvision's vgg19-dcbb9e9d.pth for the perceptual loss")
    return parser.parse_args(argv)


def environment(device: str) -> dict[str, str]:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": str(os.cpu_count()),
            "torch_threads": str(torch.get_num_threads()), "machine": platform.machine(),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def render(rows: list[Row], console: Console, title: str) -> None:
    table = Table(title=title, show_lines=False)
    for column in ("part", "figure", "ratio", "against", "context"):
        table.add_column(column, overflow="fold")
    for row in rows:
        ratio = "-" if row.ratio is None or math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        context = row.context + (f" ({row.note})" if row.note else "")
        table.add_row(row.part, row.name, ratio, row.baseline, context)
    console.print(table)


def markdown(rows: list[Row]) -> str:
    lines = ["| part | figure | ratio | against | context |", "|---|---|---|---|---|"]
    for row in rows:
        ratio = "-" if row.ratio is None or math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        context = row.context + (f" ({row.note})" if row.note else "")
        lines.append(f"| {row.part} | {row.name} | {ratio} | {row.baseline} | {context} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    console = Console(highlight=False, stderr=False)

    def log(message: str) -> None:
        console.print(message, markup=False, highlight=False, soft_wrap=True)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        console.print("--device cuda: torch sees no CUDA device here", markup=False)
        return 2
    if args.vgg_weights is not None and not args.vgg_weights.is_file():
        console.print(f"--vgg-weights {args.vgg_weights} does not exist", markup=False)
        return 2
    profile = Profile.make(args.device, args.quick)
    with_compile = args.with_compile if args.with_compile is not None else args.device == "cuda" and not args.quick
    started = time.perf_counter()
    env = environment(args.device)
    log(f"bench on {args.device}: {env}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="srcockpit-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        quiet_basicsr_logger(folder / "basicsr.log")
        photos, meta = prepare_photos(folder)
        if args.perceptual if args.perceptual is not None else args.device == "cuda":
            profile = profile.with_perceptual(folder, args.vgg_weights)
        log(f"profile: {profile}")
        log(f"training options: the plan's recipe, {profile.vgg_label}")
        sub = prepare_subimages(folder, photos) if parts & {"2", "3"} else None
        from bench import data_bench, data_jobs_bench, export_bench, timing_bench, train_bench, ui_bench

        steps = [
            ("1", "engine overhead", lambda: train_bench.engine_overhead(profile, folder, photos, meta, log)),
            ("2", "training levers", lambda: train_bench.levers(profile, folder, photos, meta, sub, log,
                                                                with_compile=with_compile)),
            ("3", "data pipeline", lambda: data_bench.data_pipeline(profile, folder, photos, meta, sub, log)),
            ("4", "cockpit", lambda: ui_bench.cockpit(folder, quick=args.quick, log=log)),
            ("5", "export", lambda: export_bench.export_latency(folder, quick=args.quick, log=log)),
            ("6", "timing method", lambda: [*timing_bench.two_copies(quick=args.quick, log=log),
                                            *timing_bench.threads_row(quick=args.quick, log=log)]),
            ("7", "data jobs", lambda: data_jobs_bench.data_jobs(
                folder, images=50 if args.quick else 1100, png=5 if args.quick else 0,
                threads=len(os.sched_getaffinity(0)), extract_images=50 if args.quick else 1000,
                resume_images=20 if args.quick else 200, log=log)),
        ]
        for part, label, run in steps:
            if part not in parts:
                continue
            t = time.perf_counter()
            log(f"[{part}] {label}")
            try:
                found = run()
            except Exception as error:  # one part failing must not lose the others' figures
                found = [Row(part, label, None, "-", note=f"failed: {error.__class__.__name__}: {error}")]
            rows.extend(found)
            log(f"[{part}] {label}: {time.perf_counter() - t:.0f} s")
    elapsed = time.perf_counter() - started
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    title = f"{command.strip()}  ({args.device}, {elapsed / 60:.1f} min)"
    if console.is_terminal:
        render(rows, console, title)
    else:  # piped: a markdown table that keeps its width (and pastes into the README)
        print(f"\n{title}\n\n{markdown(rows)}")
    if args.json:
        args.json.write_text(json.dumps({"command": command.strip(), "device": args.device, "quick": args.quick,
                                         "seconds": round(elapsed, 1), "environment": env,
                                         "profile": profile.__dict__, "rows": [r.as_dict() for r in rows],
                                         "markdown": markdown(rows)}, indent=2, default=str))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
