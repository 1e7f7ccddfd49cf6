"""`export_checkpoint`: checkpoint -> ONNX -> QDQ -> HTP v73 context binary, each step verified.

Steps, in order (each reports a figure as soon as it has one, design.md section 8):
  load          read the checkpoint (SRVGGNetCompact only), parameters, MACs per frame
  onnx          static 1x3xHxW, opset 17; max |torch - onnxruntime|, < 1e-5 required
  onnx_dynamic  dynamic H and W; the same check at two other sizes
  calibration   frames at the static size from the run's validation LR images, a folder or built-ins
  quantize      QDQ (a8w8 or a16w8, per-channel weights); PSNR against the float model on the frames
  htp_compile   HTP v73 context binary for QCS8550 (soc 43) with onnxruntime-qnn; seconds, bytes
  htp_sim       the same QDQ model at a small size on the x86 HTP simulator; PSNR against float
  qnn_sdk       QNN SDK script + configs written (run when QNN_SDK_ROOT is set)
  aihub         AI Hub compile + profile on "QCS8550 (Proxy)" (with --aihub and a token)
  manifest      manifest.json: artefacts with sha256, figures, versions, latency ESTIMATE
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.files import sha256_file
from engine.protocol import ProgressFn, UserError

STEPS = (
    ("load", "Load checkpoint"),
    ("onnx", "ONNX export (static)"),
    ("onnx_dynamic", "ONNX export (dynamic H/W)"),
    ("calibration", "Calibration frames"),
    ("quantize", "QDQ quantization"),
    ("htp_compile", "HTP v73 context binary"),
    ("htp_sim", "HTP simulator check"),
    ("qnn_sdk", "QNN SDK script"),
    ("aihub", "Qualcomm AI Hub"),
    ("manifest", "Manifest"),
)
DEFAULT_SIZE = (270, 480)  # a 540p frame at x2
DEFAULT_SIM_SIZE = (64, 64)  # the simulator takes ~3 s per 64x64 frame, ~30 s per 270x480
MAX_SIDE = 4096
DYNAMIC_CHECK_SIZES = ((24, 40), (37, 53))
SDK_CALIBRATION_FRAMES = 8


@dataclass
class StepReport:
    """One step's state as the cockpit shows it; figures carry the verification numbers."""

    index: int  # 1-based
    total: int
    name: str
    title: str
    status: str  # "running", "done", "warning", "skipped"
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


StepFn = Callable[[StepReport], None]


