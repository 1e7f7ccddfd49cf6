"""The report's timing method checked on itself: two copies of one model, timed as the report times models
(engine/timing.py: in turn within each round, after a warm-up, median and interquartile spread).

The copies do the same work, so their medians must agree within 10%; the figure is copy B / copy A, and
a spread wider than the method's limit is reported as such (a busy machine) rather than as agreement.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

from bench.common import Row

FRAME = (270, 480)  # the report's frame (an LR input, HxW)


def two_copies(*, quick: bool, log: Callable[[str], None]) -> list[Row]:
    import torch

    from engine.speed import set_torch_threads
    from engine.srvgg import SRVGGArch
    from engine.timing import SPREAD_LIMIT, describe, time_interleaved

    threads, why = set_torch_threads()
    torch.manual_seed(0)
    net = SRVGGArch(num_feat=32, num_conv=32, upscale=2).build().eval()
    runs = 5 if quick else 9
    height, width = (FRAME[0] // 2, FRAME[1] // 2) if quick else FRAME
    load_before = os.getloadavg()[0]
    result = time_interleaved({"A": net, "B": copy.deepcopy(net)}, height, width, runs=runs)
    a, b = result["A"], result["B"]
    log(f"  copy A {describe(a)} (spread {a['spread']:.0%}), copy B {describe(b)} (spread {b['spread']:.0%})")
    ratio = b["median_ms"] / a["median_ms"]
    agree = abs(ratio - 1) <= SPREAD_LIMIT
    conclusive = a["conclusive"] and b["conclusive"]
    verdict = ("agree within 10%" if agree else "disagree by more than 10%") if conclusive else \
        "spread too wide to conclude (the method says so instead of giving a figure)"
    context = (f"SRVGG 32/32 x2 at {height}x{width}, {runs} interleaved runs each after {a['warmup']} warm-up; A "
               f"{a['median_ms']:.1f} ms (spread {a['spread']:.0%}), B {b['median_ms']:.1f} ms (spread "
               f"{b['spread']:.0%}); {threads} threads ({why}); load average {load_before:.1f}-"
               f"{os.getloadavg()[0]:.1f}")
    return [Row("6 timing", "report's timing method: two copies of one model", ratio, "the same model (copy A)",
                context, [rb / ra for ra, rb in zip(a["all_ms"], b["all_ms"], strict=True)], verdict)]


def threads_row(*, quick: bool, log: Callable[[str], None]) -> list[Row]:
    """The engine's thread count (the free cores) against every core of the affinity mask, interleaved."""
    import torch

    from engine.speed import usable_threads
    from engine.srvgg import SRVGGArch
    from engine.timing import describe, time_interleaved

    class WithThreads(torch.nn.Module):
        def __init__(self, net: torch.nn.Module, threads: int) -> None:
            super().__init__()
            self.net, self.threads = net, threads

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch.set_num_threads(self.threads)
            return self.net(x)

    free, why = usable_threads()
    cores = len(os.sched_getaffinity(0))
    torch.manual_seed(0)
    net = SRVGGArch(num_feat=32, num_conv=32, upscale=2).build().eval()
    height, width = (FRAME[0] // 2, FRAME[1] // 2) if quick else FRAME
    load_before = os.getloadavg()[0]
    result = time_interleaved({"free": WithThreads(net, free), "all": WithThreads(net, cores)}, height, width,
                              runs=5 if quick else 9)
    log(f"  {free} thread(s) {describe(result['free'])}, {cores} thread(s) {describe(result['all'])}")
    ratio = result["all"]["median_ms"] / result["free"]["median_ms"]
    conclusive = result["free"]["conclusive"] and result["all"]["conclusive"]
    return [Row("6 timing", f"torch threads from the free cores ({free}) vs all {cores} cores", ratio,
                f"{cores} threads", f"SRVGG 32/32 x2 forward at {height}x{width}: {describe(result['free'])} vs "
                f"{describe(result['all'])}; {why}; load average {load_before:.1f}-{os.getloadavg()[0]:.1f}",
                [], "" if conclusive else "spread too wide to conclude")]
