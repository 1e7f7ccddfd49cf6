"""System telemetry for `system` events: torch.cuda memory, NVML readings, host CPU and memory.

NVML is optional (no driver, no GPU, a container without the library): every NVML call goes
through `_nvml`, which turns an NVML error (and only that) into the NA sentinel, as nvitop's
libnvml does, so a missing reading is an empty field, never a crash; any other error is a bug and
is raised. Readings come from a daemon thread every `interval` seconds.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import psutil
import torch

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but a broken install must not stop training
    pynvml = None

NA = None  # a reading NVML cannot give (not supported, no permission, lost GPU): a field left out of the event
# every NVML failure is an NVMLError (a missing libnvidia-ml is NVMLError_LibraryNotFound); OSError: a library
# that loads but lacks a symbol on an old driver
NVML_ERRORS: tuple[type[BaseException], ...] = (pynvml.NVMLError, OSError) if pynvml is not None else (OSError,)


def _nvml(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except NVML_ERRORS:
        return NA


class NvmlReader:
    """Per-device NVML readings; `available` is False when there is no usable driver."""

    def __init__(self) -> None:
        self.available = self._init_ok()

    @staticmethod
    def _init_ok() -> bool:
        if pynvml is None:
            return False
        try:
            pynvml.nvmlInit()
        except NVML_ERRORS:
            return False
        return True

    def read(self, index: int, pids: frozenset[int] = frozenset()) -> dict[str, Any]:
        """The device's readings, and "proc_mem": what the processes `pids` hold on it (None when NVML cannot
        list its processes, as in a container without the host's PID namespace)."""
        if not self.available:
            return {}
        handle = _nvml(pynvml.nvmlDeviceGetHandleByIndex, index)
        if handle is None:
            return {}
        running = _nvml(pynvml.nvmlDeviceGetComputeRunningProcesses, handle)
        proc_mem = None
        if running is not None:
            proc_mem = sum(p.usedGpuMemory or 0 for p in running if p.pid in pids)
        memory = _nvml(pynvml.nvmlDeviceGetMemoryInfo, handle)
        util = _nvml(pynvml.nvmlDeviceGetUtilizationRates, handle)
        power = _nvml(pynvml.nvmlDeviceGetPowerUsage, handle)
        limit = _nvml(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        return {
            "mem_used": memory.used if memory else None,
            "mem_total": memory.total if memory else None,
            "util": util.gpu if util else None,
            "temp": _nvml(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
            "power": power / 1000 if power is not None else None,
            "power_limit": limit / 1000 if limit is not None else None,
            "proc_mem": proc_mem,
        }


def _nvml_index(torch_index: int) -> int:
    # torch numbers the devices CUDA_VISIBLE_DEVICES lets it see; NVML numbers all of them.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [part.strip() for part in visible.split(",") if part.strip()]
    if torch_index < len(ids) and ids[torch_index].isdigit():
        return int(ids[torch_index])
    return torch_index


def gpu_readings(nvml: NvmlReader, pids: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """One entry per CUDA device this process uses; [] on a CPU-only machine."""
    if not torch.cuda.is_available():
        return []
    return [gpu_reading(nvml, index, pids) for index in range(torch.cuda.device_count())]


def gpu_reading(nvml: NvmlReader, index: int, pids: frozenset[int] = frozenset()) -> dict[str, Any]:
    return {
        "index": index,
        "name": torch.cuda.get_device_name(index),
        "mem_alloc": torch.cuda.memory_allocated(index),
        "mem_reserved": torch.cuda.memory_reserved(index),
        "mem_peak": torch.cuda.max_memory_allocated(index),
        **nvml.read(_nvml_index(index), pids or frozenset({os.getpid()})),
    }


def own_gpu_readings() -> Callable[[], list[dict[str, Any]]]:
    """Under torchrun: a reader of this rank's own CUDA device only ([] on CPU), gathered to rank 0."""
    nvml = NvmlReader()

    def read() -> list[dict[str, Any]]:
        if not torch.cuda.is_available():
            return []
        return [gpu_reading(nvml, torch.cuda.current_device())]

    return read


def host_readings(process: psutil.Process) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "rss": process.memory_info().rss,
        "ram_used": memory.total - memory.available,
        "ram_total": memory.total,
    }


class ProcessTree:
    """The engine and its children (data-loader workers, a prefetcher), read as nvitop reads a process.

    psutil's per-process cpu_percent measures since its own previous call, so each Process object is kept
    across samples; a new worker reads 0 on its first sample, as in nvitop and top."""

    def __init__(self, root: psutil.Process | None = None) -> None:
        self.root = root or psutil.Process()
        self._known: dict[int, psutil.Process] = {}

    def members(self) -> list[psutil.Process]:
        try:
            found = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            found = [self.root]
        self._known = {p.pid: self._known.get(p.pid, p) for p in found}
        return list(self._known.values())

    def readings(self) -> dict[str, Any]:
        cpu, rss, count = 0.0, 0, 0
        for process in self.members():
            try:
                with process.oneshot():
                    cpu += process.cpu_percent(interval=None)
                    rss += process.memory_info().rss
                count += 1
            except psutil.Error:  # a worker that ended between the listing and the reading
                continue
        return {"proc_cpu_percent": cpu, "proc_rss": rss, "procs": count}

    def pids(self) -> frozenset[int]:
        return frozenset(self._known) or frozenset({self.root.pid})


class TelemetryThread:
    """Calls emit(**readings) every `interval` seconds until stopped. `gpus`, under torchrun, returns
    every rank's readings (each entry with its rank and host) instead of this process's own."""

    def __init__(self, emit: Callable[..., Any], interval: float = 2.0,
                 gpus: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self._emit = emit
        self._gpus = gpus
        self._interval = interval
        self._stop = threading.Event()
        self._nvml = NvmlReader()
        self._process = psutil.Process()
        self._tree = ProcessTree(self._process)
        self._thread = threading.Thread(target=self._run, name="srcockpit-telemetry", daemon=True)

    def sample(self) -> dict[str, Any]:
        tree = self._tree.readings()
        gpus = self._gpus() if self._gpus is not None else gpu_readings(self._nvml, self._tree.pids())
        return {"gpus": gpus, **host_readings(self._process), **tree}

    def _run(self) -> None:
        psutil.cpu_percent(interval=None)  # the first call only sets the reference point
        self._tree.readings()
        while not self._stop.wait(self._interval):
            self._emit(**self.sample())

    def start(self) -> TelemetryThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)
