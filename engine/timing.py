"""Inference timings a user can compare: models measured in turn, after a warm-up, with their spread.

Timing one model after another on a shared machine measures the machine's moods as much as the
models: a burst of other work during the second model's runs makes it look slower. So every round
times each model once, in an order that rotates from round to round; each model gets `runs` such
rounds after `warmup` untimed ones, and its figure is the median with the interquartile spread.
Fewer than MIN_RUNS runs, or a spread wider than `SPREAD_LIMIT` of the median, mark the figure
inconclusive, and the report says so instead of printing a number (engine/report.py).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

SPREAD_LIMIT = 0.10  # the agreement asked of two copies of one model (bench/timing_bench.py checks it)
MIN_RUNS = 5
# oneDNN builds its kernels on the first call; the second is as fast as the tenth (a 270x480 frame, 2 CPU cores)
WARMUP = 1


def spread_summary(seconds: list[float], limit: float = SPREAD_LIMIT) -> dict[str, Any]:
    """Median, interquartile spread (relative to the median) and whether the median can be trusted."""
    ms = [1000 * s for s in seconds]
    median = statistics.median(ms)
    q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else (median, median, median)
    spread = (q3 - q1) / median if median > 0 else float("inf")
    return {"median_ms": median, "spread": round(spread, 4), "conclusive": len(ms) >= MIN_RUNS and spread <= limit,
            "runs": len(ms),
            "all_ms": [round(v, 2) for v in ms]}


def time_interleaved(nets: Mapping[str, Any], height: int, width: int, *, runs: int = MIN_RUNS, warmup: int = WARMUP,
                     device: Any = "cpu", limit: float = SPREAD_LIMIT) -> dict[str, dict[str, Any]]:
    """Each network's forward time on one 1x3xHxW input, the networks timed in turn within each round."""
    import torch

    device = torch.device(device)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    labels = list(nets)
    times: dict[str, list[float]] = {label: [] for label in labels}
    with torch.inference_mode():
        for label in labels:
            nets[label].to(device).eval()
        for number in range(warmup + runs):
            shift = number % len(labels)  # no model always first (or always right after another)
            for label in labels[shift:] + labels[:shift]:
                seconds = _forward_seconds(nets[label], x, device)
                if number >= warmup:
                    times[label].append(seconds)
    return {label: {"input": f"{height}x{width}", "warmup": warmup, **spread_summary(values, limit)}
            for label, values in times.items()}


def _forward_seconds(net: Any, x: Any, device: Any) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    net(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def describe(timing: Mapping[str, Any]) -> str:
    """'12.3 ms' or, when the runs spread too wide, why there is no figure."""
    if not timing:
        return "-"
    if timing.get("runs", MIN_RUNS) < MIN_RUNS:
        return f"inconclusive ({timing['runs']} runs < {MIN_RUNS})"
    if not timing.get("conclusive", True):
        return f"inconclusive (runs spread {timing['spread']:.0%} > {SPREAD_LIMIT:.0%}: a busy machine)"
    return f"{timing['median_ms']:.1f} ms"
