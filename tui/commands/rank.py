"""`srcockpit rank RUN`: score every checkpoint of a run, rank them, optionally promote the best.

Nothing here imports torch at import time: the handler imports engine.rank when it runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "rank a run's checkpoints by validation PSNR/SSIM; --promote copies the best to weights/"
FIGURES_CAPTION = ("NIQE (lower better), colour and chroma shift (grey levels), checkerboard (share of the error at "
                   "the upscale's period), sharpness (detail vs GT's, 1 = as sharp)")

DESCRIPTION = """\
Score every models/net_g_*.pth of a run (params and params_ema as separate candidates) on paired
validation sets with basicsr's PSNR/SSIM, and rank them: highest PSNR, then SSIM (finetune-plan.md 5.4).
NIQE and the artifact figures (colour shift, chroma, checkerboard, sharpness) are shown beside them; a
checkpoint whose colour shift or checkerboard is above the live alerts' limits is marked with the reason
and ranked after the clean ones. Nearest and bicubic upscaling, the original model and the run's start
point are shown beside them.

  srcockpit rank tiny_cpu
  srcockpit rank experiments/my_run --valset datasets/Set5/GTmod12:datasets/Set5/LRbicx2 --valset datasets/Set14
  srcockpit rank my_run --promote            best -> weights/small-realesr-animevideox2v3-finetuned.pth (+ .json)

Validation sets default to the run's own datasets.val*; crop_border and Y/RGB to its val.metrics.
Scores are cached in RUN/cockpit/rank_cache.json by file content, so a second call is instant.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rank", help=HELP, description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="RUN", help="a run name under experiments/, or a run folder")
    parser.add_argument("--valset", action="append", default=[], metavar="GT_DIR:LQ_DIR",
                        help="a paired validation set (repeatable): GT_DIR:LQ_DIR, NAME=GT_DIR:LQ_DIR, or a folder "
                             "holding GTmod12/ and LRbicx<scale>/ (default: the run's val datasets)")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                        help="also rank the params_ema entries (default: yes)")
    parser.add_argument("--original", default="auto", metavar="ncnn|PATH|none",
                        help="the original model shown beside (default: the shipped ncnn model when installed)")
    parser.add_argument("--crop-border", type=int, default=None, help="override the run's metric crop border")
    channel = parser.add_mutually_exclusive_group()
    channel.add_argument("--y", dest="y_channel", action="store_const", const=True, default=None,
                         help="metrics on the Y channel (override the run's setting)")
    channel.add_argument("--rgb", dest="y_channel", action="store_const", const=False,
                         help="metrics on RGB (override the run's setting)")
    parser.add_argument("--device", default=None, help="inference device (default: cuda if available, else cpu)")
    parser.add_argument("--no-cache", action="store_true", help="evaluate everything again (the cache is rewritten)")
    parser.add_argument("--promote", action="store_true", help="copy the best checkpoint's weights to --to")
    parser.add_argument("--to", type=Path, default=None, metavar="PATH",
                        help="where --promote writes (default weights/small-realesr-animevideox2v3-finetuned.pth)")
    parser.add_argument("--job", metavar="DIR", help="also run as an engine job: events in DIR/cockpit/")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.set_defaults(handler=run_rank)


def resolve_run_dir(name: str) -> Path:
    """A run registered by srcockpit (cockpit/events.jsonl), else a plain basicsr folder with models/."""
    from engine.protocol import UserError
    from tui.runs import resolve_run

    try:
        return resolve_run(name).root
    except UserError:
        for folder in (Path(name).expanduser(), Path("experiments") / name):
            if (folder / "models").is_dir():
                return folder.resolve()
        raise


