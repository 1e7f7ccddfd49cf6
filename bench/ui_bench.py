"""Cockpit figures as ratios: bench/cockpit_bench.py's measurements, each beside a floor measured next to it.

- cold start to first frame (srcockpit's run list) against a bare Textual App's first frame, both in
  fresh interpreters, interleaved;
- replay of a 200,000-iteration event log through the tailer + series store against json.loads of
  every line of the same file (the least any reader must do), with the CPU share each used;
- the dashboard's mount to first full draw of that run (context: no floor for it).
"""

from __future__ import annotations

import asyncio
import importlib
import json
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
    rates: dict[str, list[float]] = {"store": [], "json": []}
    events = 0
    shares: dict[str, list[float]] = {"store": [], "json": []}
    for index in range(rounds):
        for name in (("store", "json") if index % 2 == 0 else ("json", "store")):
            cpu, wall = time.process_time(), time.perf_counter()
            if name == "store":
                _, count, _ = cockpit_bench.replay_store(paths)
                events = count
            else:
                _, count = _json_floor(paths.events)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates[name].append(count / wall)
            shares[name].append(cpu / wall)
            log(f"  round {index + 1}/{rounds} replay {name}: {count / wall:,.0f} events/s, CPU {cpu / wall:.0%}")
    rows.append(Row("4 cockpit", f"replay {iters:,}-iteration log: events/s (tailer + store)",
                    paired_ratio(rates["store"], rates["json"], higher_is_faster=True), "json.loads of each line",
                    f"{_median(rates['store']):,.0f} vs {_median(rates['json']):,.0f} events/s; {size_mb:.0f} MB; "
                    f"CPU share {_median(shares['store']):.0%} vs {_median(shares['json']):.0%} of one core",
                    [s / j for s, j in zip(rates["store"], rates["json"], strict=True)]))
    cpu, wall = time.process_time(), time.perf_counter()
    draw = asyncio.run(cockpit_bench.replay_app(paths))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows.append(Row("4 cockpit", "dashboard: mount to first full draw of that run", None, "(no floor)",
                    f"{draw:.2f} s for {events:,} events ({events / draw:,.0f} events/s drawn), "
                    f"CPU {cpu / wall:.0%} of one core", [], "context only"))
    return rows


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
