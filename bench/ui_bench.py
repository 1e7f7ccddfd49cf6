"""Cockpit figures as ratios: bench/cockpit_bench.py's measurements, each beside a floor measured next to it.

- cold start to first frame (srcockpit's run list) against a bare Textual App's first frame, both in
  fresh interpreters, interleaved;
- replay of a 200,000-iteration event log through the tailer + series store against json.loads of
  every line of the same file (the least any reader must do), with the CPU share each used: with the iter
  index the engine writes beside its log, and the same log alone (an engine that wrote no index);
- the dashboard's mount to first full draw of that run, each way, against the same json.loads floor;
- the dashboard's CPU attached to a live tiny run beside the engine's, then idle (bench/cockpit_cpu.py).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import ROOT, Row, interleave, paired_ratio

BARE = """
import sys, time
start = float(sys.argv[1])
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("bare")
app = Bare()
def first_frame():
    print(f"{time.time() - start:.3f}", flush=True)
    app.exit()
app.call_after_refresh(first_frame)
app.run(headless=True)
"""


def _first_frame(code: str, *args: str) -> float:
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code, repr(start), *args], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return float(out.strip().splitlines()[-1])


def _json_floor(path: Path) -> tuple[float, int]:
    started, count = time.perf_counter(), 0
    with open(path, "rb") as handle:
        for line in handle:
            json.loads(line)
            count += 1
    return time.perf_counter() - started, count


def cockpit(folder: Path, *, quick: bool, log: Callable[[str], None]) -> list[Row]:
    from bench import cockpit_bench  # puts tests/fixtures/runs on sys.path for `generate`
    from engine.protocol import RunPaths

    write_run = importlib.import_module("generate").write_run

    iters = 200_000
    paths = RunPaths(folder / "experiments" / "bench_200k")
    if not paths.events.is_file():
        write_run(paths.root, total_iter=iters, iter_every=1, val_every=5000, ckpt_every=10_000, it_s=20.0,
                  alerts=False, final="finished")
    size_mb = paths.events.stat().st_size / 1e6
    rows = []
    rounds = 2 if quick else 3
    cold = interleave({"srcockpit": lambda: _first_frame(cockpit_bench.COLD, str(folder)),
                       "bare textual": lambda: _first_frame(BARE)}, rounds, log)
    rows.append(Row("4 cockpit", "cold start to first frame (run list)",
                    paired_ratio(cold["srcockpit"], cold["bare textual"], higher_is_faster=False),
                    "bare Textual app, first frame",
                    f"{_median(cold['srcockpit']):.3f} s vs {_median(cold['bare textual']):.3f} s",
                    [b / s for s, b in zip(cold["srcockpit"], cold["bare textual"], strict=True)],
                    "ratio = bare time / srcockpit time"))
    rows.extend(_replay_rows(paths, iters, size_mb, rounds, log))
    from bench import cockpit_cpu

    rows.extend(cockpit_cpu.rows(folder, quick=quick, log=log))
    return rows


def _replay_rows(paths, iters: int, size_mb: float, rounds: int, log: Callable[[str], None]) -> list[Row]:
    """The tailer + store, the dashboard's first full draw and the json.loads floor, interleaved per round."""
    from bench import cockpit_bench
    from engine.protocol import RunPaths

    alone = RunPaths(cockpit_bench.log_alone(paths.root, paths.root.parent.parent))
    names = ("store", "json", "draw", "store alone", "draw alone")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    shares: dict[str, list[float]] = {name: [] for name in names}
    loads: list[float] = []
    events = 0
    for index in range(rounds):
        for name in (names if index % 2 == 0 else names[::-1]):
            run = alone if name.endswith("alone") else paths
            cpu, wall = time.process_time(), time.perf_counter()
            mounted = None
            if name.startswith("store"):
                _, events, _ = cockpit_bench.replay_store(run)
            elif name == "json":
                _json_floor(paths.events)
            else:
                mounted = asyncio.run(cockpit_bench.replay_app(run))  # its clock starts at the dashboard's mount
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            seconds[name].append(wall if mounted is None else mounted)
            shares[name].append(cpu / wall)
            loads.append(os.getloadavg()[0])
            log(f"  round {index + 1}/{rounds} replay {name}: {seconds[name][-1]:.2f} s, CPU {cpu / wall:.0%}, "
                f"load {loads[-1]:.1f}")
    floor = _median(seconds["json"])
    load = f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    rows = []
    for source, label in (("", "with the engine's iter index"), (" alone", "the log alone")):
        store, draw = seconds[f"store{source}"], seconds[f"draw{source}"]
        rows += [
            Row("4 cockpit", f"replay {iters:,}-iteration log, {label}: tailer + store",
                paired_ratio(store, seconds["json"], higher_is_faster=False), "json.loads of each line",
                f"{_median(store):.2f} s vs {floor:.2f} s ({events / _median(store):,.0f} events/s); "
                f"{size_mb:.0f} MB; CPU share {_median(shares[f'store{source}']):.0%}; {load}",
                [j / s for s, j in zip(store, seconds["json"], strict=True)], "ratio = json time / ours"),
            Row("4 cockpit", f"dashboard, {label}: that run's first full draw",
                paired_ratio(draw, seconds["json"], higher_is_faster=False), "json.loads of each line",
                f"{_median(draw):.2f} s vs {floor:.2f} s; CPU share {_median(shares[f'draw{source}']):.0%}; {load}",
                [j / d for d, j in zip(draw, seconds["json"], strict=True)],
                "from the dashboard's mount (the App's start: the cold-start row); ratio = json time / ours"),
        ]
    return rows


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
