"""The real `srcockpit` binary in a real terminal (tmux), steering a real CPU training run.

Each test talks to its own tmux server (-L): a server some other process started would hand the
session that server's environment instead of this test's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.protocol import RunPaths, read_events
from tests.conftest import TINY_OPTIONS, srcockpit
from tui.widgets.line_chart import format_number

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
SESSION = f"srcockpit-e2e-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SESSION, *args], capture_output=True, text=True, check=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_until(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; screen:\n{screen()}")


def last_status(paths: RunPaths) -> dict:
    return [e for e in read_events(paths.events) if e["type"] == "status"][-1]


def test_cockpit_in_tmux_stops_and_resumes_a_real_run(run_root: Path):
    srcockpit("train", str(TINY_OPTIONS), "--set", "train.total_iter=100000", "--set", "val.val_freq=1000000",
              "--set", "logger.save_checkpoint_freq=1000000", cwd=run_root)
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    binary = Path(sys.executable).with_name("srcockpit")
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", "-c", str(run_root),
         f"{binary} attach tiny_cpu; sleep 30")
    try:
        wait_until(lambda: "running" in screen().lower(), "the dashboard to show the live run")
        tmux("send-keys", "-t", SESSION, "s")
        wait_until(lambda: "Stop the run" in screen(), "the stop confirmation")
        tmux("send-keys", "-t", SESSION, "y")
        wait_until(lambda: last_status(paths)["status"] == "stopped", "the engine to stop")
        stopped_at = last_status(paths)["iter"]
        checkpoints = [e["iter"] for e in read_events(paths.events) if e["type"] == "checkpoint"]
        assert checkpoints[-1] == stopped_at and (paths.models / f"net_g_{stopped_at}.pth").is_file()
        wait_until(lambda: "stopped" in screen().lower(), "the dashboard to show the stop")

        tmux("send-keys", "-t", SESSION, "r")
        wait_until(lambda: any(e["type"] == "iter" and e["iter"] > stopped_at + 2 for e in read_events(paths.events)),
                   "the resumed engine to train on")

        def counter_moved_on() -> bool:
            shown = [int(n.replace(",", "")) for n in re.findall(r"\b(\d[\d,]*)\s*/\s*100,?000\b", screen())]
            return any(n > stopped_at for n in shown)

        wait_until(counter_moved_on, "the iteration counter to continue past the stop")
    finally:
        subprocess.run(["tmux", "-L", SESSION, "kill-server"], capture_output=True)
        subprocess.run([sys.executable, "-m", "tui.cli", "stop", "tiny_cpu"], cwd=run_root, capture_output=True)


def figures_on_screen(shown: str, events: list[dict]) -> list[str]:
    """What an 80x24 screen lacks of iteration, it/s, ETA, the last generator loss and the best PSNR,
    each read off the screen and checked against the run's own log."""
    iters = [e for e in events if e["type"] == "iter"]
    vals = [e for e in events if e["type"] == "val"]
    missing = []
    counter = re.search(r"iter (\d[\d,]*) / 100,000", shown)
    if not (counter and 0 < int(counter[1].replace(",", "")) <= max((e["iter"] for e in iters), default=0)):
        missing.append("iteration")
    if not re.search(r"\b\d+\.\d\d it/s", shown):
        missing.append("it/s")
    if not re.search(r"ETA \d", shown):
        missing.append("ETA")
    loss = re.search(r"l_g_pix (\S+)", shown)
    if not (loss and loss[1] in {format_number(e["losses"]["l_g_pix"]) for e in iters}):
        missing.append("last loss")
    best = f"{vals[-1]['best']['psnr']['value']:.2f}" if vals else None
    lines = shown.splitlines()  # the validation table: a "best" column, and the PSNR row holding the best
    if not (best and any("best" in line for line in lines) and any("PSNR" in line and best in line for line in lines)):
        missing.append("best PSNR")
    return missing


def test_an_80x24_terminal_shows_every_figure_of_a_live_run(run_root: Path):
    srcockpit("train", str(TINY_OPTIONS), "--set", "train.total_iter=100000", "--set", "val.val_freq=2",
              "--set", "logger.save_checkpoint_freq=1000000", cwd=run_root)
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    binary = Path(sys.executable).with_name("srcockpit")
    tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24", "-c", str(run_root),
         f"{binary} attach tiny_cpu; sleep 30")
    try:
        assert tmux("display-message", "-p", "-t", SESSION, "#{window_width}x#{window_height}").strip() == "80x24"
        wait_until(lambda: paths.events.exists() and not figures_on_screen(screen(), list(read_events(paths.events))),
                   "iteration, it/s, ETA, the last loss and the best PSNR on the 80x24 screen", timeout=300)
    finally:
        subprocess.run(["tmux", "-L", SESSION, "kill-server"], capture_output=True)
        subprocess.run([sys.executable, "-m", "tui.cli", "stop", "tiny_cpu"], cwd=run_root, capture_output=True)