@dataclass
class ExportResult:
    out_dir: Path
    manifest: Path
    figures: dict[str, Any]
    artefacts: list[dict[str, Any]]
    steps: list[StepReport]


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """'270x480' -> (270, 480): height x width, positive integers up to MAX_SIDE."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match:
        raise UserError(f"{option} {text!r} is not HEIGHTxWIDTH",
                        f"e.g. {option} 270x480 (a 540p frame at x2)")
    size = int(match[1]), int(match[2])
    if min(size) < 1 or max(size) > MAX_SIDE:
        raise UserError(f"{option} {text!r}: each side must be between 1 and {MAX_SIDE} pixels",
                        f"e.g. {option} 270x480")
    return size


def default_out_dir(checkpoint: Path) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}_qcs8550")


def prepare_output(out_dir: Path, force: bool) -> None:
    """Refuse a non-empty output folder without force; with force, drop the artefacts of a former export."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output {out_dir} is a file", "give a folder with -o")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise UserError(f"output folder {out_dir} already exists and is not empty",
                            "pass --force to overwrite it, or choose another with -o")
        from engine.export.manifest import MANIFEST

        old = out_dir / MANIFEST
        if old.is_file():
            import json

            try:
                entries = json.loads(old.read_text()).get("artefacts", [])
            except ValueError:
                entries = []
            for entry in entries:
                path = (out_dir / str(entry.get("path", ""))).resolve()
                if path.is_file() and out_dir.resolve() in path.parents:
                    path.unlink()
            old.unlink()
        for folder in ("htp_sim", "qnn_sdk"):
            shutil.rmtree(out_dir / folder, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def check_request(checkpoint: Path, size: tuple[int, int], sim_size: tuple[int, int], quant: str,
                  calib: Path | str | None) -> tuple[Any, Any]:
    """Every check before a folder is made: the network (loaded), sizes, quantization, calibration source.

    Returns (net, arch): an eval-mode SRVGGNetCompact on the CPU and its SRVGGArch.
    """
    from engine.export.quantize import check_mode
    from engine.weights.precheck import require_checkpoint_file

    require_checkpoint_file(checkpoint)
    for option, value in (("--size", size), ("--sim-size", sim_size)):
        if (len(value) != 2 or not all(isinstance(side, int) for side in value)
                or min(value) < 1 or max(value) > MAX_SIDE):
            raise UserError(f"{option} {value!r}: need two positive integers up to {MAX_SIDE}")
    check_mode(quant)
    loaded = _load(checkpoint)  # the checkpoint first: a wrong file is the problem to report, not calibration
    if calib is None:
        from engine.export.calibration import run_validation_folder

        if run_validation_folder(checkpoint) is None:
            raise UserError(f"no calibration images: {checkpoint} is not inside a basicsr run with a "
                            "validation set (experiments/<name>/models/ beside the options .yml)",
                            "give a folder of typical frames with --calib DIR (or --calib builtin for "
                            "scikit-image's sample photos)")
    elif str(calib) != "builtin":
        from engine.data.images import require_folder

        require_folder(Path(calib).expanduser(), "calibration folder")
    return loaded


def _load(checkpoint: Path) -> tuple[Any, Any]:
    from engine.srvgg import load_network

    net, arch = load_network(checkpoint)
    if arch.num_in_ch != 3 or arch.num_out_ch != 3:
        raise UserError(f"{checkpoint}: {arch.num_in_ch}->{arch.num_out_ch} channels; export handles RGB only",
                        "give a 3-channel SRVGGNetCompact checkpoint")
    return net, arch


class _Steps:
    """Runs the named steps in order and tells on_step / progress about each."""

    def __init__(self, progress: ProgressFn | None, on_step: StepFn | None) -> None:
        self.progress, self.on_step = progress, on_step
        self.done: list[StepReport] = []
        self._index = {name: index for index, (name, _) in enumerate(STEPS, 1)}
        self._titles = dict(STEPS)
        self._current: StepReport | None = None
        self._started = 0.0

    def start(self, name: str, message: str = "") -> None:
        index = self._index[name]
        self._current = StepReport(index, len(STEPS), name, self._titles[name], "running", message)
        self._started = time.monotonic()
        if self.progress:
            self.progress(index - 1, len(STEPS), f"{self._titles[name]}...")
        if self.on_step:
            self.on_step(self._current)

    def finish(self, message: str, status: str = "done", **figures: Any) -> StepReport:
        assert self._current is not None
        report = StepReport(self._current.index, self._current.total, self._current.name, self._current.title,
                            status, message, figures, round(time.monotonic() - self._started, 3))
        self.done.append(report)
        self._current = None
        if self.progress:
            self.progress(report.index, report.total, f"{report.title}: {message}")
        if self.on_step:
            self.on_step(report)
        return report

    def position(self, name: str) -> int:
        return self._index[name] - 1

    def skip(self, name: str, message: str) -> StepReport:
        self.start(name)
        return self.finish(message, "skipped")


def export_checkpoint(
    checkpoint: Path | str,
    out_dir: Path | str | None = None,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    calib: Path | str | None = None,
    quant: str = "a8w8",
    min_psnr: float = 40.0,
    force: bool = False,
    htp: bool = True,
    sim_size: tuple[int, int] = DEFAULT_SIM_SIZE,
    sim_frames: int = 2,
    calib_frames: int = 16,
    eval_frames: int = 8,
    aihub: bool = False,
    seed: int = 0,
    progress: ProgressFn | None = None,
    on_step: StepFn | None = None,
    output_prepared: bool = False,
) -> ExportResult:
    """Export an SRVGGNetCompact checkpoint for QCS8550 and verify every step; see the module doc.

    size / sim_size are (height, width) of the LR input. calib: a folder of images, "builtin" for
    scikit-image's photos, or None for the validation LR folder of the basicsr run that holds the
    checkpoint. A PSNR (quantized or simulated HTP against float) below min_psnr stops the export
    with a UserError unless force; force also lets out_dir exist. progress(done, total, message) gets
    every step start and end; on_step gets a StepReport (figures included) at the same moments.
    """
    from engine.export import aihub as hub
    from engine.export import manifest as mf
    from engine.export.calibration import load_sources, make_frames
    from engine.export.onnx_export import OPSET, conv_macs, export_onnx, op_counts, verify_onnx
    from engine.export.qnn_compile import HTP_ARCH, SOC_MODEL, QnnTarget, compile_context, qnn_versions
    from engine.export.qnn_sdk import run_sdk_script, write_sdk_files
    from engine.export.quantize import cpu_outputs, mean_psnr, quantize_qdq
    from engine.srvgg import count_parameters

    checkpoint = Path(checkpoint).expanduser()
    size, sim_size = tuple(size), tuple(sim_size)
    out = Path(out_dir).expanduser() if out_dir is not None else default_out_dir(checkpoint)
    steps = _Steps(progress, on_step)
    figures: dict[str, Any] = {}
    roles: list[tuple[Path, str]] = []
    height, width = size

    steps.start("load", str(checkpoint))
    net, arch = check_request(checkpoint, size, sim_size, quant, calib)
    params = count_parameters(net.state_dict())
    macs = conv_macs(net, size)
    if not output_prepared:
        prepare_output(out, force)
    stem = checkpoint.stem
    figures["model"] = {"arch": "SRVGGNetCompact", **asdict(arch), "label": arch.label, "parameters": params,
                        "input": [1, 3, height, width], "output": [1, 3, height * arch.upscale,
                                                                  width * arch.upscale],
                        "macs_per_frame": macs, "gmacs_per_frame": round(macs / 1e9, 3)}
    steps.finish(f"{arch.label}, {params:,} parameters, {macs / 1e9:.2f} GMAC per {height}x{width} frame",
                 parameters=params, macs_per_frame=macs, arch=arch.label)

    # ONNX, static: the deliverable's float model.
    steps.start("onnx")
    rng = np.random.default_rng(seed)
    probe = [rng.random((1, 3, height, width), dtype=np.float32)]
    float_model = export_onnx(net, out / f"{stem}_fp32_{height}x{width}.onnx", size)
    error = verify_onnx(net, float_model, probe)
    roles.append((float_model, f"float ONNX, static 1x3x{height}x{width}, opset {OPSET}"))
    figures["onnx"] = {"max_abs_error": error, "limit": 1e-5, "ops": op_counts(float_model),
                       "checked_on": "1 random frame at the static size, onnxruntime CPU"}
    steps.finish(f"max abs error vs torch {error:.2e} (< 1e-5)", max_abs_error=error)

    steps.start("onnx_dynamic")
    dynamic_model = export_onnx(net, out / f"{stem}_fp32_dynamic.onnx", None)
    dynamic_probe = [rng.random((1, 3, h, w), dtype=np.float32) for h, w in DYNAMIC_CHECK_SIZES]
    dynamic_error = verify_onnx(net, dynamic_model, dynamic_probe)
    roles.append((dynamic_model, f"float ONNX, dynamic height/width, opset {OPSET}"))
    checked = ", ".join(f"{h}x{w}" for h, w in DYNAMIC_CHECK_SIZES)
    figures["onnx_dynamic"] = {"max_abs_error": dynamic_error, "limit": 1e-5, "checked_sizes": checked}
    steps.finish(f"max abs error vs torch {dynamic_error:.2e} at {checked}", max_abs_error=dynamic_error)

    steps.start("calibration")
    source, images = load_sources(calib, checkpoint)
    frames = make_frames(images, size, calib_frames, seed)
    figures["calibration"] = {"source": source, "images": len(images), "frames": len(frames),
                              "frame_size": [height, width],
                              "method": "random crops (upscaled to cover when small) and whole-image resizes"}
    steps.finish(f"{len(frames)} frames of {height}x{width} from {len(images)} images ({source})",
                 frames=len(frames), images=len(images), source=source)

    steps.start("quantize", quant)
    qdq_model = quantize_qdq(float_model, out / f"{stem}_{quant}_{height}x{width}.onnx", frames, quant)
    checked = frames[:eval_frames]
    quant_psnr = mean_psnr(cpu_outputs(float_model, checked), cpu_outputs(qdq_model, checked))
    roles.append((qdq_model, f"QDQ ONNX {quant} (per-channel weights), static 1x3x{height}x{width}"))
    low = quant_psnr < min_psnr
    figures["quantize"] = {"mode": quant, "psnr_vs_float_db": quant_psnr, "min_psnr_db": min_psnr,
                           "frames": len(checked), "runtime": "onnxruntime CPU (QDQ simulated)",
                           "below_threshold_forced": bool(low and force)}
    message = f"{quant} PSNR vs float {quant_psnr:.2f} dB on {len(checked)} calibration frames"
    if low and not force:
        raise UserError(f"{message}: below --min-psnr {min_psnr:g} dB",
                        "try --quant a16w8, other calibration images (--calib), or --force to keep it")
    steps.finish(message + (f" (below {min_psnr:g} dB, kept by --force)" if low else ""),
                 "warning" if low else "done", psnr_db=quant_psnr)

    if htp:
        target = QnnTarget()
        steps.start("htp_compile")
        started = time.monotonic()
        context, binary = compile_context(qdq_model, out / f"{qdq_model.stem}_ctx.onnx", target)
        seconds = time.monotonic() - started
        roles += [(context, f"HTP v{target.htp_arch} context model (QCS8550, soc {target.soc_model}), "
                            "EPContext, loads the .bin beside it"),
                  (binary, f"HTP v{target.htp_arch} context binary, {quant}")]
        figures["htp_compile"] = {"seconds": round(seconds, 2), "binary_bytes": binary.stat().st_size,
                                  "soc_model": target.soc_model, "htp_arch": target.htp_arch,
                                  "optimization_mode": target.optimization_mode, **qnn_versions()}
        steps.finish(f"{binary.name}, {binary.stat().st_size / 1e6:.2f} MB, compiled in {seconds:.1f} s",
                     compile_s=round(seconds, 2), binary_bytes=binary.stat().st_size)

        steps.start("htp_sim", f"{sim_size[0]}x{sim_size[1]}")
        figures["htp_sim"] = _simulate(net, qdq_model, out / "htp_sim", f"{stem}_{quant}", sim_size,
                                       sim_frames, images, arch.upscale, seed, target, roles)
        sim_psnr = figures["htp_sim"]["psnr_vs_float_db"]
        low = sim_psnr < min_psnr
        message = (f"PSNR vs float {sim_psnr:.2f} dB on {sim_frames} frames of {sim_size[0]}x{sim_size[1]} "
                   f"(vs onnxruntime QDQ {figures['htp_sim']['psnr_vs_cpu_qdq_db']:.1f} dB)")
        if low and not force:
            raise UserError(f"HTP simulator {message}: below --min-psnr {min_psnr:g} dB",
                            "try --quant a16w8, or --force to keep it")
        figures["htp_sim"]["below_threshold_forced"] = bool(low and force)
        steps.finish(message, "warning" if low else "done", psnr_db=sim_psnr)
    else:
        steps.skip("htp_compile", "skipped (--no-htp)")
        steps.skip("htp_sim", "skipped (--no-htp)")

    steps.start("qnn_sdk")
    sdk_dir = out / "qnn_sdk"
    write_sdk_files(sdk_dir, float_model, frames[:SDK_CALIBRATION_FRAMES], quant, size)
    sdk = run_sdk_script(sdk_dir)
    figures["qnn_sdk"] = {"status": sdk.status, "message": sdk.message, "script": sdk.script.relative_to(out)}
    for path in sdk.files:
        roles.append((path, "QNN SDK build (script, configs, calibration raws)" if sdk.status == "written"
                      else "QNN SDK build"))
    steps.finish(sdk.message, "warning" if sdk.status == "failed" else "done", sdk_status=sdk.status)

    if aihub:
        steps.start("aihub")

        def say(text: str) -> None:
            if progress:
                progress(steps.position("aihub"), len(STEPS), text)

        result = hub.submit(qdq_model, size, say=say)
        figures["aihub"] = asdict(result)
        steps.finish(result.message, "done" if result.status == "profiled" else "warning",
                     aihub_status=result.status, jobs=result.jobs, latency_ms=result.latency_ms)
    else:
        reason = hub.availability()
        figures["aihub"] = {"status": "not requested",
                            "message": "pass --aihub to compile and profile on QCS8550 (Proxy)"
                                       + (f"; {reason.message}" if reason else "")}
        steps.skip("aihub", "not requested (--aihub)")

    steps.start("manifest")
    estimate = mf.latency_estimate(macs, quant)
    artefacts = [mf.artefact(path, out, role) for path, role in roles]
    content = {
        "format": "srcockpit-export/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": {"path": str(checkpoint.resolve()), "sha256": sha256_file(checkpoint),
                       "bytes": checkpoint.stat().st_size},
        "target": {"device": "Qualcomm QCS8550", "soc_model": SOC_MODEL, "htp_arch": f"v{HTP_ARCH}",
                   "backend": "QNN HTP"},
        "opset": OPSET,
        "quantization": quant,
        "parameters": params,
        "macs_per_frame": macs,
        "input_size": [height, width],
        "figures": figures,
        "latency_estimate": estimate,
        "versions": mf.versions(),
        "artefacts": artefacts,
    }
    manifest = mf.write_manifest(out, content)
    steps.finish(f"{len(artefacts)} artefacts hashed; device latency ESTIMATE {estimate['float_ms']} ms "
                 f"float, {estimate['w8a8_ms']} ms w8a8 (MACs-scaled from AI Hub's x4v3, not measured)",
                 artefacts=len(artefacts), latency_estimate=estimate)
    return ExportResult(out, manifest, figures, artefacts, steps.done)


def _simulate(net: Any, qdq_model: Path, folder: Path, name: str, sim_size: tuple[int, int], count: int,
              images: list[tuple[str, np.ndarray]], upscale: int, seed: int, target: Any,
              roles: list[tuple[Path, str]]) -> dict[str, Any]:
    """The deliverable's QDQ model (same weights and scales) re-sized to sim_size, compiled, simulated."""
    from engine.export.calibration import make_frames
    from engine.export.onnx_export import reshape_static_model, torch_outputs
    from engine.export.qnn_compile import HtpSimulator, compile_context
    from engine.export.quantize import cpu_outputs, mean_psnr

    h, w = sim_size
    folder.mkdir(parents=True, exist_ok=True)
    small = reshape_static_model(qdq_model, folder / f"{name}_{h}x{w}.onnx", sim_size, upscale)
    started = time.monotonic()
    context, binary = compile_context(small, folder / f"{small.stem}_ctx.onnx", target)
    compile_s = time.monotonic() - started
    frames = make_frames(images, sim_size, count, seed + 1)
    simulator = HtpSimulator(context, target)
    started = time.monotonic()
    htp_out = [simulator.run(frame) for frame in frames]
    run_s = time.monotonic() - started
    float_out = torch_outputs(net, frames)
    qdq_out = cpu_outputs(small, frames)
    roles += [(small, f"verification only: the QDQ model at {h}x{w} (same weights and scales)"),
              (context, f"verification only: HTP context model at {h}x{w}"),
              (binary, f"verification only: HTP context binary at {h}x{w}")]
    return {"size": [h, w], "frames": count, "psnr_vs_float_db": mean_psnr(float_out, htp_out),
            "psnr_vs_cpu_qdq_db": mean_psnr(qdq_out, htp_out),
            "max_abs_error_vs_cpu_qdq": float(max(np.abs(a - b).max() for a, b in zip(qdq_out, htp_out,
                                                                                       strict=True))),
            "compile_seconds": round(compile_s, 2), "simulator_seconds_per_frame": round(run_s / count, 2),
            "runtime": f"onnxruntime-qnn HTP simulator (x86), v{target.htp_arch} / soc {target.soc_model}"}


def run_export_job(checkpoint: Path | str, out_dir: Path | str | None = None, *, force: bool = False,
                   on_step: StepFn | None = None, **options: Any) -> ExportResult:
    """export_checkpoint as an engine Job: its events go to <out_dir>/cockpit/events.jsonl.

    Each step start/end is a progress event; each finished step a result event with step=<name>,
    status, message and its figures; the last result event has step="summary" and the manifest path.
    """
    from engine.jobs import Job

    checkpoint = Path(checkpoint).expanduser()
    size = tuple(options.get("size", DEFAULT_SIZE))
    sim_size = tuple(options.get("sim_size", DEFAULT_SIM_SIZE))
    check_request(checkpoint, size, sim_size, options.get("quant", "a8w8"), options.get("calib"))
    out = Path(out_dir).expanduser() if out_dir is not None else default_out_dir(checkpoint)
    prepare_output(out, force)

    params = {key: str(value) if isinstance(value, Path) else value for key, value in options.items()
              if value is None or isinstance(value, (str, int, float, tuple, Path))}
    with Job(out, "export", checkpoint=str(checkpoint), out_dir=str(out), force=force, **params) as job:

        def step(report: StepReport) -> None:
            if report.status != "running":
                job.result(step=report.name, title=report.title, status=report.status, message=report.message,
                           index=report.index, total=report.total, seconds=report.seconds, **report.figures)
            if on_step:
                on_step(report)

        result = export_checkpoint(checkpoint, out, force=force, progress=job.progress, on_step=step,
                                   output_prepared=True, **options)
        job.result(step="summary", manifest=str(result.manifest), figures=result.figures)
        return result
