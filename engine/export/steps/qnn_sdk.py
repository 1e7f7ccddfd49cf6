"""Step "qnn_sdk": the QNN SDK build script and configs, run when QNN_SDK_ROOT is set."""

from __future__ import annotations

from engine.export.steps.context import ExportContext, Outcome, outcome

SDK_CALIBRATION_FRAMES = 8


def run(ctx: ExportContext) -> Outcome:
    from engine.export.qnn_sdk import run_sdk_script, write_sdk_files

    folder = ctx.out / "qnn_sdk"
    write_sdk_files(folder, ctx.made["float_model"], ctx.made["frames"][:SDK_CALIBRATION_FRAMES], ctx.quant,
                    ctx.size)
    sdk = run_sdk_script(folder)
    ctx.figures["qnn_sdk"] = {"status": sdk.status, "message": sdk.message, "script": sdk.script.relative_to(ctx.out)}
    role = "QNN SDK build (script, configs, calibration raws)" if sdk.status == "written" else "QNN SDK build"
    ctx.roles += [(path, role) for path in sdk.files]
    return outcome(sdk.message, "warning" if sdk.status == "failed" else "done", sdk_status=sdk.status)
