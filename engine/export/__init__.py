"""Export for Qualcomm QCS8550: ONNX, QDQ, HTP v73 context binary, QNN SDK script, AI Hub, manifest.

The one call the demo needs is `export_checkpoint` (the export job, engine.job_kinds.export, runs it with its
own event log); see engine/export/pipeline.py for the loop and engine/export/steps/ for the steps.
The names below are imported on first use, so that `engine.export.steps` (stdlib only: the step names
and labels the cockpit shows) can be imported without numpy, torch or onnx.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_SIM_SIZE",
    "DEFAULT_SIZE",
    "ExportResult",
    "default_out_dir",
    "export_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from engine.export import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