def rank_table(result: Any) -> Any:
    """The ranked candidates and the references, as one rich Table."""
    from rich.markup import escape
    from rich.table import Table

    from engine.metric_info import SHOWN_FIGURES, figure_text

    many = len(result.valsets) > 1
    names = ", ".join(f"{v.name} ({v.gt_dir})" for v in result.valsets)
    table = Table(title=f"{result.run_dir.name}: x{result.scale} on {names}",
                  caption=f"metrics: {result.settings_text}\nrank: highest PSNR, then SSIM"
                          + (" (means over the sets)" if many else "")
                          + "; colour shift or checkerboard above the health limits: after the clean ones"
                          + f"\n{FIGURES_CAPTION}", caption_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("model")
    table.add_column("iter", justify="right")
    for spec in result.valsets:
        suffix = f" {spec.name}" if many else ""
        table.add_column(f"PSNR{suffix}", justify="right")
        table.add_column(f"SSIM{suffix}", justify="right")
    if many:
        table.add_column("mean PSNR", justify="right")
        table.add_column("mean SSIM", justify="right")
    for _, heading, _ in SHOWN_FIGURES:
        table.add_column(heading + (" (mean)" if many else ""), justify="right")
    table.add_column("")

    def cells(scores: dict, psnr: float, ssim: float, figures: dict) -> list[str]:
        row = []
        for spec in result.valsets:
            score = scores.get(spec.name)
            row += [f"{score.psnr:.3f}", f"{score.ssim:.4f}"] if score else ["-", "-"]
        if many:
            row += [f"{psnr:.3f}", f"{ssim:.4f}"]
        return row + [figure_text(key, figures.get(key)) for key, *_ in SHOWN_FIGURES]

    for candidate in result.candidates:
        if candidate.rank is None:
            table.add_row("-", escape(candidate.label), str(candidate.iter or "-"), *["-"] * (2 * len(result.valsets)
                          + 2 * many + len(SHOWN_FIGURES)), f"[red]{escape(candidate.error or '')}[/]")
            continue
        best = candidate.rank == 1
        flags = ["[bold green]best[/]" if best else "", *(f"[yellow]! {escape(flag)}[/]" for flag in candidate.flags),
                 candidate.note, "cached" if candidate.cached else ""]
        table.add_row(str(candidate.rank), escape(candidate.label), str(candidate.iter) if candidate.iter is not None
                      else "latest", *cells(candidate.scores, candidate.psnr, candidate.ssim, candidate.figures),
                      "  ".join(f for f in flags if f), style="bold" if best else None)
    table.add_section()
    for reference in result.references:
        params = f"{reference.parameters:,} params" if reference.parameters else ""
        table.add_row("", f"[dim]{reference.label}[/]", "", *cells(reference.scores, reference.psnr, reference.ssim,
                                                           reference.figures),
                      f"[dim]{escape(reference.description)}{'; ' + params if params else ''}[/]")
    return table


def run_rank(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    run = resolve_run_dir(args.run)  # a typo is refused before engine.rank imports torch (seconds)
    from engine.job_kinds import rank
    from engine.rank import DEFAULT_TARGET, promote, sidecar_path

    console = Console(highlight=False)
    params = {"run": str(run), "valsets": args.valset, "include_ema": args.ema,
              "original": args.original, "crop_border": args.crop_border, "test_y_channel": args.y_channel,
              "device": args.device, "use_cache": not args.no_cache}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("ranking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[message]}"), console=Console(stderr=True), transient=True,
                  disable=args.json) as bar:
        task = bar.add_task("rank", total=None, message="")

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, message=message)

        if args.job:
            from engine.job_runner import run_job

            result = run_job(Path(args.job), "rank", params, progress)
        else:
            result = rank(progress, **params)
    promoted = None
    if args.promote:
        promoted = promote(result, args.to or DEFAULT_TARGET)
    if args.json:
        data = result.to_dict()
        if promoted:
            data["promoted"] = {"weights": str(promoted), "sidecar": str(sidecar_path(promoted))}
        print(json.dumps(data, indent=2))
        return 0
    console.print(rank_table(result))
    for note in result.notes:
        console.print(f"  note: {escape(note)}")
    console.print(f"  {result.evaluated} evaluated, {result.reused} from the cache ({result.cache_path}), "
                  f"{result.seconds:.1f} s")
    if result.ranked:
        best = result.best
        console.print(f"[bold]best:[/] {escape(best.label)}: PSNR {best.psnr:.3f} dB, SSIM {best.ssim:.4f}"
                      + (f" [yellow](every checkpoint has artifacts: {escape('; '.join(best.flags))})[/]"
                         if best.flags else ""))
        marked = [c for c in result.ranked if c.flags]
        if marked:
            console.print(f"  {len(marked)} of {len(result.ranked)} ranked after the clean ones for artifacts above "
                          "the health limits (engine/health.py)")
    if promoted:
        console.print(f"[bold]promoted[/] {escape(result.best.label)} -> {promoted} (params and params_ema), "
                      f"scores in {sidecar_path(promoted)}")
    return 0
