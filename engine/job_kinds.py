"""Job functions of the cockpit's job screens and the CLI's --job (engine.job_runner.JOB_KINDS names them).

Each takes a progress callback and keyword parameters (JSON values: paths as strings) and returns its
result record; the heavy modules are imported when the job runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.export.pipeline import DEFAULT_SIM_SIZE, DEFAULT_SIZE
from engine.protocol import ProgressFn, ResultFn, StepResult, UserError
from engine.units import format_size, parse_size


def subset(progress: ProgressFn, *, sources: list[str], out: str, seed: int = 0, mode: str = "symlink",
           gt_size: int = 256, balance: bool = False, recursive: bool = False, workers: int = 2,
           force: bool = False) -> dict[str, Any]:
    """A checked, seeded subset of several folders (engine.data.subset); its summary is the record."""
    from engine.data.subset import build_subset, parse_source, plan_subset

    specs = [parse_source(text) for text in sources]
    plan = plan_subset(specs, Path(out), seed=seed, mode=mode, balance=balance, gt_size=gt_size,
                       recursive=True if recursive else None)
    result = build_subset(specs, Path(out), force=force, workers=workers, progress=progress, plan=plan)
    return dict(result.summary())


def rank(progress: ProgressFn, *, run: str, original: str = "auto", valsets: list[str] | None = None,
         include_ema: bool = True, crop_border: int | None = None, test_y_channel: bool | None = None,
         device: str | None = None, use_cache: bool = True) -> Any:
    """Score and rank every checkpoint of a run (engine.rank.rank_run); its RankResult is the record.
    valsets: 'GT_DIR:LQ_DIR' texts (default: the run's own); original: 'auto', 'ncnn', a .pth or 'none'."""
    from engine.rank import rank_run

    return rank_run(Path(run), valsets or None, original=_original(original), include_ema=include_ema,
                    crop_border=crop_border, test_y_channel=test_y_channel, device=device, use_cache=use_cache,
                    progress=progress)


def _original(text: str) -> str | None:
    return None if text.lower() == "none" else text


def promote(progress: ProgressFn, *, run: str, file: str, entry: str, to: str | None = None,
            original: str = "auto") -> dict[str, Any]:
    """Promote one ranked candidate (not only the best): rank again from the cache, then promote it."""
    from engine.rank import DEFAULT_TARGET, rank_run, sidecar_path
    from engine.rank import promote as promote_candidate

    result = rank_run(Path(run), original=_original(original), progress=progress)
    chosen = next((c for c in result.candidates if str(c.file) == file and c.entry == entry), None)
    if chosen is None:
        raise UserError(f"{file} [{entry}] is not a checkpoint of {run}", "rank the run again")
    target = promote_candidate(result, Path(to) if to else DEFAULT_TARGET, chosen)
    return {"weights": str(target), "sidecar": str(sidecar_path(target)), "label": chosen.label,
            "iter": chosen.iter, "rank": chosen.rank, "psnr": chosen.psnr, "ssim": chosen.ssim}


def report(progress: ProgressFn, *, models: dict[str, str], valset: str, output: str,
           crop_border: int | None = None, test_y_channel: bool = True, device: str | None = None,
           timing_runs: int = 5, frame: list[int] | None = None, samples: int = 3, crop: int = 96,
           lpips_backbone: str | None = None) -> dict[str, Any]:
    """The comparison report (engine.report.build_report) into output; models: label -> .pth path or 'ncnn'.
    The record names its files (report.json holds the whole report) and holds the criteria."""
    from engine.rank import parse_valset
    from engine.report import FRAME, build_report

    spec = parse_valset(valset)  # a clear error for missing folders before any model is loaded
    sources = {label: source if source == "ncnn" else Path(source) for label, source in models.items()}
    result = build_report(sources, spec, Path(output), crop_border=crop_border, test_y_channel=test_y_channel,
                          device=device, timing_runs=timing_runs, frame=tuple(frame) if frame else FRAME,
                          samples=samples, crop=crop, lpips_backbone=Path(lpips_backbone) if lpips_backbone else None,
                          progress=progress)
    return {"report": str(result.json_path), "html": str(result.html_path), "markdown": str(result.markdown_path),
            "criteria": result.data["criteria"]}


@dataclass(frozen=True)
class ExportRequest:
    """The export job's parameters (JSON values: sizes as 'HxW'); `out` is the job's folder."""

    checkpoint: str
    out: str
    size: str = format_size(DEFAULT_SIZE)
    sim_size: str = format_size(DEFAULT_SIM_SIZE)
    quant: str = "a8w8"
    calib: str | None = None
    min_psnr: float = 40.0
    force: bool = False
    htp: bool = True
    aihub: bool = False
    calib_frames: int = 16
    only: list[str] | None = None

    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return parse_size(self.size, "--size"), parse_size(self.sim_size, "--sim-size")


def prepare_export(**params: Any) -> None:
    """Before the export job's log exists: every check of the request, then its output folder (refused when
    not empty without force), so a bad request leaves no folder behind."""
    from engine.export.pipeline import check_request, prepare_output

    request = ExportRequest(**params)
    size, sim_size = request.sizes()
    if request.calib_frames < 1:
        raise UserError(f"--calib-frames {request.calib_frames}: need at least 1")
    check_request(Path(request.checkpoint).expanduser(), size, sim_size, request.quant, request.calib)
    prepare_output(Path(request.out).expanduser(), request.force)


def export(progress: ProgressFn, *, result: ResultFn, **params: Any) -> dict[str, Any]:
    """The QCS8550 export into the job's folder (prepared by prepare_export): each finished step goes to
    result as it lands; the record is the summary (step "summary", the manifest, every step's figures)."""
    from engine.export import export_checkpoint

    request = ExportRequest(**params)
    size, sim_size = request.sizes()

    def finished(step: StepResult) -> None:
        if step.status != "running":
            result(step)

    done = export_checkpoint(request.checkpoint, request.out, size=size, sim_size=sim_size, calib=request.calib,
                             quant=request.quant, min_psnr=request.min_psnr, force=request.force, htp=request.htp,
                             aihub=request.aihub, calib_frames=request.calib_frames, only=request.only,
                             progress=progress, on_step=finished, output_prepared=True)
    return {"step": "summary", "manifest": str(done.manifest) if done.manifest else None, "figures": done.figures}
