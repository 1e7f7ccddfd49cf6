"""The same HTP v73 build for users of Qualcomm's QNN SDK: a script, its configs and calibration raws.

Written next to the model every time; run only when QNN_SDK_ROOT points at an SDK. The command lines
are the SDK's documented three steps: qnn-onnx-converter (quantized with the same calibration frames,
same bit widths, per-channel weights), qnn-model-lib-generator, qnn-context-binary-generator with the
HTP backend and a backend-extension config for dsp_arch v73 / soc 43.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.export.onnx_export import INPUT_NAME
from engine.export.qnn_compile import HTP_ARCH, SOC_MODEL

SCRIPT = "build_qnn_sdk.sh"
GRAPH = "srvgg"
BITS = {"a8w8": (8, 8), "a16w8": (16, 8)}


@dataclass(frozen=True)
class SdkResult:
    status: str  # "written" (not run), "ran", "failed"
    message: str
    script: Path
    files: tuple[Path, ...]
    log: Path | None = None
    seconds: float = 0.0


def write_sdk_files(folder: Path, float_model: Path, frames: list[np.ndarray], mode: str,
                    size: tuple[int, int]) -> tuple[Path, ...]:
    """The script, its two JSON configs, NHWC float32 raw calibration frames and their input list."""
    folder.mkdir(parents=True, exist_ok=True)
    raws = folder / "calibration"
    input_list = _write_calibration(folder, raws, frames)
    htp_config, extensions = _write_configs(folder)
    script = folder / SCRIPT
    script.write_text(_script(os.path.relpath(float_model, folder), mode, size, len(frames)))
    script.chmod(0o755)
    return (script, htp_config, extensions, input_list, *sorted(raws.iterdir()))


def _write_calibration(folder: Path, raws: Path, frames: list[np.ndarray]) -> Path:
    """Each frame as a raw file in raws/, and the input list naming them; returns the list."""
    raws.mkdir(exist_ok=True)
    lines = []
    for index, frame in enumerate(frames):
        raw = raws / f"frame_{index:03d}.raw"
        # QNN takes image inputs in NHWC (the converter turns the ONNX NCHW input into NHWC).
        np.ascontiguousarray(frame[0].transpose(1, 2, 0), dtype=np.float32).tofile(raw)
        lines.append(f"{INPUT_NAME}:={raw.relative_to(folder)}")
    input_list = folder / "input_list.txt"
    input_list.write_text("\n".join(lines) + "\n")
    return input_list


def _write_configs(folder: Path) -> tuple[Path, Path]:
    """The HTP v73 device config and the backend extensions file that names it."""
    htp_config = folder / "htp_v73_config.json"
    htp_config.write_text(json.dumps({
        "graphs": [{"graph_names": [GRAPH], "vtcm_mb": 8, "O": 3}],
        "devices": [{"soc_id": SOC_MODEL, "dsp_arch": f"v{HTP_ARCH}",
                     "cores": [{"core_id": 0, "perf_profile": "burst", "rpc_control_latency": 100}]}],
    }, indent=2) + "\n")
    extensions = folder / "htp_backend_extensions.json"
    extensions.write_text(json.dumps({"backend_extensions": {
        "shared_library_path": "libQnnHtpNetRunExtensions.so", "config_file_path": htp_config.name}},
        indent=2) + "\n")
    return htp_config, extensions


def _script(model: str, mode: str, size: tuple[int, int], frames: int) -> str:
    """The bash build script: converter, model library, context binary generator."""
    activation_bits, weight_bits = BITS[mode]
    height, width = size
    return f"""#!/usr/bin/env bash
# HTP v{HTP_ARCH} context binary for QCS8550 (soc {SOC_MODEL}) with Qualcomm's QNN SDK, {mode}.
# Written by srcockpit export; run from anywhere with QNN_SDK_ROOT set (source $QNN_SDK_ROOT/bin/envsetup.sh).
# Calibration: the same {frames} frames as the onnxruntime QDQ model, NHWC float32 raw in calibration/.
set -euo pipefail
cd "$(dirname "$0")"
: "${{QNN_SDK_ROOT:?set QNN_SDK_ROOT to the QNN / QAIRT SDK folder}}"
BIN="$QNN_SDK_ROOT/bin/x86_64-linux-clang"
LIB="$QNN_SDK_ROOT/lib/x86_64-linux-clang"
export LD_LIBRARY_PATH="$LIB${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
mkdir -p out

"$BIN/qnn-onnx-converter" \\
  --input_network {shlex.quote(model)} \\
  --input_dim {INPUT_NAME} 1,3,{height},{width} \\
  --output_path out/{GRAPH}.cpp \\
  --input_list input_list.txt \\
  --act_bitwidth {activation_bits} --weights_bitwidth {weight_bits} --bias_bitwidth 32 \\
  --use_per_channel_quantization

"$BIN/qnn-model-lib-generator" \\
  -c out/{GRAPH}.cpp -b out/{GRAPH}.bin \\
  -t x86_64-linux-clang -o out/model_libs

"$BIN/qnn-context-binary-generator" \\
  --backend "$LIB/libQnnHtp.so" \\
  --model out/model_libs/x86_64-linux-clang/lib{GRAPH}.so \\
  --config_file htp_backend_extensions.json \\
  --binary_file {GRAPH}_{mode}_htp_v{HTP_ARCH} \\
  --output_dir out

echo "wrote $(pwd)/out/{GRAPH}_{mode}_htp_v{HTP_ARCH}.bin"
"""


def run_sdk_script(folder: Path, timeout_s: float = 1800) -> SdkResult:
    """Run the written script when QNN_SDK_ROOT is set; otherwise say it was written, not run."""
    script = folder / SCRIPT
    files = tuple(sorted(path for path in folder.rglob("*") if path.is_file()))
    sdk = os.environ.get("QNN_SDK_ROOT", "")
    if not sdk:
        return SdkResult("written", f"QNN SDK commands written to {script}, not run "
                         "(QNN_SDK_ROOT is not set)", script, files)
    if not Path(sdk).is_dir():
        return SdkResult("written", f"QNN SDK commands written to {script}, not run (QNN_SDK_ROOT={sdk} is "
                         "not a folder)", script, files)
    log = folder / "build_qnn_sdk.log"
    started = time.monotonic()
    with open(log, "wb") as handle:
        try:
            code = subprocess.run(["bash", str(script)], stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=timeout_s, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
    seconds = time.monotonic() - started
    files = tuple(sorted(path for path in folder.rglob("*") if path.is_file()))
    if code != 0:
        return SdkResult("failed", f"QNN SDK build failed (exit {code}); see {log}", script, files, log,
                         seconds)
    return SdkResult("ran", f"QNN SDK build ran with {sdk} in {seconds:.1f} s; see {log}", script, files, log,
                     seconds)
