"""ChartData for the dashboard's curves, built from a RunState (no widget code: easy to test)."""

from __future__ import annotations

import math

from tui.state import RunState, Series
from tui.widgets.line_chart import ChartData, Curve, HLine, Marker, format_number

PSNR_TARGET = 28.0  # the plan's targets
SSIM_TARGET = 0.88


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


def val_chart_data(state: RunState, metric: str = "psnr") -> ChartData:
    palette = ("primary", "accent", "success", "secondary")
    curves, markers, hlines = [], [], []
    for k, (name, val) in enumerate(sorted(state.vals.items())):
        xs = [p.iter for p in val.points]
        ys = [getattr(p, metric) for p in val.points]
        last = ys[-1] if ys else math.nan
        label = f"{name} {metric.upper()}"
        curves.append(Curve(label, xs, ys, palette[k % len(palette)],
                            value=f"{last:.2f}" if metric == "psnr" else f"{last:.3f}"))
        best = getattr(val, f"best_{metric}")
        if best:
            markers.append(Marker(best[1], best[0], "★", "warning"))
        for base, values in sorted(val.baselines.items()):
            value = values.get(metric)
            if value is not None and math.isfinite(value) and k == 0:
                hlines.append(HLine(value, f"{base} {value:.2f}" if metric == "psnr" else f"{base} {value:.3f}",
                                    "secondary"))
    target = PSNR_TARGET if metric == "psnr" else SSIM_TARGET
    hlines.insert(0, HLine(target, f"target {target:g}", "success"))
    return ChartData(curves, hlines, markers, empty="no validation yet")
