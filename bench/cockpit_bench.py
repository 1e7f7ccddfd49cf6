"""Cockpit figures: cold start (process start to first frame) and the replay of a 200,000-iteration log.

    python bench/cockpit_bench.py [--every 1] [--keep DIR] [--rounds 3] [--against OTHER_CHECKOUT]

Cold start runs `srcockpit`'s own code path (make_app on a folder, run list) headless in a fresh
interpreter and stops after the first frame. The replay writes a 200k-iteration run (an iter event
every `--every` iterations, system every 2 s, val every 5k, checkpoint every 10k) with the iter index the
engine writes beside its log, and the same log without it (a link to it in a second run folder: what an
engine that wrote no index left), and times on each, in a fresh interpreter, rounds interleaved:
(a) the tailer + series store alone, (b) the dashboard in a
headless App from launch and from mount to the first full draw of the whole history, with the event
loop's longest stall while the history is folded (a 10 ms sleep's overshoot; on a busy machine, the
scheduler's share too), (c) that App's start on a run with no history, and the floor beside them:
json.loads of every line. --against runs (a)-(c) with another checkout's code too (say, main's), in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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


# (a)-(c) and the floor, run in a fresh interpreter with a checkout's code on the path: it uses only the
# API every version of the cockpit has (Tailer, read_all, RunState, make_app), so main can be timed too
REPLAY = """
import asyncio, json, sys, time
from pathlib import Path
kind, run = sys.argv[1], Path(sys.argv[2])
def floor():
    with open(run / "cockpit" / "events.jsonl", "rb") as handle:
        for line in handle:
            json.loads(line)
if kind == "store":  # imported before the clock starts (numpy, which a fold may import, after)
    from engine.protocol import RunPaths
    from tui.state import RunState
    from tui.tailer import Tailer, read_all
def store():
    read_all(Tailer(RunPaths(run), engine_log=False), RunState())
async def draw():
    from engine.protocol import RunPaths
    from tui.app import make_app
    launched = time.perf_counter()
    app = make_app(run.parent.parent, RunPaths(run), save_settings=False)
    async with app.run_test(size=(150, 46)) as pilot:
        mounted = last = time.perf_counter()
        stall = 0.0
        while not getattr(app.screen, "caught_up", False):
            await asyncio.sleep(0.01)  # not pilot.pause: it waits on every widget's queue, a load of its own
            now = time.perf_counter()
            if not getattr(getattr(app.screen, "state", None), "iter", 0):  # the history is not in yet
                stall = max(stall, now - last - 0.01)
            last = now
        app.screen.redraw()
        await pilot.pause()
        drawn = time.perf_counter()
    return {"launch": drawn - launched, "mount": drawn - mounted, "stall": stall}
start, cpu = time.perf_counter(), time.process_time()
figures = asyncio.run(draw()) if kind in ("draw", "empty") else {"floor": floor, "store": store}[kind]() or {}
print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, **figures}))
"""


def replay_round(kind: str, run: Path, code: Path) -> dict[str, float]:
    """One of REPLAY's measurements in a fresh interpreter running `code`'s checkout."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run([sys.executable, "-c", REPLAY, kind, str(run)], cwd=code, env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def empty_run(base: Path) -> Path:
    """A finished one-iteration run: the App's own start, next to no history to fold."""
    from generate import write_run

    root = base / "experiments" / "bench_empty"
    write_run(root, total_iter=1, iter_every=1, val_every=10, ckpt_every=10, alerts=False, logs=False,
              final="finished")
    return root


def log_alone(run: Path, base: Path) -> Path:
    """A run folder holding the same log as `run` and no iter index."""
    root = base / "experiments" / f"{run.name}_log_alone"
    (root / "cockpit").mkdir(parents=True, exist_ok=True)
    target = root / "cockpit" / "events.jsonl"
    target.unlink(missing_ok=True)
    os.link(run / "cockpit" / "events.jsonl", target)
    return root


def compare(run: Path, empty: Path, codes: dict[str, Path], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Every measurement once a round for each checkout, in turn (the order reversed every other round)."""
    found: dict[str, dict[str, list[float]]] = {}
    alone = log_alone(run, empty.parent.parent)
    steps = [("floor", "", run)] + [(kind, name, target) for name in codes
                                    for kind, target in (("store", run), ("draw", run), ("store log alone", alone),
                                                         ("draw log alone", alone), ("empty", empty))]
    for index in range(rounds):
        for kind, name, target in steps if index % 2 == 0 else steps[::-1]:
            figures = replay_round(kind.split()[0], target, codes.get(name, ROOT))
            for key, value in figures.items():
                found.setdefault(f"{name} {kind}".strip(), {}).setdefault(key, []).append(value)
            print(f"  round {index + 1}/{rounds} {name or 'json.loads'} {kind}: "
                  + ", ".join(f"{key} {value:.2f}" for key, value in figures.items())
                  + f"; load {os.getloadavg()[0]:.1f}", flush=True)
    return found


def report(found: dict[str, dict[str, list[float]]], codes: dict[str, Path]) -> None:
    floor = found["floor"]["wall"]
    print(f"json.loads of every line (the floor): median {median(floor):.2f} s")
    for name in codes:
        empty = found[f"{name} empty"]
        for source in ("", " log alone"):
            store, draw = found[f"{name} store{source}"], found[f"{name} draw{source}"]
            label = f"[{name}{', the log alone' if source else ', with the index'}]"
            print(f"{label} replay, tailer + series store: median {median(store['wall']):.2f} s "
                  f"(CPU {median(store['cpu']):.2f} s), {ratio(floor, store['wall'])} the floor's speed")
            print(f"{label} dashboard, mount to first full draw: median {median(draw['mount']):.2f} s, "
                  f"{ratio(floor, draw['mount'])} the floor's speed; launch to first full draw "
                  f"{median(draw['launch']):.2f} s, {ratio(floor, draw['launch'])} (the App's own start on a "
                  f"run with no history: {median(empty['launch']):.2f} s); longest event-loop stall while the "
                  f"history was folded {max(draw['stall']) * 1000:.0f} ms")
    if "against" in codes:
        this, other = found["this store"], found["against store"]
        print(f"this checkout against the other, same rounds: tailer + store {ratio(other['wall'], this['wall'])}, "
              f"mount to first full draw {ratio(found['against draw']['mount'], found['this draw']['mount'])}, "
              f"launch to first full draw {ratio(found['against draw']['launch'], found['this draw']['launch'])}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(baseline: list[float], ours: list[float]) -> str:
    """Paired per round: the baseline's time over ours (> 1: ours is faster)."""
    return f"{median([b / o for b, o in zip(baseline, ours, strict=True)]):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="iterations between iter events (default 1)")
    parser.add_argument("--iters", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the run here instead of a temp dir")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout (say, main's) whose replay is timed beside this one's")
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
        print(f"replay, tailer + series store (in this process): {seconds:.2f} s for {events:,} events; "
              f"{stored:,} numbers kept")
        codes = {"this": ROOT, **({"against": args.against.resolve()} if args.against else {})}
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
              f"checkouts: {', '.join(f'{k} {v}' for k, v in codes.items())}")
        report(compare(paths.root, empty_run(base), codes, args.rounds), codes)
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
