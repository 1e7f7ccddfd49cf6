"""Steps "onnx" and "onnx_dynamic": the float models, each checked against torch with onnxruntime."""

from __future__ import annotations

import numpy as np

from engine.export.steps.context import ExportContext, Outcome, outcome

DYNAMIC_CHECK_SIZES = ((24, 40), (37, 53))
LIMIT = 1e-5


def static(ctx: ExportContext) -> Outcome:
    """The deliverable's float model, static 1x3xHxW."""
    from engine.export.onnx_export import OPSET, export_onnx, op_counts, verify_onnx

    height, width = ctx.size
    net = ctx.made["net"]
    rng = np.random.default_rng(ctx.seed)
    probe = [rng.random((1, 3, height, width), dtype=np.float32)]
    model = export_onnx(net, ctx.out / f"{ctx.stem}_fp32_{height}x{width}.onnx", ctx.size)
    error = verify_onnx(net, model, probe)
    ctx.roles.append((model, f"float ONNX, static 1x3x{height}x{width}, opset {OPSET}"))
    ctx.figures["onnx"] = {"max_abs_error": error, "limit": LIMIT, "ops": op_counts(model),
                           "checked_on": "1 random frame at the static size, onnxruntime CPU"}
    ctx.made.update(float_model=model, rng=rng)
    return outcome(f"max abs error vs torch {error:.2e} (< 1e-5)", max_abs_error=error)


def dynamic(ctx: ExportContext) -> Outcome:
    """The float model with dynamic height and width, checked at sizes other than the static one."""
    from engine.export.onnx_export import OPSET, export_onnx, verify_onnx

    net, rng = ctx.made["net"], ctx.made["rng"]
    model = export_onnx(net, ctx.out / f"{ctx.stem}_fp32_dynamic.onnx", None)
    probe = [rng.random((1, 3, h, w), dtype=np.float32) for h, w in DYNAMIC_CHECK_SIZES]
    error = verify_onnx(net, model, probe)
    ctx.roles.append((model, f"float ONNX, dynamic height/width, opset {OPSET}"))
    checked = ", ".join(f"{h}x{w}" for h, w in DYNAMIC_CHECK_SIZES)
    ctx.figures["onnx_dynamic"] = {"max_abs_error": error, "limit": LIMIT, "checked_sizes": checked}
    ctx.made["dynamic_model"] = model
    return outcome(f"max abs error vs torch {error:.2e} at {checked}", max_abs_error=error)
