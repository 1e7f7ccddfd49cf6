"""HTP context binaries compiled offline with onnxruntime-qnn, and runs on its x86 HTP simulator.

onnxruntime-qnn is an execution-provider plug-in: its library is registered with onnxruntime, then
added to a session for the QNN device (design.md section 8). Its x86 wheel carries libQnnHtp.so,
which prepares graphs for any HTP arch and simulates them; it has no libQnnCpu.so.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine.export.onnx_export import INPUT_NAME
from engine.protocol import UserError

EP_NAME = "QNNExecutionProvider"
SOC_MODEL = 43  # QCS8550 / SM8550 in QNN's soc table
HTP_ARCH = 73  # Hexagon v73
# Graph finalization O3: best device performance, slower prepare (seconds here).
OPTIMIZATION_MODE = 3


@dataclass(frozen=True)
class QnnTarget:
    soc_model: int = SOC_MODEL
    htp_arch: int = HTP_ARCH
    optimization_mode: int = OPTIMIZATION_MODE

    def provider_options(self) -> dict[str, str]:
        return {"backend_type": "htp", "soc_model": str(self.soc_model), "htp_arch": str(self.htp_arch),
                "htp_graph_finalization_optimization_mode": str(self.optimization_mode)}


def qnn_versions() -> dict[str, str]:
    try:
        import onnxruntime_qnn
    except ImportError:
        return {}
    info = onnxruntime_qnn.build_and_package_info
    return {"onnxruntime_qnn": str(getattr(info, "__version__", "?")),
            "qnn_sdk": str(getattr(info, "qnn_version", "?"))}


def qnn_devices() -> list[Any]:
    """The QNN EP devices of onnxruntime, registering onnxruntime-qnn's library the first time."""
    import onnxruntime as ort

    try:
        import onnxruntime_qnn
    except ImportError as error:
        raise UserError("onnxruntime-qnn is not installed: no HTP compiler or simulator",
                        "pip install onnxruntime-qnn (Linux x86-64 / Windows), or pass --no-htp") from error
    devices = [device for device in ort.get_ep_devices() if device.ep_name == EP_NAME]
    if not devices:
        library = onnxruntime_qnn.get_library_path()
        if not os.path.isfile(onnxruntime_qnn.get_qnn_htp_path()):
            raise UserError(f"onnxruntime-qnn has no libQnnHtp.so beside {library}",
                            "reinstall onnxruntime-qnn, or pass --no-htp")
        ort.register_execution_provider_library(EP_NAME, library)
        devices = [device for device in ort.get_ep_devices() if device.ep_name == EP_NAME]
    if not devices:
        raise UserError("onnxruntime-qnn registered no device",
                        "check the onnxruntime / onnxruntime-qnn versions")
    return devices


@contextlib.contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Silence what the QNN libraries print straight to fd 1/2 (thread-local config notes, warnings)."""
    saved = []
    try:
        for fd in (1, 2):
            sys.stdout.flush() if fd == 1 else sys.stderr.flush()
            saved.append((fd, os.dup(fd)))
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd, _ in saved:
            os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:  # no real file descriptors (an embedding host): leave output alone
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        saved = []
    try:
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _session(model: Path, target: QnnTarget, configs: dict[str, str]) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the EP warns about Windows-only features on every session
    for key, value in {"session.disable_cpu_ep_fallback": "1", **configs}.items():
        options.add_session_config_entry(key, value)
    options.add_provider_for_devices(qnn_devices(), target.provider_options())
    with _quiet_native_output():
        return ort.InferenceSession(str(model), options)


def context_binary_of(context_model: Path) -> Path:
    """The .bin an embed-mode-0 context model points to."""
    model = onnx.load(str(context_model))
    for node in model.graph.node:
        if node.op_type == "EPContext":
            for attribute in node.attribute:
                if attribute.name == "ep_cache_context":
                    return context_model.parent / attribute.s.decode()
    raise UserError(f"{context_model.name} holds no EPContext node")


def compile_context(qdq_model: Path, context_model: Path,
                    target: QnnTarget | None = None) -> tuple[Path, Path]:
    """Compile the whole graph for HTP into context_model (*_ctx.onnx) + its .bin; both paths.

    The CPU fallback is disabled, so a node HTP cannot take is an error, not a silent CPU island.
    """
    target = target or QnnTarget()
    for stale in (context_model, context_model.with_name(f"{context_model.stem}_qnn.bin")):
        stale.unlink(missing_ok=True)
    try:
        session = _session(qdq_model, target, {"ep.context_enable": "1", "ep.context_embed_mode": "0",
                                               "ep.context_file_path": str(context_model)})
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise UserError(f"HTP compile of {qdq_model.name} failed: {error}",
                        "every op must be supported by HTP v73; see the message above") from error
    del session
    if not context_model.is_file():
        raise UserError(f"onnxruntime-qnn wrote no {context_model.name}")
    binary = context_binary_of(context_model)
    if not binary.is_file():
        raise UserError(f"onnxruntime-qnn wrote {context_model.name} but not {binary.name}")
    return context_model, binary


class HtpSimulator:
    """A context model loaded on the x86 HTP simulator (slow: seconds for 64x64)."""

    def __init__(self, context_model: Path, target: QnnTarget | None = None) -> None:
        try:
            self.session = _session(context_model, target or QnnTarget(), {})
        except Exception as error:
            raise UserError(f"the HTP simulator could not load {context_model.name}: {error}") from error
        self.input_shape = tuple(self.session.get_inputs()[0].shape)

    def run(self, frame: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: frame})[0]
