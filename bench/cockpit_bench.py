"""Cockpit figures: cold start (process start to first frame) and the replay of a 200,000-iteration log.

    python bench/cockpit_bench.py [--every 1] [--keep DIR]

Cold start runs `srcockpit`'s own code path (make_app on a folder, run list) headless in a fresh
interpreter and stops after the first frame. The replay writes a 200k-iteration run (an iter event
every `--every` iterations, system every 2 s, val every 5k, checkpoint every 10k) and times (a) the
tailer + series store alone and (b) the dashboard in a headless App, from mount to the first full draw.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "runs"))

COLD = """
import sys, time
start = float(sys.argv[1])
from pathlib import Path
from tui.app import make_app
app = make_app(Path(sys.argv[2]), save_settings=False)
def first_frame():
    print(f"{time.time() - start:.3f}", flush=True)
    app.exit()
app.call_after_refresh(first_frame)
app.run(headless=True)
"""


def cold_start(folder: Path, repeat: int = 5) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.time()
        out = subprocess.run([sys.executable, "-c", COLD, repr(start), str(folder)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return times


def replay_store(paths) -> tuple[float, int, int]:
    from tui.state import RunState
    from tui.tailer import Tailer, read_all

    started = time.perf_counter()
    state = read_all(Tailer(paths, engine_log=False), RunState())
    return time.perf_counter() - started, state.events, state.stored_points()


async def replay_app(paths) -> float:
    from tui.app import make_app

    app = make_app(paths.root.parent.parent, paths, save_settings=False)
    async with app.run_test(size=(150, 46)) as pilot:
        started = time.perf_counter()
        while not getattr(app.screen, "caught_up", False):
            await asyncio.sleep(0.01)  # not pilot.pause: it waits on every widget's queue, a load of its own
        app.screen.redraw()
        await pilot.pause()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="iterations between iter events (default 1)")
    parser.add_argument("--iters", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the run here instead of a temp dir")
    args = parser.parse_args()
    from generate import write_run

    from engine.protocol import RunPaths

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        paths = RunPaths(base / "experiments" / "bench_200k")
        t = time.perf_counter()
        write_run(paths.root, total_iter=args.iters, iter_every=args.every, val_every=5000, ckpt_every=10_000,
                  it_s=20.0, alerts=False, final="finished")
        size = paths.events.stat().st_size
        print(f"log: {args.iters:,} iterations, iter event every {args.every}, {size / 1e6:.1f} MB "
              f"(written in {time.perf_counter() - t:.1f} s)")
        cold = cold_start(base)
        print(f"cold start to first frame (run list): median {sorted(cold)[len(cold) // 2]:.3f} s, "
              f"min {min(cold):.3f} s over {len(cold)}")
        seconds, events, stored = replay_store(paths)
        print(f"replay, tailer + series store: {seconds:.2f} s for {events:,} events "
              f"({events / seconds:,.0f} events/s); {stored:,} numbers kept")
        print(f"replay, dashboard mount to first full draw: {asyncio.run(replay_app(paths)):.2f} s")


if __name__ == "__main__":
    main()
