"""Step "quantize": the QDQ model (per-channel weights), its PSNR against float on calibration frames."""

from __future__ import annotations

from engine.export.steps.context import ExportContext, Outcome, outcome
from engine.protocol import UserError


def run(ctx: ExportContext) -> Outcome:
    from engine.export.quantize import cpu_outputs, mean_psnr, quantize_qdq

    height, width = ctx.size
    float_model, frames = ctx.made["float_model"], ctx.made["frames"]
    qdq_model = quantize_qdq(float_model, ctx.out / f"{ctx.stem}_{ctx.quant}_{height}x{width}.onnx", frames,
                             ctx.quant)
    checked = frames[:ctx.eval_frames]
    psnr = mean_psnr(cpu_outputs(float_model, checked), cpu_outputs(qdq_model, checked))
    ctx.roles.append((qdq_model, f"QDQ ONNX {ctx.quant} (per-channel weights), static 1x3x{height}x{width}"))
    low = psnr < ctx.min_psnr
    ctx.figures["quantize"] = {"mode": ctx.quant, "psnr_vs_float_db": psnr, "min_psnr_db": ctx.min_psnr,
                               "frames": len(checked), "runtime": "onnxruntime CPU (QDQ simulated)",
                               "below_threshold_forced": bool(low and ctx.force)}
    message = f"{ctx.quant} PSNR vs float {psnr:.2f} dB on {len(checked)} calibration frames"
    if low and not ctx.force:
        raise UserError(f"{message}: below --min-psnr {ctx.min_psnr:g} dB",
                        "try --quant a16w8, other calibration images (--calib), or --force to keep it")
    ctx.made["qdq_model"] = qdq_model
    return outcome(message + (f" (below {ctx.min_psnr:g} dB, kept by --force)" if low else ""),
                   "warning" if low else "done", psnr_db=psnr)
