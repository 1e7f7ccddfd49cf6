"""The timing method (engine/timing.py): interleaved rounds, median and spread, inconclusive figures named.
No timing is asserted here (bench/timing_bench.py measures the method); the statistics get fixed inputs."""

from __future__ import annotations

import torch

from engine.timing import MIN_RUNS, describe, spread_summary, time_interleaved


def test_a_tight_set_of_runs_gives_its_median():
    summary = spread_summary([0.010, 0.0101, 0.0099, 0.0100, 0.0102])
    assert summary["conclusive"] and round(summary["median_ms"], 3) == 10.0
    assert describe(summary) == "10.0 ms"


def test_a_wide_spread_or_too_few_runs_is_said_to_be_inconclusive():
    wide = spread_summary([0.010, 0.030, 0.011, 0.025, 0.012])
    assert not wide["conclusive"] and wide["spread"] > 0.10
    assert describe(wide).startswith("inconclusive (runs spread")
    few = spread_summary([0.010, 0.010])
    assert not few["conclusive"] and describe(few) == f"inconclusive (2 runs < {MIN_RUNS})"


def test_models_are_timed_in_the_same_rounds():
    calls: list[str] = []

    class Recorder(torch.nn.Module):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(self.name)
            return self.conv(x)

    result = time_interleaved({"a": Recorder("a"), "b": Recorder("b")}, 8, 8, runs=5, warmup=1)
    assert set(result) == {"a", "b"} and all(r["runs"] == 5 and r["input"] == "8x8" for r in result.values())
    rounds = [calls[k:k + 2] for k in range(0, len(calls), 2)]
    assert len(rounds) == 6 and all(sorted(r) == ["a", "b"] for r in rounds)
    assert {r[0] for r in rounds} == {"a", "b"}  # the order rotates: neither always goes first
