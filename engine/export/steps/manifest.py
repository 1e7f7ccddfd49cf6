"""Step "manifest": manifest.json with every artefact's sha256, the figures, versions, a latency ESTIMATE."""

from __future__ import annotations

import time
from typing import Any

from engine.export.steps.context import ExportContext, Outcome, outcome
from engine.files import sha256_file


def run(ctx: ExportContext) -> Outcome:
    from engine.export import manifest as mf

    estimate = mf.latency_estimate(ctx.made["macs"], ctx.quant)
    artefacts = [mf.artefact(path, ctx.out, role) for path, role in ctx.roles]
    ctx.made.update(artefacts=artefacts, manifest=mf.write_manifest(ctx.out, _content(ctx, estimate, artefacts)))
    return outcome(f"{len(artefacts)} artefacts hashed; device latency ESTIMATE {estimate['float_ms']} ms "
                   f"float, {estimate['w8a8_ms']} ms w8a8 (MACs-scaled from AI Hub's x4v3, not measured)",
                   artefacts=len(artefacts), latency_estimate=estimate)


def _content(ctx: ExportContext, estimate: dict[str, Any], artefacts: list[dict[str, Any]]) -> dict[str, Any]:
    from engine.export import manifest as mf
    from engine.export.onnx_export import OPSET
    from engine.export.qnn_compile import HTP_ARCH, SOC_MODEL

    checkpoint = ctx.checkpoint
    return {
        "format": "srcockpit-export/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": {"path": str(checkpoint.resolve()), "sha256": sha256_file(checkpoint),
                       "bytes": checkpoint.stat().st_size},
        "target": {"device": "Qualcomm QCS8550", "soc_model": SOC_MODEL, "htp_arch": f"v{HTP_ARCH}",
                   "backend": "QNN HTP"},
        "opset": OPSET,
        "quantization": ctx.quant,
        "parameters": ctx.made["params"],
        "macs_per_frame": ctx.made["macs"],
        "input_size": list(ctx.size),
        "figures": ctx.figures,
        "latency_estimate": estimate,
        "versions": mf.versions(),
        "artefacts": artefacts,
    }
