"""The weight import and transfer as entry points: the transfer is a job function (progress callback
in, report record out).

`srcockpit weights transfer` calls transfer_weights with a progress bar and prints the report; the
cockpit's transfer screen starts it as a job (engine.job_runner), so both run the very same checks and
steps. `srcockpit weights import-ncnn` calls import_weights and prints its summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from engine.protocol import ProgressFn, UserError


def refuse_existing(path: Path | None, force: bool) -> None:
    if path is not None and path.exists() and not force:
        raise UserError(f"{path} already exists", "pick another name or add --force to overwrite it")


def _labelled(progress: ProgressFn, label: str) -> ProgressFn:
    def report(done: int, total: int, message: str) -> None:
        progress(done, total, f"{label}: {message}" if message else label)

    return report


def _check_request(output: Path, report: Path | None, source: Path | None, refit: Path | None,
                   scale: int | None, force: bool) -> None:
    """Every check that needs no torch, before any work: a typo costs no model load."""
    from engine.weights.precheck import require_checkpoint_file

    refuse_existing(output, force)
    refuse_existing(report, force)
    if source is not None:
        require_checkpoint_file(source)
    if refit is not None:
        from engine.data.images import list_images

        list_images(refit)
    if scale is not None and scale < 1:
        raise UserError(f"--scale {scale}: the scale must be at least 1")


def load_source(source: Path | None, scale: int | None) -> tuple[dict, str, Any]:
    """(state dict, label, arch) of the transfer's source (None: the shipped original), brought to the asked
    scale by the exact head."""
    from engine.weights.heads import downscale_head

    if source is None:
        from engine.weights.ncnn_import import import_ncnn, shipped_ncnn_model

        imported = import_ncnn(*shipped_ncnn_model(4))
        state, label, scale = imported.state, "realesr-animevideov3 (ncnn, shipped)", scale or 2
    else:
        from engine.srvgg import infer_arch, read_checkpoint

        state, label = read_checkpoint(source), source.name
        scale = scale or infer_arch(state, str(source)).upscale
    state, arch = downscale_head(state, scale, label)
    return state, label, arch


def validate(valset: Path, source_state: dict, result: Any, progress: ProgressFn, *, crop_border: int | None,
             rgb: bool, device: str | None) -> dict[str, Any]:
    """PSNR/SSIM of nearest, bicubic, the source and the transferred network on valset."""
    from engine.evaluate import evaluate_baselines, evaluate_model, find_valset, load_pairs
    from engine.srvgg import count_parameters, infer_arch

    pairs = load_pairs(*find_valset(valset, result.arch.upscale))
    options = {"crop_border": crop_border, "test_y_channel": not rgb}
    scores = {name: {**scored.to_dict(), "parameters": None}
              for name, scored in evaluate_baselines(pairs, **options).items()}
    for label, state in (("source", source_state), ("transferred", result.state)):
        net = infer_arch(state).build()
        net.load_state_dict(state, strict=True)
        scored = evaluate_model(net, pairs, device=device, label=label,
                                progress=_labelled(progress, f"scoring {label}"), **options)
        scores[label] = {**scored.to_dict(), "parameters": count_parameters(state)}
    return scores


def transfer_weights(progress: ProgressFn, *, output: str | Path, source: str | Path | None = None,
                     feat: int = 32, conv: int = 32, scale: int | None = None, deepen: str = "duplicate",
                     refit: str | Path | None = None, patches: int = 64, patch_size: int = 48, ridge: float = 1e-2,
                     seed: int = 0, valset: str | Path | None = None, crop_border: int | None = None,
                     rgb: bool = False, device: str | None = None, report: str | Path | None = None,
                     force: bool = False) -> dict[str, Any]:
    """Narrow/deepen the source (None: the shipped original) into OUTPUT; returns the per-layer report (with
    `validation` scores when valset is given), also written to `report` when given."""
    output = Path(output)
    source, refit, valset = (Path(p) if p is not None else None for p in (source, refit, valset))
    report_path = Path(report) if report is not None else None
    _check_request(output, report_path, source, refit, scale, force)
    from engine.srvgg import count_parameters, save_checkpoint
    from engine.weights.transfer import transfer

    start = time.perf_counter()
    state, label, source_arch = load_source(source, scale)
    if valset is not None:
        from engine.evaluate import find_valset

        find_valset(valset, source_arch.upscale)
    settings = None
    if refit is not None:
        from engine.weights.refit import RefitSettings

        settings = RefitSettings(refit, patches=patches, patch=patch_size, ridge=ridge, seed=seed)
    result = transfer(state, num_feat=feat, num_conv=conv, deepen=deepen, refit=settings, source=label,
                      progress=_labelled(progress, "refit" if settings else "transfer"))
    save_checkpoint(output, result.state, source=label, transfer=result.to_dict())
    record = {"output": str(output), "source": label, **result.to_dict(),
              "source_parameters": count_parameters(state)}
    if valset is not None:
        record["validation"] = validate(valset, state, result, progress, crop_border=crop_border, rgb=rgb,
                                        device=device)
    record["seconds"] = round(time.perf_counter() - start, 2)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(record, indent=2))
    return record


def import_weights(*, output: str | Path, model: str | Path | None = None, scale: int = 2,
                   force: bool = False) -> dict[str, Any]:
    """An ncnn SRVGGNetCompact (default: the shipped realesr-animevideov3) as a basicsr checkpoint at
    OUTPUT, at `scale` through the exact head; returns its summary."""
    output = Path(output)
    refuse_existing(output, force)
    if model:
        from engine.weights.ncnn_param import parse_param

        parse_param(Path(model))  # a file that is not a .param is refused before torch is imported (seconds)
    from engine.srvgg import count_parameters, save_checkpoint
    from engine.weights.heads import downscale_head, head_check
    from engine.weights.ncnn_import import import_ncnn, shipped_ncnn_model

    start = time.perf_counter()
    param, binary = (Path(model), None) if model else shipped_ncnn_model(4)
    imported = import_ncnn(param, binary)
    state, arch = downscale_head(imported.state, scale, str(param))
    new_head = arch.upscale != imported.arch.upscale
    head_error = head_check(imported.state, state) if new_head else 0.0
    save_checkpoint(output, state, source=str(param), arch=arch.label)
    return {"output": str(output), "source": str(param), "bin": str(imported.bin_path),
            "source_arch": imported.arch.label, "arch": arch.label, "parameters": count_parameters(state),
            "weight_dtype": imported.weight_dtype, "notes": imported.notes,
            "head": (f"exact x{imported.arch.upscale} -> x{arch.upscale} head (sub-pixel filters "
                     f"averaged), max |head - avg_pool(x{imported.arch.upscale})| = {head_error:.2e} "
                     "on a random input" if new_head else None),
            "seconds": round(time.perf_counter() - start, 2)}
