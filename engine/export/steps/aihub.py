"""Step "aihub": compile and profile on Qualcomm AI Hub's "QCS8550 (Proxy)" (with --aihub and a token)."""

from __future__ import annotations

from dataclasses import asdict

from engine.export.steps.context import ExportContext, Outcome, outcome, skipped


def run(ctx: ExportContext) -> Outcome:
    from engine.export import aihub as hub

    if not ctx.aihub:
        reason = hub.availability()
        ctx.figures["aihub"] = {"status": "not requested",
                                "message": "pass --aihub to compile and profile on QCS8550 (Proxy)"
                                           + (f"; {reason.message}" if reason else "")}
        return skipped("not requested (--aihub)")
    result = hub.submit(ctx.made["qdq_model"], ctx.size, say=ctx.say)
    ctx.figures["aihub"] = asdict(result)
    return outcome(result.message, "done" if result.status == "profiled" else "warning",
                   aihub_status=result.status, jobs=result.jobs, latency_ms=result.latency_ms)
