"""`export_checkpoint`: checkpoint -> ONNX -> QDQ -> HTP v73 context binary, each step verified.

The steps, their order and what each needs and makes are declared in engine/export/steps/__init__.py
(`REGISTRY`); each lives in its own module there. Each reports a figure as soon as it has one (design.md
section 8). This module holds the request checks, the output folder, and the loop that runs the steps;
engine.job_kinds.export runs it as a job (engine.job_runner: one result event per finished step).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.export import steps as steps_registry
from engine.export.steps import StepSpec
from engine.export.steps.context import ExportContext
from engine.protocol import ProgressFn, StepResult, UserError
from engine.units import MAX_SIDE

DEFAULT_SIZE = (270, 480)  # a 540p frame at x2
DEFAULT_SIM_SIZE = (64, 64)  # the simulator takes ~3 s per 64x64 frame, ~30 s per 270x480


StepFn = Callable[[StepResult], None]


@dataclass
class ExportResult:
    out_dir: Path
    manifest: Path | None  # None when the manifest step was not chosen (see `only`)
    figures: dict[str, Any]
    artefacts: list[dict[str, Any]]
    steps: list[StepResult]


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
        for folder in (spec.folder for spec in steps_registry.REGISTRY if spec.folder):
            shutil.rmtree(out_dir / folder, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def check_request(checkpoint: Path, size: tuple[int, int], sim_size: tuple[int, int], quant: str,
                  calib: Path | str | None) -> tuple[Any, Any]:
    """Every check before a folder is made: the network (loaded), sizes, quantization, calibration source.

    Returns (net, arch): an eval-mode SRVGGNetCompact on the CPU and its SRVGGArch.
    """
    from engine.weights.precheck import require_checkpoint_file

    require_checkpoint_file(checkpoint)  # before the quantizer's module imports torch (seconds)
    from engine.export.quantize import check_mode

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
    """Runs the planned steps in order and tells on_step / progress about each."""

    def __init__(self, plan: list[StepSpec], progress: ProgressFn | None, on_step: StepFn | None) -> None:
        self.progress, self.on_step = progress, on_step
        self.done: list[StepResult] = []
        self._index = {spec.name: index for index, spec in enumerate(plan, 1)}
        self._titles = {spec.name: spec.label for spec in plan}
        self._current: StepResult | None = None
        self._started = 0.0

    def start(self, name: str, message: str = "") -> None:
        index, total = self._index[name], len(self._index)
        self._current = StepResult(name=name, title=self._titles[name], status="running", message=message,
                                   index=index, total=total)
        self._started = time.monotonic()
        if self.progress:
            self.progress(index - 1, total, f"{self._titles[name]}...")
        if self.on_step:
            self.on_step(self._current)

    def say(self, text: str) -> None:
        """A progress line from inside the running step, at that step's position."""
        if self.progress and self._current is not None:
            self.progress(self._current.index - 1, self._current.total, text)

    def finish(self, message: str, status: str = "done", **figures: Any) -> StepResult:
        assert self._current is not None
        report = StepResult(name=self._current.name, title=self._current.title, status=status, message=message,
                            index=self._current.index, total=self._current.total,
                            seconds=round(time.monotonic() - self._started, 3), figures=figures)
        self.done.append(report)
        self._current = None
        if self.progress:
            self.progress(report.index, report.total, f"{report.title}: {message}")
        if self.on_step:
            self.on_step(report)
        return report


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
    only: Sequence[str] | None = None,
) -> ExportResult:
    """Export an SRVGGNetCompact checkpoint for QCS8550 and verify every step; see the module doc.

    size / sim_size are (height, width) of the LR input. calib: a folder of images, "builtin" for
    scikit-image's photos, or None for the validation LR folder of the basicsr run that holds the
    checkpoint. A PSNR (quantized or simulated HTP against float) below min_psnr stops the export
    with a UserError unless force; force also lets out_dir exist. progress(done, total, message) gets
    every step start and end; on_step gets a StepResult (figures included) at the same moments.
    only: the names of the registered steps to run (default: all of them, in registry order).
    """
    checkpoint = Path(checkpoint).expanduser()
    out = Path(out_dir).expanduser() if out_dir is not None else default_out_dir(checkpoint)
    ctx = ExportContext(checkpoint, out, tuple(size), tuple(sim_size), calib, quant, min_psnr, force, htp,
                        sim_frames, calib_frames, eval_frames, aihub, seed, output_prepared)
    specs = steps_registry.plan(only)
    steps = _Steps(specs, progress, on_step)
    ctx.say = steps.say
    for spec in specs:
        _run_step(spec, ctx, steps)
    return ExportResult(out, ctx.made.get("manifest"), ctx.figures, ctx.made.get("artefacts", []), steps.done)


def _run_step(spec: StepSpec, ctx: ExportContext, steps: _Steps) -> None:
    """One step: its start, its function (imported now), its end; a step whose needs were not made is skipped."""
    steps.start(spec.name, spec.detail(ctx) if spec.detail else "")
    missing = [need for need in spec.needs if need not in ctx.made]
    if missing:  # an earlier step was skipped (e.g. --no-htp)
        steps.finish(f"skipped (no {', '.join(missing)})", "skipped")
        return
    result = spec.function()(ctx)
    if result.status != "skipped":
        unmade = [name for name in spec.makes if name not in ctx.made]
        if unmade:
            raise RuntimeError(f"export step {spec.name!r} declares it makes {unmade} but did not")
    steps.finish(result.message, result.status, **result.figures)
