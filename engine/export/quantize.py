"""QDQ quantization with onnxruntime's QNN tooling, and PSNR of one model against another."""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.export.onnx_export import INPUT_NAME
from engine.protocol import UserError

# mode -> (activation type, weight type) names of onnxruntime.quantization.QuantType. Weights are
# signed, symmetric and per-channel (what HTP wants); activations unsigned and asymmetric.
QUANT_MODES = {"a8w8": ("QUInt8", "QInt8"), "a16w8": ("QUInt16", "QInt8")}


def check_mode(mode: str) -> str:
    if mode not in QUANT_MODES:
        raise UserError(f"unknown quantization {mode!r}", f"choose one of {', '.join(QUANT_MODES)}")
    return mode


def quantize_qdq(float_model: Path, target: Path, frames: list[np.ndarray], mode: str = "a8w8") -> Path:
    """A QDQ model for QNN HTP, calibrated (MinMax) on frames; written as one file."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    activation, weight = (getattr(QuantType, name) for name in QUANT_MODES[check_mode(mode)])

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._frames: Iterator[np.ndarray] = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            frame = next(self._frames, None)
            return None if frame is None else {INPUT_NAME: frame}

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial.onnx")
    # The quantizer logs advice (pre-processing, opset upgrade for 16 bit) with logging.warning(), which
    # also installs a stderr handler on the root logger when it has none: give it a silent one meanwhile.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            config = get_qnn_qdq_config(str(float_model), Frames(), activation_type=activation,
                                        weight_type=weight, per_channel=True)
            quantize(str(float_model), str(partial), config)
    finally:
        root.removeHandler(placeholder)
        root.setLevel(level)
    partial.replace(target)
    return target


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of test against reference, both clipped to [0, 1] as a saved frame would be."""
    return mean_psnr([reference], [test])


def mean_psnr(references: list[np.ndarray], tests: list[np.ndarray]) -> float:
    """PSNR of the mean squared error over all frames (not the mean of per-frame PSNRs)."""
    mse = float(np.mean([np.mean((np.clip(r, 0, 1) - np.clip(t, 0, 1)) ** 2, dtype=np.float64)
                         for r, t in zip(references, tests, strict=True)]))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def cpu_outputs(model: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [session.run(None, {INPUT_NAME: frame})[0] for frame in frames]
