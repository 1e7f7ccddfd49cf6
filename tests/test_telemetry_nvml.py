"""NVML readings: an NVML error is a reading left out (nvitop's sentinel), any other error is a bug and is raised."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pynvml = pytest.importorskip("pynvml")


@pytest.fixture
def fake_nvml_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test double for absent hardware: one GPU whose NVML gives memory, utilization, temperature and the
    power limit and its compute processes, and answers "not supported" for the power draw (as many consumer
    cards do)."""

    def not_supported(*_: object) -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    for name, fn in {"nvmlInit": lambda: None, "nvmlDeviceGetHandleByIndex": lambda index: f"gpu{index}",
                     "nvmlDeviceGetMemoryInfo": lambda handle: SimpleNamespace(used=1 << 30, total=8 << 30),
                     "nvmlDeviceGetUtilizationRates": lambda handle: SimpleNamespace(gpu=50),
                     "nvmlDeviceGetTemperature": lambda handle, sensor: 61,
                     "nvmlDeviceGetPowerUsage": not_supported,
                     "nvmlDeviceGetEnforcedPowerLimit": lambda handle: 200_000,
                     "nvmlDeviceGetComputeRunningProcesses": lambda handle: [
                         SimpleNamespace(pid=4242, usedGpuMemory=512 << 20),
                         SimpleNamespace(pid=1, usedGpuMemory=1 << 20)]}.items():
        monkeypatch.setattr(pynvml, name, fn)


def test_an_nvml_error_leaves_that_reading_out(fake_nvml_gpu: None) -> None:
    from engine.telemetry import NA, NvmlReader

    reader = NvmlReader()
    assert reader.available
    assert reader.read(0, frozenset({4242})) == {"mem_used": 1 << 30, "mem_total": 8 << 30, "util": 50, "temp": 61,
                                                 "power": NA, "power_limit": 200.0, "proc_mem": 512 << 20}


def test_an_error_that_is_not_nvml_is_raised(fake_nvml_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.telemetry import NvmlReader

    def broken(handle: object, sensor: int) -> int:
        raise KeyError("a bug in the caller, not an NVML answer")

    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", broken)
    with pytest.raises(KeyError):
        NvmlReader().read(0)
