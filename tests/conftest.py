"""Shared fixtures: a tiny paired dataset from scikit-image's photos, and a run folder to train in."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_OPTIONS = REPO / "options" / "tiny_cpu.yml"
TINY_RUN = "tiny_cpu"  # the run name in TINY_OPTIONS


def _photos() -> list[tuple[str, object]]:
    import skimage.data as data

    return [("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea()),
            ("rocket", data.rocket())]


def write_tiny_dataset(root: Path) -> Path:
    """datasets/demo/{train,val}/{GTmod12,LRbicx2} as options/tiny_cpu.yml expects, in seconds."""
    from engine.data.valset import write_pairs

    photos = _photos()
    write_pairs(((name, image[:96, :96]) for name, image in photos), root / "datasets/demo/train")
    write_pairs(((name, image[100:148, 100:148]) for name, image in photos[:2]), root / "datasets/demo/val")
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def forked_srcockpit() -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """srcockpit's command line forked from a zygote that has imported torch, basicsr and OpenCV once
    (tests/zygote.py), for corpora of many commands; that bad input is refused before torch is imported at all
    is tests/test_fast_refusal.py's check, through a fresh interpreter."""
    from tests.zygote import CLI_PRELUDE, Zygote

    zygote = Zygote(CLI_PRELUDE)
    try:
        yield zygote.srcockpit
    finally:
        zygote.close()


@pytest.fixture
def run_root(tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder holding the tiny dataset; the test runs inside it."""
    (tmp_path / "datasets").symlink_to(tiny_data / "datasets")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny run (8 iterations, checkpoints at 4 and 8), trained once per session and shared."""
    from engine.launch import run_engine

    base = tmp_path_factory.getbasetemp() / "rank-report-tiny-run"
    if not (base / "experiments" / TINY_RUN / "models" / "net_g_8.pth").is_file():
        base.mkdir(exist_ok=True)
        write_tiny_dataset(base)
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(base)
            assert run_engine(TINY_OPTIONS, root=base) == "finished"
    return base


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the tiny run's folder (its engine.json still points at the shared datasets)."""
    target = tmp_path / "experiments" / TINY_RUN
    shutil.copytree(tiny_run / "experiments" / TINY_RUN, target)
    monkeypatch.chdir(tmp_path)
    return target


def srcockpit(*args: str, cwd: Path, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """The real command line, as a user types it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"srcockpit {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def last_iter(paths) -> int:
    """The newest iteration an engine reported in a run's event log (0 before the first)."""
    from engine.protocol import read_events

    return max((e["iter"] for e in read_events(paths.events) if e["type"] == "iter"), default=0)


@contextlib.contextmanager
def live_tiny_run(run_root: Path, *sets: str) -> Iterator[object]:
    """A detached tiny run that trains until stopped (no periodic validation), past its first two iterations;
    whatever a test leaves of it is stopped, and killed if it will not stop."""
    from engine.protocol import RunPaths, engine_holds_lock, lock_holder_pids

    srcockpit("train", str(TINY_OPTIONS), "--set", "train.total_iter=100000", "--set", "val.val_freq=1000000",
              *sets, cwd=run_root)
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    wait_for(lambda: last_iter(paths) >= 2, timeout=300, what="two iterations")
    try:
        yield paths
    finally:
        if engine_holds_lock(paths):
            srcockpit("stop", "tiny_cpu", cwd=run_root, check=False)
        for pid in lock_holder_pids(paths.lock):
            os.kill(pid, signal.SIGKILL)


def wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll predicate until it holds; fail with what was awaited (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
