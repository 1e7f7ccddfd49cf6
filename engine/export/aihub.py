"""Optional Qualcomm AI Hub compile + profile on "QCS8550 (Proxy)", only with qai-hub and a token.

Nothing here pretends: without qai-hub or a token the result says what to install or configure;
with them, job ids and links are reported as they are created, and the device latency only when the
profile job has really finished.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEVICE = "QCS8550 (Proxy)"
COMPILE_OPTIONS = "--target_runtime qnn_context_binary"


@dataclass
class AiHubResult:
    status: str  # "unavailable", "not configured", "failed", "profiled"
    message: str
    jobs: dict[str, str] = field(default_factory=dict)  # kind -> job URL
    latency_ms: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def hub_config_path() -> Path:
    return Path(os.environ.get("QAIHUB_CLIENT_INI", Path.home() / ".qai_hub" / "client.ini"))


def availability() -> AiHubResult | None:
    """None when qai-hub is importable and configured; else why not, as a result."""
    if importlib.util.find_spec("qai_hub") is None:
        return AiHubResult("unavailable", "AI Hub not used: qai-hub is not installed "
                           "(pip install 'srcockpit[aihub]' or pip install qai-hub, then "
                           "qai-hub configure --api_token <token from https://app.aihub.qualcomm.com>)")
    if not hub_config_path().is_file():
        return AiHubResult("not configured", f"AI Hub not used: qai-hub is installed but has no token "
                           f"({hub_config_path()} missing); run qai-hub configure --api_token <token>")
    return None


def submit(model: Path, size: tuple[int, int], say: Callable[[str], None] = print) -> AiHubResult:
    """Compile the QDQ model to a QNN context binary on AI Hub, then profile it on the proxy device."""
    missing = availability()
    if missing is not None:
        return missing
    import qai_hub as hub

    jobs: dict[str, str] = {}
    try:
        device = hub.Device(DEVICE)
        input_specs = {"input": ((1, 3, *size), "float32")}
        compile_job = hub.submit_compile_job(model=str(model), device=device, input_specs=input_specs,
                                             options=COMPILE_OPTIONS, name=f"srcockpit {model.stem}")
        jobs["compile"] = str(getattr(compile_job, "url", compile_job))
        say(f"AI Hub compile job submitted: {jobs['compile']}")
        target = compile_job.get_target_model()
        if target is None:
            return AiHubResult("failed", f"AI Hub compile failed: {compile_job.get_status()}", jobs)
        profile_job = hub.submit_profile_job(model=target, device=device, name=f"srcockpit {model.stem}")
        jobs["profile"] = str(getattr(profile_job, "url", profile_job))
        say(f"AI Hub profile job submitted: {jobs['profile']}")
        profile = profile_job.download_profile()
    except Exception as error:  # network, auth and job errors all land here; none is fatal to the export
        return AiHubResult("failed", f"AI Hub: {error.__class__.__name__}: {error}", jobs)
    summary = profile.get("execution_summary", {}) if isinstance(profile, dict) else {}
    micros = summary.get("estimated_inference_time")
    latency = None if micros is None else micros / 1000
    message = (f"AI Hub measured {latency:.2f} ms per frame on {DEVICE}" if latency is not None
               else "AI Hub profile finished without an inference time")
    return AiHubResult("profiled", message, jobs, latency, {"execution_summary": summary})
