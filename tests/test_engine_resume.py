"""A stopped and resumed run follows the run that never stopped (issue 9), on the CPU with num_worker 0."""

from __future__ import annotations

import os
from pathlib import Path

from engine.launch import run_engine
from engine.protocol import RunPaths, read_events
from tests.conftest import TINY_OPTIONS, write_tiny_dataset


def losses_by_iter(root: Path) -> dict[int, dict[str, float]]:
    events = read_events(RunPaths(root / "experiments/tiny_cpu").events)
    return {e["iter"]: e["losses"] for e in events if e["type"] == "iter"}


def test_resume_mid_epoch_reproduces_the_uninterrupted_losses(tmp_path: Path, monkeypatch):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for root in (straight, resumed):
        write_tiny_dataset(root)
    monkeypatch.chdir(straight)
    run_engine(TINY_OPTIONS, root=straight, overrides=["train.total_iter=8"])
    monkeypatch.chdir(resumed)
    # 5 is mid-epoch (2 batches per epoch) and between validations (every 4): the hardest place to stop
    run_engine(TINY_OPTIONS, root=resumed, overrides=["train.total_iter=5"])
    assert run_engine(TINY_OPTIONS, root=resumed, overrides=["train.total_iter=8"], auto_resume=True) == "finished"

    a, b = losses_by_iter(straight), losses_by_iter(resumed)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    worst = max(abs(a[i][name] - b[i][name]) for i in a for name in a[i])
    assert worst == 0.0, f"resumed losses differ by up to {worst}"
    assert os.path.getsize(resumed / "experiments/tiny_cpu/models/net_g_8.pth") > 0
