"""The weight transfer's report as rich tables: the per-layer table and the validation scores.

Shared by `srcockpit weights transfer` and the cockpit's transfer screen; both read the report record
that engine.weights.run.transfer_weights returns (plain dicts: no torch here).
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

ORDER = ("nearest", "bicubic", "source", "transferred")


def arch_label(arch: Any) -> str:
    """SRVGGArch.label ('64 feat / 16 conv / x2 / prelu') from the architecture as a report stores it (a dict)."""
    if not isinstance(arch, dict):
        return str(arch or "?")
    label = f"{arch.get('num_feat')} feat / {arch.get('num_conv')} conv / x{arch.get('upscale')}"
    return f"{label} / {arch['act_type']}" if arch.get("act_type") else label


def layer_table(report: dict[str, Any], *, compact: bool = False) -> Any:
    """The per-layer transfer report (TransferResult.to_dict()). compact, for the cockpit's narrower pane:
    no channel-index column and at most four target layers per row."""
    title = f"{arch_label(report.get('source'))} -> {arch_label(report.get('target'))}, deepen: {report.get('deepen')}"
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("source layer")
    table.add_column("kept", justify="right")
    table.add_column("L2 energy kept", justify="right")
    table.add_column("after input slicing", justify="right")
    layers = report.get("layers", [])
    refit = any(layer.get("refit") for layer in layers)
    if refit:
        table.add_column("refit error before -> after", justify="right")
    table.add_column("target layers", overflow="fold")
    if not compact:
        table.add_column("kept channel indices", overflow="fold")
    for layer in layers:
        kept, out = layer.get("kept") or [], layer.get("out_channels")
        row = [f"{layer.get('layer')} ({layer.get('role')})", f"{len(kept)}/{out}",
               f"{layer.get('energy_kept', 0):.1%}", f"{layer.get('energy_kept_sliced', 0):.1%}"]
        if refit:
            figures = layer.get("refit")
            row.append(f"{figures['error_before']:.3f} -> {figures['error_after']:.3f}" if figures else "-")
        targets = layer.get("targets") or []
        if compact:
            row.append(", ".join(targets[:4]) + (f" +{len(targets) - 4}" if len(targets) > 4 else ""))
        else:
            row += [", ".join(targets), "all" if len(kept) == out else _ranges(kept)]
        table.add_row(*row)
    return table


def _ranges(indices: list[int]) -> str:
    parts, start = [], None
    for number, value in enumerate(indices):
        if start is None:
            start = value
        if number + 1 == len(indices) or indices[number + 1] != value + 1:
            parts.append(str(start) if start == value else f"{start}-{value}")
            start = None
    return ",".join(parts)


def score_table(validation: dict[str, Any]) -> Table:
    first = next(iter(validation.values()))
    channel = "Y" if first.get("test_y_channel", True) else "RGB"
    images = len(first.get("images") or [])
    title = f"validation: {images} images, x{first.get('scale')}, {channel}, crop {first.get('crop_border')}"
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("model")
    table.add_column("params", justify="right")
    table.add_column("PSNR", justify="right")
    table.add_column("SSIM", justify="right")
    names = [n for n in ORDER if n in validation] + [n for n in validation if n not in ORDER]
    for name in names:
        scored = validation[name]
        params = scored.get("parameters")
        table.add_row(name, f"{params:,}" if params else "-", f"{scored['psnr']:.2f}", f"{scored['ssim']:.4f}",
                      style="bold" if name == "transferred" else None)
    return table
