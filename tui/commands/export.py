"""`srcockpit export CHECKPOINT`: ONNX, QDQ and an HTP v73 context binary for QCS8550, each step verified."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.markup import escape

from engine.job_kinds import ExportRequest
from engine.protocol import StepResult

DEFAULT_SIZE = ExportRequest.size
DEFAULT_SIM_SIZE = ExportRequest.sim_size


def epilog() -> str:
    """The steps as the registry declares them (engine/export/steps), and where the events go."""
    from engine.export import steps

    lines = [f"  {spec.name:<13} {spec.about}" for spec in steps.REGISTRY]
    return ("steps, in order (each checked; AI Hub only with --aihub):\n" + "\n".join(lines) + "\n"
            "The latency ESTIMATE is scaled from AI Hub's published real_esrgan_general_x4v3 figures.\n"
            "Events also go to OUTDIR/cockpit/events.jsonl, so the cockpit can follow the export.\n")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a checkpoint for Qualcomm QCS8550 (ONNX, QDQ, HTP binary)",
                            description=__doc__, epilog=epilog(),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="SRVGGNetCompact .pth (basicsr params/params_ema or bare)")
    parser.add_argument("-o", "--out", type=Path, default=None, metavar="OUTDIR",
                        help="output folder (default: beside the checkpoint, <name>_qcs8550)")
    parser.add_argument("--size", default=DEFAULT_SIZE, metavar="HxW",
                        help=f"static LR input size, height x width (default {DEFAULT_SIZE}: a 540p frame at x2)")
    parser.add_argument("--calib", default=None, metavar="DIR",
                        help="calibration images (default: the run's validation LR folder; 'builtin' for "
                             "scikit-image's photos)")
    parser.add_argument("--quant", default="a8w8", choices=("a8w8", "a16w8"),
                        help="activations/weights bits (default a8w8, per-channel weights)")
    parser.add_argument("--min-psnr", type=float, default=40.0, metavar="DB",
                        help="stop when the quantized or simulated model is below this PSNR vs float (default 40)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite OUTDIR, and go on below --min-psnr")
    parser.add_argument("--no-htp", action="store_true",
                        help="skip the HTP context binary and the simulator check")
    parser.add_argument("--sim-size", default=DEFAULT_SIM_SIZE, metavar="HxW",
                        help=f"input size for the HTP simulator check (default {DEFAULT_SIM_SIZE}; the "
                             "simulator takes ~30 s per 270x480 frame)")
    parser.add_argument("--calib-frames", type=int, default=16, metavar="N",
                        help="calibration frames (default 16)")
    parser.add_argument("--aihub", action="store_true",
                        help="also compile and profile on Qualcomm AI Hub 'QCS8550 (Proxy)' (needs qai-hub "
                             "and a token)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.export.pipeline import default_out_dir
    from engine.job_runner import run_job
    from engine.units import format_size, parse_size

    checkpoint = args.checkpoint.expanduser()
    out = args.out.expanduser() if args.out is not None else default_out_dir(checkpoint)
    params = {"checkpoint": str(checkpoint), "out": str(out), "size": args.size, "sim_size": args.sim_size,
              "calib": args.calib, "quant": args.quant, "min_psnr": args.min_psnr, "force": args.force,
              "htp": not args.no_htp, "aihub": args.aihub, "calib_frames": args.calib_frames}
    console = _console()
    started = time.monotonic()
    headed = []

    def header(done: int, total: int, message: str) -> None:
        if not headed:  # once the request passed its checks, as the first step starts
            headed.append(True)
            console.print(f"[bold]srcockpit export[/] {escape(str(args.checkpoint))}  "
                          f"size {format_size(parse_size(args.size))}  {args.quant}")

    record = run_job(out, "export", params, header, lambda step: _show(console, step))
    console.print(f"[bold green]done[/] in {time.monotonic() - started:.1f} s: {escape(str(record['manifest']))}")
    return 0


def _console() -> Any:
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


_STYLE = {"done": "green", "warning": "yellow", "skipped": "dim"}
_MARK = {"done": "ok", "warning": "!!", "skipped": "--"}


def _show(console: Any, step: StepResult) -> None:
    """One line per finished step, written when its figure lands."""
    style = _STYLE.get(step.status, "white")
    seconds = f" [dim]({step.seconds:.1f} s)[/]" if step.seconds >= 0.05 else ""
    mark = escape(f"[{_MARK.get(step.status, '  ')}]")
    console.print(f"[{style}]{mark}[/] {step.index:>2}/{step.total} "
                  f"[bold]{step.title}[/]: {escape(step.message)}{seconds}", markup=True)
