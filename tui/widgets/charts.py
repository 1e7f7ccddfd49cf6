"""ChartData for the dashboard's curves, built from a RunState (no widget code: easy to test)."""

from __future__ import annotations

import math

from engine.metric_info import metric_info, ordered
from tui.state import RunState, Series
from tui.widgets.line_chart import ChartData, Curve, HLine, Marker, format_number

PSNR_TARGET = 28.0  # the plan's targets
SSIM_TARGET = 0.88
TARGETS = {"psnr": PSNR_TARGET, "ssim": SSIM_TARGET}


def series_curves(name: str, series: Series, smoothing: float, color: str = "") -> list[Curve]:
    xs = series.xs()
    value = format_number(series.last) if not math.isnan(series.last) else "-"
    if series.nonfinite:
        value += f" ({series.nonfinite} non-finite)"
    if smoothing > 0 and len(xs) > 2:
        return [Curve(name, xs, series.means(), color, dim=True),
                Curve(name, xs, series.smoothed(smoothing), color, value=value)]
    return [Curve(name, xs, series.means(), color, value=value)]


def loss_chart_data(state: RunState, names: tuple[str, ...], smoothing: float) -> ChartData:
    palette = ("primary", "accent", "success", "secondary", "error")
    curves: list[Curve] = []
    for k, name in enumerate(names):
        series = state.losses.get(name)
        if series is not None and series.count:
            curves += series_curves(name, series, smoothing, palette[k % len(palette)])
    positive = all(v > 0 for c in curves for v in c.ys if math.isfinite(v))
    return ChartData(curves, log_y=bool(curves) and positive, empty="no losses yet")


def val_metrics(state: RunState) -> list[str]:
    """Every metric the run's val events carry (its options' val.metrics), in the table's order."""
    return ordered(key for val in state.vals.values() for p in val.points for key in p.metrics)


def val_chart_title(metric: str) -> str:
    info = metric_info(metric)
    unit = f" ({info.unit})" if info.unit in ("dB",) else ""
    return f"{info.label}{unit} {info.arrow} per validation"  # the arrow: which way is better


def val_chart_data(state: RunState, metric: str = "psnr") -> ChartData:
    """One metric over the validations of every dataset: best starred, target and baselines dashed."""
    palette = ("primary", "accent", "success", "secondary")
    curves, markers, hlines = [], [], []
    for k, (name, val) in enumerate(sorted(state.vals.items())):
        info = metric_info(metric, val.settings.get(metric))
        xs = [p.iter for p in val.points]
        ys = [p.metrics.get(metric, getattr(p, metric, math.nan)) for p in val.points]
        last = ys[-1] if ys else math.nan
        curves.append(Curve(f"{name} {info.label}", xs, ys, palette[k % len(palette)], value=info.format(last)))
        best = val.best.get(metric)
        if best:
            markers.append(Marker(best[1], best[0], "★", "warning"))
        for base, values in sorted(val.baselines.items()):
            value = values.get(metric)
            if value is not None and math.isfinite(value) and k == 0:
                hlines.append(HLine(value, f"{base} {info.format(value)}", "secondary"))
    target = TARGETS.get(metric)
    if target is not None:
        hlines.insert(0, HLine(target, f"target {target:g}", "success"))
    return ChartData(curves, hlines, markers, empty="no validation yet")
