"""`srcockpit export CHECKPOINT`: ONNX, QDQ and an HTP v73 context binary for QCS8550, each step verified."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.markup import escape

DEFAULT_SIZE = "270x480"
DEFAULT_SIM_SIZE = "64x64"

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
    from engine.protocol import UserError

    if args.calib_frames < 1:
        raise UserError(f"--calib-frames {args.calib_frames}: need at least 1")
    from engine.export import run_export_job
    from engine.units import parse_size

    size = parse_size(args.size, "--size")
    sim_size = parse_size(args.sim_size, "--sim-size")
    console = _console()
    started = time.monotonic()
    console.print(f"[bold]srcockpit export[/] {escape(str(args.checkpoint))}  size {size[0]}x{size[1]}  "
                  f"{args.quant}")

    def show(report: Any) -> None:
        _show(console, report)

    result = run_export_job(args.checkpoint, args.out, force=args.force, on_step=show, size=size,
                            sim_size=sim_size, calib=args.calib, quant=args.quant, min_psnr=args.min_psnr,
                            htp=not args.no_htp, aihub=args.aihub, calib_frames=args.calib_frames)
    console.print(f"[bold green]done[/] in {time.monotonic() - started:.1f} s: {escape(str(result.manifest))}")
    return 0


def _console() -> Any:
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


_STYLE = {"done": "green", "warning": "yellow", "skipped": "dim", "running": "cyan"}
_MARK = {"done": "ok", "warning": "!!", "skipped": "--", "running": ".."}


def _show(console: Any, report: Any) -> None:
    if report.status == "running":
        return  # one line per step, written when its figure lands
    style = _STYLE.get(report.status, "white")
    seconds = f" [dim]({report.seconds:.1f} s)[/]" if report.seconds >= 0.05 else ""
    mark = escape(f"[{_MARK.get(report.status, '  ')}]")
    console.print(f"[{style}]{mark}[/] {report.index:>2}/{report.total} "
                  f"[bold]{report.title}[/]: {escape(report.message)}{seconds}", markup=True)
