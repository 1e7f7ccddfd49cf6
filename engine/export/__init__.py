"""Export for Qualcomm QCS8550: ONNX, QDQ, HTP v73 context binary, QNN SDK script, AI Hub, manifest.

The one call a screen or the demo needs is `export_checkpoint` (or `run_export_job` for an engine job
with its own event log); see engine/export/pipeline.py for the steps and their figures.
"""

from engine.export.pipeline import (
    DEFAULT_SIM_SIZE,
    DEFAULT_SIZE,
    STEPS,
    ExportResult,
    StepReport,
    default_out_dir,
    export_checkpoint,
    parse_size,
    run_export_job,
)

__all__ = [
    "DEFAULT_SIM_SIZE",
    "DEFAULT_SIZE",
    "STEPS",
    "ExportResult",
    "StepReport",
    "default_out_dir",
    "export_checkpoint",
    "parse_size",
    "run_export_job",
]
