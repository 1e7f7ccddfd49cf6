"""manifest.json: every artefact with its hash, the verification figures, and a labelled latency ESTIMATE."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

from engine.files import sha256_file

MANIFEST = "manifest.json"

# AI Hub's published figures for real_esrgan_general_x4v3 (SRVGGNetCompact 64 feat, 32 convs, x4,
# PReLU) on QCS8550 at a 128x128 input (design.md section 8).
REFERENCE = {
    "model": "real_esrgan_general_x4v3 (SRVGGNetCompact 64 feat / 32 conv / x4)",
    "source": "Qualcomm AI Hub published performance, QCS8550",
    "input": [128, 128],
    "float_ms": 5.9,
    "w8a8_ms": 1.75,
}


def artefact(path: Path, root: Path, role: str) -> dict[str, Any]:
    return {"path": path.relative_to(root).as_posix(), "role": role, "sha256": sha256_file(path),
            "bytes": path.stat().st_size}


def reference_macs() -> int:
    """MACs per frame of the reference network at its 128x128 input, from its conv shapes."""
    from engine.export.onnx_export import conv_macs
    from engine.srvgg import SRVGGArch

    return conv_macs(SRVGGArch(num_feat=64, num_conv=32, upscale=4).build(), tuple(REFERENCE["input"]))


def latency_estimate(macs: int, quant: str) -> dict[str, Any]:
    """Scale the reference's published latencies by the MACs ratio: an ESTIMATE, not a measurement."""
    ref_macs = reference_macs()
    ratio = macs / ref_macs
    return {
        "kind": "ESTIMATE",
        "method": "scaling by the MACs ratio of a published measurement; not a measurement of this model",
        "basis": {**REFERENCE, "macs": ref_macs},
        "macs_ratio": round(ratio, 4),
        "float_ms": round(REFERENCE["float_ms"] * ratio, 2),
        "w8a8_ms": round(REFERENCE["w8a8_ms"] * ratio, 2),
        "caveat": (f"this export is {quant}; HTP time is not linear in MACs (memory traffic grows with the "
                   "frame, 16-bit activations cost more than 8-bit): profile on a device or AI Hub to know"),
    }


def json_safe(value: Any) -> Any:
    """inf/nan have no JSON literal: they are written as the strings "inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, Path):
        return value.as_posix()
    return value


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("torch", "basicsr", "onnx", "onnxruntime", "onnxruntime-qnn", "onnxscript", "numpy",
                    "qai-hub"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    from engine.export.qnn_compile import qnn_versions

    found.update({f"{key}_version": value for key, value in qnn_versions().items() if key == "qnn_sdk"})
    return found


def write_manifest(root: Path, content: dict[str, Any]) -> Path:
    path = root / MANIFEST
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(json_safe(content), indent=2, allow_nan=False) + "\n")
    os.replace(partial, path)
    return path


def check_manifest(root: Path) -> list[str]:
    """Problems with a written manifest: missing files, wrong sizes or hashes ([] when all match)."""
    content = json.loads((root / MANIFEST).read_text())
    problems = []
    for entry in content.get("artefacts", []):
        path = root / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: changed since export")
    return problems
