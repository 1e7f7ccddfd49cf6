"""The cockpit's own CPU: its dashboard attached to a live tiny run, beside the engine's CPU, then idle on
the finished run.

    python bench/cockpit_cpu.py [--seconds 60] [--print-freq 100] [--keep DIR] [--baseline CHECKOUT]

The engine is the real one (`srcockpit train options/tiny_cpu.yml`, logging every `--print-freq`
iterations); the cockpit is srcockpit's App showing that run's dashboard, headless, in its own process.
Both processes' CPU times are read with psutil over the same window, so the figure is a share of one
core and a ratio to the engine's share, whatever else runs on the machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DASHBOARD = """
import sys
from pathlib import Path
from engine.protocol import RunPaths
from tui.app import make_app
paths = RunPaths(Path(sys.argv[1]))
make_app(paths.root.parent.parent, paths, save_settings=False).run(headless=True, size=(150, 46))
"""


def srcockpit(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)


def tiny_dataset(folder: Path) -> None:
    """datasets/demo/{train,val} as options/tiny_cpu.yml expects (the tests' tiny set: four photo crops)."""
    import skimage.data as data

    from engine.data.valset import write_pairs

    photos = [(name, getattr(data, name)()) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    write_pairs(((name, image[:96, :96]) for name, image in photos), folder / "datasets/demo/train")
    write_pairs(((name, image[100:148, 100:148]) for name, image in photos[:2]), folder / "datasets/demo/val")


def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)


def measure(processes: dict, seconds: float) -> dict[str, float]:
    """CPU shares (of one core) of each process over the same `seconds` of wall time."""
    start = time.perf_counter()
    before = {name: cpu_seconds(p) for name, p in processes.items()}
    time.sleep(seconds)
    wall = time.perf_counter() - start
    shares = {name: (cpu_seconds(p) - before[name]) / wall for name, p in processes.items()}
    return {**shares, "wall": wall, "load": os.getloadavg()[0]}


def start_dashboard(paths, root: Path) -> subprocess.Popen:
    """srcockpit's dashboard on that run, from the checkout at `root`, headless, in its own process."""
    config = paths.root.parent / f"config-{abs(hash(str(root)))}"
    return subprocess.Popen([sys.executable, "-c", DASHBOARD, str(paths.root)], cwd=root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(root), SRCOCKPIT_CONFIG_DIR=str(config)))


def iter_events(paths) -> int:
    from engine.protocol import read_events

    return sum(e["type"] == "iter" for e in read_events(paths.events))


def live_and_idle(folder: Path, seconds: float, print_freq: int, baseline: Path | None = None,
                  log=print) -> dict[str, dict[str, float]]:
    """Train, attach (this checkout's dashboard and, side by side, the baseline checkout's), measure live;
    stop, measure idle on the stopped run."""
    import psutil

    from engine.protocol import RunPaths, engine_holds_lock, lock_holder_pids

    folder.mkdir(parents=True, exist_ok=True)
    tiny_dataset(folder)
    srcockpit("train", str(ROOT / "options" / "tiny_cpu.yml"), "--set", "train.total_iter=1000000",
              "--set", "val.val_freq=100000000", "--set", f"logger.print_freq={print_freq}",
              "--set", "logger.save_checkpoint_freq=100000000", cwd=folder)
    paths = RunPaths(folder / "experiments" / "tiny_cpu")
    deadline = time.monotonic() + 600
    while iter_events(paths) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    engine = psutil.Process(next(iter(lock_holder_pids(paths.lock))))
    dashboards = {"cockpit": start_dashboard(paths, ROOT)}
    if baseline is not None:
        dashboards["baseline"] = start_dashboard(paths, baseline)
    try:
        watched = {name: psutil.Process(d.pid) for name, d in dashboards.items()}
        time.sleep(5)  # past their start and the replay of what the log holds so far
        count = iter_events(paths)
        live = measure({**watched, "engine": engine}, seconds)
        live["iter_events_per_s"] = (iter_events(paths) - count) / live["wall"]
        log(f"live: {_shares(live)}, {live['iter_events_per_s']:.2f} iter events/s, load {live['load']:.1f}")
        srcockpit("stop", "tiny_cpu", cwd=folder)
        while engine_holds_lock(paths):
            time.sleep(0.5)
        time.sleep(3)  # the dashboards see the final status
        idle = measure(watched, seconds)
        log(f"idle on the stopped run: {_shares(idle)}, load {idle['load']:.1f}")
    finally:
        for dashboard in dashboards.values():
            dashboard.terminate()
            dashboard.wait(30)
        for pid in lock_holder_pids(paths.lock):
            os.kill(pid, 9)
    return {"live": live, "idle": idle}


def _shares(figures: dict[str, float]) -> str:
    names = [n for n in figures if n not in ("wall", "load", "iter_events_per_s")]
    shares = ", ".join(f"{name} {figures[name]:.2%} of a core" for name in names)
    if figures.get("baseline") and figures.get("cockpit"):  # side by side: the figure a busy machine leaves true
        shares += f" (the baseline uses {figures['baseline'] / figures['cockpit']:.2f}x the cockpit's)"
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--print-freq", type=int, default=100)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout whose dashboard runs beside ours on the same run (e.g. main)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="srcockpit-cpu-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        live_and_idle(folder, args.seconds, args.print_freq, args.baseline)


if __name__ == "__main__":
    main()


def rows(folder: Path, *, quick: bool, log=print) -> list:
    """`python -m bench` part 4's CPU rows: the cockpit's share of a core beside the engine's, live and idle."""
    from bench.common import Row

    seconds = 20.0 if quick else 60.0
    found = live_and_idle(folder / "cpu", seconds, 100, log=log)
    live, idle = found["live"], found["idle"]
    context = f"{seconds:.0f} s each; {os.cpu_count()} cores, load average {live['load']:.1f} then {idle['load']:.1f}"
    return [Row("4 cockpit", "dashboard CPU attached to a live tiny run (target < 3% of a core)",
                live["engine"] / live["cockpit"] if live["cockpit"] > 0 else float("nan"), "the engine's CPU",
                f"{live['cockpit']:.2%} vs the engine's {live['engine']:.0%} of a core, "
                f"{live['iter_events_per_s']:.2f} iter events/s; {context}", [], "ratio = engine / cockpit"),
            Row("4 cockpit", "dashboard CPU idle on the stopped run (target < 0.5% of a core)", None, "(no floor)",
                f"{idle['cockpit']:.2%} of a core; {context}", [], "context only")]
