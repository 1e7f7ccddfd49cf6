"""Training states loaded as data, never as code (a `.state` file may come from anyone who can write there).

torch.load with weights_only=True rebuilds only tensors and plain containers. What basicsr's states and
ours hold beyond that is listed here, by name: numpy's array and scalar pickles (the numpy random state and
metric values of states written before they were saved as plain numbers). States this engine writes hold
plain numbers only (engine/models.py), so they load on any torch, also one without an allow-list API.
"""

from __future__ import annotations

import importlib
from contextlib import nullcontext
from pathlib import Path
from typing import Any

# (module, name) pairs; numpy 2 moved its pickled helpers from numpy.core to numpy._core.
_NUMPY_GLOBALS = (
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
)
_NUMPY_TYPES = ("ndarray", "dtype")
_NUMPY_DTYPES = ("UInt32DType", "Int64DType", "Float64DType", "Float32DType", "BoolDType")


def allowed_globals() -> list[Any]:
    """Exactly the non-tensor classes and functions a basicsr or srcockpit training state may pickle."""
    import numpy as np

    found: list[Any] = [getattr(np, name) for name in _NUMPY_TYPES]
    found += [getattr(np.dtypes, name) for name in _NUMPY_DTYPES if hasattr(getattr(np, "dtypes", None), name)]
    for package in ("numpy._core", "numpy.core"):
        for module, name in _NUMPY_GLOBALS:
            try:
                found.append(getattr(importlib.import_module(f"{package}.{module}"), name))
            except (ImportError, AttributeError):
                continue
    return found


def load_state(path: Path) -> dict[str, Any]:
    """A training state, with weights_only=True and the allow-list above (where this torch has one)."""
    import torch

    allow = getattr(torch.serialization, "safe_globals", None)
    with allow(allowed_globals()) if allow else nullcontext():
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not {"iter", "epoch", "optimizers"} <= state.keys():
        raise ValueError(f"{path} is not a basicsr training state (no iter/epoch/optimizers)")
    return state


def plain_numpy_state(state: tuple[Any, ...]) -> tuple[Any, ...]:
    """np.random.get_state() with its key as a list of ints: a state that needs no numpy unpickling."""
    name, key, pos, has_gauss, cached = state
    return (str(name), [int(k) for k in key], int(pos), int(has_gauss), float(cached))


def plain_metrics(best: dict[str, Any]) -> dict[str, Any]:
    """basicsr's best_metric_results with numpy scalars turned into floats and ints."""
    return {dataset: {metric: {"better": record.get("better"), "val": float(record["val"]),
                               "iter": int(record["iter"])} for metric, record in metrics.items()}
            for dataset, metrics in best.items()}
