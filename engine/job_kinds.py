"""Job functions of the cockpit's job screens (engine.job_runner.JOB_FUNCTIONS names them).

Each takes a progress callback and keyword parameters (JSON values: paths as strings) and returns its
result record; the heavy modules are imported when the job runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.protocol import ProgressFn, UserError


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


def rank(progress: ProgressFn, *, run: str, original: str = "auto") -> dict[str, Any]:
    """Score and rank every checkpoint of a run (engine.rank.rank_run)."""
    from engine.rank import rank_run

    return rank_run(Path(run), original=None if original == "none" else original, progress=progress).to_dict()


def promote(progress: ProgressFn, *, run: str, file: str, entry: str, to: str | None = None,
            original: str = "auto") -> dict[str, Any]:
    """Promote one ranked candidate (not only the best): rank again from the cache, then promote it."""
    from engine.rank import DEFAULT_TARGET, rank_run, sidecar_path
    from engine.rank import promote as promote_candidate

    result = rank_run(Path(run), original=None if original == "none" else original, progress=progress)
    chosen = next((c for c in result.candidates if str(c.file) == file and c.entry == entry), None)
    if chosen is None:
        raise UserError(f"{file} [{entry}] is not a checkpoint of {run}", "rank the run again")
    target = promote_candidate(result, Path(to) if to else DEFAULT_TARGET, chosen)
    return {"weights": str(target), "sidecar": str(sidecar_path(target)), "label": chosen.label,
            "iter": chosen.iter, "rank": chosen.rank, "psnr": chosen.psnr, "ssim": chosen.ssim}


def export(progress: ProgressFn, *, folder: Path, checkpoint: str, size: str, quant: str = "a8w8",
           calib: str | None = None, htp: bool = True) -> dict[str, Any]:
    """The QCS8550 export into the job's folder; it writes its own Job there (one result event per step)."""
    from engine.export import run_export_job
    from engine.units import parse_size

    result = run_export_job(checkpoint, folder, size=parse_size(size, "--size"), quant=quant, calib=calib, htp=htp)
    return {"manifest": str(result.manifest)}
