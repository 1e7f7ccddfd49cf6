"""Per-process figures as nvitop shows them: the engine and its children's CPU and RSS (real processes), and
the engine's own memory per GPU from NVML's process list (a test double: this machine has no GPU)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import psutil

import engine.telemetry
from engine.telemetry import NvmlReader, ProcessTree, TelemetryThread
from tests.conftest import wait_for


class NvmlTestDouble:
    """Stands in for pynvml on a machine without an NVIDIA driver: one device, three processes on it."""

    def __init__(self, ours: list[int]) -> None:
        self.procs = [SimpleNamespace(pid=pid, usedGpuMemory=1 << 30) for pid in ours]
        self.procs.append(SimpleNamespace(pid=999_999_999, usedGpuMemory=5 << 30))  # someone else's job
        self.NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(used=8 << 30, total=80 << 30)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: str) -> list[SimpleNamespace]:
        return self.procs

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(gpu=50)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return 200_000

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: str) -> int:
        return 400_000

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        return 60


def test_gpu_reading_counts_only_the_engines_processes(monkeypatch):
    ours = [psutil.Process().pid, psutil.Process().pid + 1]
    monkeypatch.setattr(engine.telemetry, "pynvml", NvmlTestDouble(ours))
    reading = NvmlReader().read(0, frozenset(ours))
    assert reading["proc_mem"] == 2 << 30  # the other job's 5 GiB is the device's, not the run's
    assert reading["mem_used"] == 8 << 30


def test_process_tree_sums_the_engine_and_its_workers():
    worker = subprocess.Popen([sys.executable, "-c", "x = bytearray(200 << 20)\nwhile True: pass"])
    try:
        tree = ProcessTree()
        own_rss = psutil.Process().memory_info().rss
        tree.readings()
        figures = {}

        def busy() -> bool:
            figures.update(tree.readings())
            return figures["procs"] >= 2 and figures["proc_rss"] > own_rss + (150 << 20) and \
                figures["proc_cpu_percent"] > 20

        wait_for(busy, timeout=60, what="the worker's CPU and memory counted")
        assert worker.pid in tree.pids()
    finally:
        worker.kill()
        worker.wait()


def test_system_sample_carries_the_process_figures():
    sample = TelemetryThread(lambda **_: None).sample()
    assert sample["procs"] >= 1 and sample["proc_rss"] > 0
    assert sample["gpus"] == []  # no GPU here
