"""Steps "htp_compile" and "htp_sim": the HTP v73 context binary, and the x86 HTP simulator's check of it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.export.steps.context import ExportContext, Outcome, outcome, skipped
from engine.protocol import UserError

NO_HTP = "skipped (--no-htp)"


def compile_binary(ctx: ExportContext) -> Outcome:
    from engine.export.qnn_compile import QnnTarget, compile_context, qnn_versions

    if not ctx.htp:
        return skipped(NO_HTP)
    target, qdq_model = QnnTarget(), ctx.made["qdq_model"]
    started = time.monotonic()
    context, binary = compile_context(qdq_model, ctx.out / f"{qdq_model.stem}_ctx.onnx", target)
    seconds = time.monotonic() - started
    ctx.roles += [(context, f"HTP v{target.htp_arch} context model (QCS8550, soc {target.soc_model}), "
                            "EPContext, loads the .bin beside it"),
                  (binary, f"HTP v{target.htp_arch} context binary, {ctx.quant}")]
    size = binary.stat().st_size
    ctx.figures["htp_compile"] = {"seconds": round(seconds, 2), "binary_bytes": size,
                                  "soc_model": target.soc_model, "htp_arch": target.htp_arch,
                                  "optimization_mode": target.optimization_mode, **qnn_versions()}
    ctx.made["context_binary"] = binary
    return outcome(f"{binary.name}, {size / 1e6:.2f} MB, compiled in {seconds:.1f} s",
                   compile_s=round(seconds, 2), binary_bytes=size)


def simulate(ctx: ExportContext) -> Outcome:
    """The deliverable's QDQ model at sim_size on the simulator; a PSNR under min_psnr stops unless forced."""
    if not ctx.htp:
        return skipped(NO_HTP)
    h, w = ctx.sim_size
    figures = _simulate(ctx, ctx.out / "htp_sim", f"{ctx.stem}_{ctx.quant}")
    psnr = figures["psnr_vs_float_db"]
    low = psnr < ctx.min_psnr
    message = (f"PSNR vs float {psnr:.2f} dB on {ctx.sim_frames} frames of {h}x{w} "
               f"(vs onnxruntime QDQ {figures['psnr_vs_cpu_qdq_db']:.1f} dB)")
    ctx.figures["htp_sim"] = figures
    if low and not ctx.force:
        raise UserError(f"HTP simulator {message}: below --min-psnr {ctx.min_psnr:g} dB",
                        "try --quant a16w8, or --force to keep it")
    figures["below_threshold_forced"] = bool(low and ctx.force)
    return outcome(message, "warning" if low else "done", psnr_db=psnr)


def _simulate(ctx: ExportContext, folder: Path, name: str) -> dict[str, Any]:
    """The QDQ model (same weights and scales) re-sized to sim_size, compiled, simulated; its figures."""
    from engine.export.calibration import make_frames
    from engine.export.onnx_export import reshape_static_model, torch_outputs
    from engine.export.qnn_compile import HtpSimulator, QnnTarget, compile_context
    from engine.export.quantize import cpu_outputs, mean_psnr

    (h, w), count, target = ctx.sim_size, ctx.sim_frames, QnnTarget()
    folder.mkdir(parents=True, exist_ok=True)
    small = reshape_static_model(ctx.made["qdq_model"], folder / f"{name}_{h}x{w}.onnx", ctx.sim_size,
                                 ctx.made["arch"].upscale)
    started = time.monotonic()
    context, binary = compile_context(small, folder / f"{small.stem}_ctx.onnx", target)
    compile_s = time.monotonic() - started
    frames = make_frames(ctx.made["images"], ctx.sim_size, count, ctx.seed + 1)
    simulator = HtpSimulator(context, target)
    started = time.monotonic()
    htp_out = [simulator.run(frame) for frame in frames]
    run_s = time.monotonic() - started
    float_out = torch_outputs(ctx.made["net"], frames)
    qdq_out = cpu_outputs(small, frames)
    ctx.roles += [(small, f"verification only: the QDQ model at {h}x{w} (same weights and scales)"),
                  (context, f"verification only: HTP context model at {h}x{w}"),
                  (binary, f"verification only: HTP context binary at {h}x{w}")]
    worst = max(np.abs(a - b).max() for a, b in zip(qdq_out, htp_out, strict=True))
    return {"size": [h, w], "frames": count, "psnr_vs_float_db": mean_psnr(float_out, htp_out),
            "psnr_vs_cpu_qdq_db": mean_psnr(qdq_out, htp_out), "max_abs_error_vs_cpu_qdq": float(worst),
            "compile_seconds": round(compile_s, 2), "simulator_seconds_per_frame": round(run_s / count, 2),
            "runtime": f"onnxruntime-qnn HTP simulator (x86), v{target.htp_arch} / soc {target.soc_model}"}
