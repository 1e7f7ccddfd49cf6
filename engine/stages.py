"""Training in stages: each stage starts from the best checkpoint of the one before.

Real-ESRGAN's authors train an L1-only RealESRNet before the GAN stage; a short GAN stage straight
from transferred weights lowers PSNR (design.md section 7). A chain is a list of ordinary option
files; every stage is its own basicsr experiment (its own folder, log and cockpit entry), and stage
N+1 gets `path.pretrain_network_g` = the best net_g or EMA weights of stage N, ranked by the plan's
rule (highest validation PSNR, then SSIM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.protocol import FINISHED, StatusEvent, UserError, load_events


@dataclass(frozen=True)
class Best:
    """The checkpoint a stage hands on."""

    file: Path
    entry: str
    iter: int | None
    psnr: float
    ssim: float
    run: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "entry": self.entry, "iter": self.iter, "psnr": self.psnr,
                "ssim": self.ssim, "run": self.run}

    def overrides(self) -> list[str]:
        return [f"path.pretrain_network_g={self.file}", f"path.param_key_g={self.entry}", "path.strict_load_g=true"]


def best_checkpoint(*run_dirs: Path, references: bool = True) -> tuple[Any, Any]:
    """The best candidate over the runs (engine.rank, cached): (its run's RankResult, the candidate). As within a run,
    a candidate marked for artifacts (colour shift, checkerboard) comes after every clean one. references=False
    scores no original model or start point beside them (they are never ranked; a report may score them once)."""
    from engine.rank import rank_run

    options = {} if references else {"original": None, "include_start": False}
    ranked = [(result, candidate) for result in (rank_run(d, **options) for d in run_dirs)
              for candidate in result.ranked]
    if not ranked:
        raise UserError(f"no checkpoint of {', '.join(d.name for d in run_dirs)} could be scored",
                        "a stage needs validation data and at least one checkpoint")
    return max(ranked, key=lambda pair: (not pair[1].flags, pair[1].psnr, pair[1].ssim))


def describe(candidate: Any) -> Best:
    return Best(candidate.file, candidate.entry, candidate.iter, candidate.psnr, candidate.ssim,
                candidate.file.parent.parent.name)


def finished(run_dir: Path) -> bool:
    log = load_events(run_dir / "cockpit" / "events.jsonl")
    statuses = [e.status for e in log.events if isinstance(e, StatusEvent)]
    return bool(statuses) and statuses[-1] == FINISHED


def run_chain(options: Sequence[Path], *, overrides: Sequence[str] = (), keep_finished: bool,
              start: Callable[..., str], experiment_dir: Callable[[Path, Sequence[str]], Path]) -> str:
    """Train each stage in turn. With keep_finished (a resumed chain) a finished stage is kept as it is.

    start(options, overrides=..., stage=...) trains one stage and returns its final status;
    experiment_dir(options, overrides) says where that stage's run lives. One options file is one
    ordinary run (stage None).
    """
    if len(options) == 1:
        return start(options[0], overrides=overrides, stage=None)
    handed_on: list[str] = []
    status = FINISHED
    for number, path in enumerate(options, start=1):
        stage_overrides = [*overrides, *handed_on]
        run_dir = experiment_dir(path, stage_overrides)
        if not (keep_finished and finished(run_dir)):
            status = start(path, overrides=stage_overrides, stage=f"{number}/{len(options)}")
            if status != FINISHED:
                return status
        if number < len(options):
            handed_on = describe(best_checkpoint(run_dir)[1]).overrides()
    return status
