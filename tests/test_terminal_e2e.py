"""The real `srcockpit` binary in a real terminal (tmux), steering a real CPU training run."""

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

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
SESSION = f"srcockpit-e2e-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


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
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        subprocess.run([sys.executable, "-m", "tui.cli", "stop", "tiny_cpu"], cwd=run_root, capture_output=True)
