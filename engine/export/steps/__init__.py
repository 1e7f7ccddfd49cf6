"""The export steps, in order: one registry line each (name, label, what it needs and makes, its function).

Stdlib only, so the cockpit reads the names and labels without importing torch or onnx; a step's function
is imported when the step runs. A new export target is one module under engine/export/steps/ holding a
`run(ctx: ExportContext) -> Outcome` function, plus one `StepSpec` line in REGISTRY (or a `register` call).
`needs` and `makes` name entries of `ExportContext.made`; `plan` checks them before any folder is made.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.units import format_size


@dataclass(frozen=True)
class StepSpec:
    """One export step as declared: `target` is "module:function", imported only when the step runs."""

    name: str
    label: str
    target: str
    needs: tuple[str, ...] = ()
    makes: tuple[str, ...] = ()
    about: str = ""
    detail: Callable[[Any], str] | None = None  # the start message, from the ExportContext
    folder: str = ""  # the subfolder the step writes, emptied when an export is forced over an old one

    def function(self) -> Callable[[Any], Any]:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr or "run")


_HERE = __name__
REGISTRY: list[StepSpec] = [
    StepSpec("load", "Load checkpoint", f"{_HERE}.load:run", (), ("net", "arch", "params", "macs"),
             "read the checkpoint (SRVGGNetCompact only), parameters, MACs per frame",
             lambda ctx: str(ctx.checkpoint)),
    StepSpec("onnx", "ONNX export (static)", f"{_HERE}.onnx:static", ("net",), ("float_model", "rng"),
             "static 1x3xHxW, opset 17; max |torch - onnxruntime|, < 1e-5 required"),
    StepSpec("onnx_dynamic", "ONNX export (dynamic H/W)", f"{_HERE}.onnx:dynamic", ("net", "rng"),
             ("dynamic_model",), "dynamic H and W; the same check at two other sizes"),
    StepSpec("calibration", "Calibration frames", f"{_HERE}.calibration:run", (), ("images", "frames"),
             "frames at the static size from the run's validation LR images, a folder or built-ins"),
    StepSpec("quantize", "QDQ quantization", f"{_HERE}.quantize:run", ("float_model", "frames"), ("qdq_model",),
             "QDQ (a8w8 or a16w8, per-channel weights); PSNR against the float model on the frames",
             lambda ctx: ctx.quant),
    StepSpec("htp_compile", "HTP v73 context binary", f"{_HERE}.htp:compile_binary", ("qdq_model",),
             ("context_binary",),
             "HTP v73 context binary for QCS8550 (soc 43) with onnxruntime-qnn; seconds, bytes"),
    StepSpec("htp_sim", "HTP simulator check", f"{_HERE}.htp:simulate", ("net", "arch", "qdq_model", "images"),
             (), "the same QDQ model at a small size on the x86 HTP simulator; PSNR against float",
             lambda ctx: format_size(ctx.sim_size) if ctx.htp else "", "htp_sim"),
    StepSpec("qnn_sdk", "QNN SDK script", f"{_HERE}.qnn_sdk:run", ("float_model", "frames"), (),
             "QNN SDK script + configs written (run when QNN_SDK_ROOT is set)", folder="qnn_sdk"),
    StepSpec("aihub", "Qualcomm AI Hub", f"{_HERE}.aihub:run", ("qdq_model",), (),
             'AI Hub compile + profile on "QCS8550 (Proxy)" (with --aihub and a token)'),
    StepSpec("manifest", "Manifest", f"{_HERE}.manifest:run", ("params", "macs"), ("manifest", "artefacts"),
             "manifest.json: artefacts with sha256, figures, versions, latency ESTIMATE"),
]


def names() -> tuple[str, ...]:
    return tuple(spec.name for spec in REGISTRY)


def labels() -> dict[str, str]:
    """Step name -> label, in the order the steps run."""
    return {spec.name: spec.label for spec in REGISTRY}


def register(spec: StepSpec, after: str | None = None) -> StepSpec:
    """Add a step (at the end, or right after the step named `after`); a name is registered once."""
    if spec.name in names():
        raise ValueError(f"export step {spec.name!r} is already registered")
    position = len(REGISTRY) if after is None else names().index(after) + 1
    REGISTRY.insert(position, spec)
    return spec


def unregister(name: str) -> None:
    REGISTRY[:] = [spec for spec in REGISTRY if spec.name != name]


def plan(only: Iterable[str] | None = None) -> list[StepSpec]:
    """The registered steps to run, in registry order; each need must be made by an earlier chosen step."""
    chosen = set(names() if only is None else only)
    unknown = chosen - set(names())
    if unknown:
        raise ValueError(f"unknown export steps {sorted(unknown)}; registered: {', '.join(names())}")
    specs = [spec for spec in REGISTRY if spec.name in chosen]
    made: set[str] = set()
    for spec in specs:
        missing = [need for need in spec.needs if need not in made]
        if missing:
            raise ValueError(f"export step {spec.name!r} needs {missing}, made by no earlier chosen step")
        made.update(spec.makes)
    return specs
