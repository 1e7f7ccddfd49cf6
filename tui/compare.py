"""Several runs on one chart (the run list's compare view), as TensorBoard overlays runs.

Plain Python (no Textual): each run's log folded into a RunState, then ChartData of PSNR/SSIM and of
the pixel loss with one curve per run. Stages of a chain share one iteration axis: a run whose
`path.pretrain_network_g` is a checkpoint of another run picked with it (stage 2 starting from stage 1's
best, as engine/stages.py and the demo hand it on) is drawn from that checkpoint's iteration on, so the
demo's stage 1 and stage 2 read as one training.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from engine.metric_info import metric_info
from engine.protocol import GENERATOR_KINDS, RunEvent, RunPaths, load_events, losses_of_kind
from tui.state import RunState
from tui.widgets.charts import TARGETS
from tui.widgets.line_chart import PALETTE, ChartData, Curve, HLine, format_number

CHECKPOINT_ITER = re.compile(r"_(\d+)\.pth$")


@dataclass
class ComparedRun:
    paths: RunPaths
    state: RunState
    offset: int = 0  # added to every iteration: where this stage starts on the chain's axis
    after: str = ""  # the run it continues (its checkpoint), "" for a run on its own

    @property
    def name(self) -> str:
        return self.paths.root.name


def load_runs(runs: list[RunPaths]) -> list[ComparedRun]:
    """Each run's whole log read into a RunState; the chain offsets worked out."""
    compared = []
    for paths in runs:
        state = RunState(paths.root.name)
        state.apply_all(load_events(paths.events).events)
        compared.append(ComparedRun(paths, state))
    chain(compared)
    return compared


def _start_checkpoint(run: ComparedRun) -> Path | None:
    """The weights the run started from; a relative path is under the folder holding experiments/."""
    path = (run.state.run.options.get("path") or {}).get("pretrain_network_g")
    if not path:
        return None
    start = Path(str(path))
    return start if start.is_absolute() else run.paths.root.parent.parent / start


def chain(runs: list[ComparedRun]) -> None:
    """Offset each run that starts from another one's checkpoint by that checkpoint's iteration (and
    that run's own offset), in as many passes as the chain is long."""
    roots = {run.paths.root.resolve(): run for run in runs}
    for _ in runs:
        for run in runs:
            start = _start_checkpoint(run)
            if start is None:
                continue
            parent = roots.get(start.resolve().parent.parent)
            found = CHECKPOINT_ITER.search(start.name)
            if parent is not None and parent is not run and found:
                run.offset, run.after = parent.offset + int(found.group(1)), parent.name


def earlier_stages(paths: RunPaths, state: RunState, limit: int = 8) -> list[RunPaths]:
    """The runs this one continues, first stage first, found from each start checkpoint's run folder
    (models/ sits in the run's folder beside cockpit/); [] for a run that starts on its own."""
    found: list[RunPaths] = []
    run = ComparedRun(paths, state)
    for _ in range(limit):
        start = _start_checkpoint(run)
        parent = RunPaths(start.parent.parent) if start is not None else None
        if parent is None or not parent.events.is_file() or parent.root in (p.root for p in [*found, paths]):
            break
        found.insert(0, parent)
        state = RunState(parent.root.name)
        state.apply_all(event for event in load_events(parent.events).events if isinstance(event, RunEvent))
        run = ComparedRun(parent, state)
    return found


def _color(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def val_overlay(runs: list[ComparedRun], metric: str) -> ChartData:
    """One curve per run and validation set: `metric` over the (chain-offset) iterations."""
    curves: list[Curve] = []
    for k, run in enumerate(runs):
        for dataset, val in sorted(run.state.vals.items()):
            info = metric_info(metric, val.settings.get(metric))
            xs = [p.iter + run.offset for p in val.points]
            ys = [p.metrics.get(metric, getattr(p, metric, math.nan)) for p in val.points]
            label = run.name if len(run.state.vals) == 1 else f"{run.name} {dataset}"
            curves.append(Curve(label, xs, ys, _color(k), value=info.format(ys[-1] if ys else None)))
    target = TARGETS.get(metric)
    hlines = [HLine(target, f"target {target:g}", "success")] if target is not None else []
    return ChartData(curves, hlines, empty="no validation in these runs")


def loss_overlay(runs: list[ComparedRun], smoothing: float) -> ChartData:
    """Each run's pixel loss (its first generator loss: l_pix, l_g_pix), smoothed, on one axis."""
    curves: list[Curve] = []
    for k, run in enumerate(runs):
        names = losses_of_kind(run.state.losses, GENERATOR_KINDS)
        series = run.state.losses.get(names[0]) if names else None
        if series is None or not series.count:
            continue
        xs = [x + run.offset for x in series.xs()]
        value = format_number(series.last) if math.isfinite(series.last) else "-"
        curves.append(Curve(f"{run.name} {names[0]}", xs, series.smoothed(smoothing), _color(k), value=value))
    positive = all(v > 0 for c in curves for v in c.ys if math.isfinite(v))
    return ChartData(curves, log_y=bool(curves) and positive, empty="no losses in these runs")
