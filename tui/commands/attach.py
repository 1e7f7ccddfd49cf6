"""`srcockpit attach NAME_OR_PATH`: straight to a run's dashboard (`--replay SPEED` paces a recorded log)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("attach", help="open the cockpit on one run (name under experiments/ or a folder)",
                            description="Open the cockpit on one run; training goes on when you leave (d).")
    parser.add_argument("run", metavar="NAME_OR_PATH",
                        help="a run name under ./experiments, a run folder, or its cockpit/events.jsonl")
    parser.add_argument("--root", type=Path, default=None, help="the project folder (default: here)")
    parser.add_argument("--replay", type=float, default=None, metavar="SPEED",
                        help="replay the recorded log at SPEED x its real pace instead of following it")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tui.runs import resolve_run, summarise

    paths = resolve_run(args.run, args.root)
    if getattr(args, "no_ui", False):
        s = summarise(paths)
        total = f"/{s.total_iter:,}" if s.total_iter else ""
        best = f", best PSNR {s.best_psnr:.2f} dB" if s.best_psnr is not None else ""
        print(f"{s.name}: {s.display_status} at iteration {s.iter:,}{total}{best}"
              f"{' (engine alive)' if s.alive else ''}")
        return 0
    from tui.app import make_app

    make_app(args.root, paths, replay_speed=args.replay).run()
    return 0
