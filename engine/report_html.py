"""Rendering of the comparison report: PNG tiles, report.md (images beside it) and a self-contained report.html.

Standard library, numpy and OpenCV only (no template engine); every text that comes from data is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.data.images import write_png
from engine.health import CHECKERBOARD_MAX, CHECKERBOARD_OVER_BICUBIC, CHROMA_SHIFT_MAX, COLOR_SHIFT_MAX
from engine.metric_info import SHOWN_FIGURES, figure_text
from engine.timing import describe

DISPLAY_ZOOM = 2  # tiles are shown at twice their size, pixelated, so upscaling artefacts stay visible
MODEL_ROWS = ("nearest", "bicubic", "original", "transferred", "fine-tuned")


def tile_name(sample: str, index: int, label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower() or "tile"
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', sample)}_{index:02d}_{slug}.png"


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("PNG encoding failed")
    return encoded.tobytes()


def write_tiles(samples: list[dict[str, Any]], folder: Path) -> None:
    for sample in samples:
        for index, (label, rgb) in enumerate(sample["tiles"]):
            write_png(folder / tile_name(sample["name"], index, label), rgb)


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def figure_cells(model: dict[str, Any]) -> list[str]:
    """A model's figures as the tables show them; '-' where it has none (NIQE of images too small for it)."""
    figures = model.get("figures") or {}
    return [figure_text(key, figures.get(key)) for key, *_ in SHOWN_FIGURES]


def artifacts_cell(model: dict[str, Any]) -> str:
    """Why a model is marked (its artifacts above the health limits), 'none' when clean, '-' for the baselines."""
    if model.get("stage") == "baseline":
        return "-"
    return "; ".join(model.get("flags") or []) or "none"


def _model_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    models = data["models"]
    names = [n for n in MODEL_ROWS if n in models] + [n for n in models if n not in MODEL_ROWS]
    for name in names:
        model = models[name]
        timing = model.get("timing") or {}
        frame, val = describe(timing.get("frame", {})), describe(timing.get("valset", {}))
        memory = model.get("memory") or {}
        rows.append([name, model.get("stage", ""), f"{model['parameters']:,}" if model.get("parameters") else "-",
                     _fmt(model["psnr"], 3), _fmt(model["ssim"], 4), *figure_cells(model),
                     _fmt(model.get("lpips"), 4) if model.get("lpips") is not None else "n/a",
                     val, frame,
                     f"{memory['total_bytes'] / 1e6:.1f}" if memory else "-", artifacts_cell(model)])
    return rows


MODEL_HEADER = ["model", "stage", "params", "PSNR (dB)", "SSIM", *(heading for _, _, heading in SHOWN_FIGURES),
                "LPIPS", "ms/frame (valset)", "ms/frame (270x480)", "memory est. (MB)", "artifacts"]
FIGURES_LINE = (f"Figures: NIQE (lower is better; '-' for images under 192 px), colour shift (largest |mean SR - GT| "
                f"of B, G, R) and chroma shift (|mean Cb, Cr|) in grey levels, checkerboard (share of the error energy "
                f"at the upscale's period), sharpness (detail energy vs GT's, 1 = as sharp). Marked under artifacts, "
                f"as the live alerts warn: colour shift > {COLOR_SHIFT_MAX}, chroma shift > {CHROMA_SHIFT_MAX}, "
                f"checkerboard > {CHECKERBOARD_MAX:.0%} and > {CHECKERBOARD_OVER_BICUBIC:g}x bicubic's")


def _settings_lines(data: dict[str, Any]) -> list[str]:
    valset, settings, timing = data["valset"], data["settings"], data.get("timing")
    lines = [f"Validation set: {valset.get('name')} ({len(valset['images'])} images, x{valset['scale']}): "
             f"GT {valset.get('gt_dir')}, LQ {valset.get('lq_dir')}",
             f"Metrics: {'Y channel' if settings['test_y_channel'] else 'RGB'}, crop_border {settings['crop_border']}; "
             f"{settings['metrics']}",
             FIGURES_LINE, f"LPIPS: {settings['lpips']}"]
    if timing:
        lines.append(f"Timing: {timing['runs']} runs after {timing['warmup']} warm-up, on {timing['device']} "
                     f"with {timing['threads']} threads ({timing.get('threads_why', 'torch default')}; torch "
                     f"{timing['torch']}); per {timing.get('per', 'model')}; {timing['statistic']}; sizes: "
                     + ", ".join(f"{size} {shape}" for size, shape in timing["sizes"].items()))
    else:
        lines.append("Timing: not measured (timing runs = 0)")
    lines.append("Memory: estimate at the 270x480 frame: fp32 parameters + peak live fp32 activations of one "
                 "inference forward; runtime overhead not counted")
    return lines


def _criteria_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    criteria = data.get("criteria") or {}
    models = list(criteria)
    if not models:
        return [], []
    header = ["criterion", "target", *models]
    rows = []
    for index, first in enumerate(criteria[models[0]]):
        row = [first["criterion"], first["target"]]
        for model in models:
            item = criteria[model][index]
            row.append(f"{item['status']}: {item['value']}")
        rows.append(row)
    return header, rows


def render_markdown(data: dict[str, Any], samples: list[dict[str, Any]]) -> str:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        clean = [[str(cell).replace("|", "\\|") for cell in row] for row in rows]
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                               for r in clean]

    lines = ["# Comparison report: original / transferred / fine-tuned", "", f"Created {data['created']}.", ""]
    lines += [f"- {line}" for line in _settings_lines(data)] + [""]
    lines += ["## Models", "", *table(MODEL_HEADER, _model_rows(data)), ""]
    header, rows = _criteria_table(data)
    if header:
        lines += ["## Success criteria (finetune-plan.md 7.1, 7.3)", "", *table(header, rows), ""]
    lines += ["## Visual samples", "", "Crops of the validation images (GT pixels), left to right as labelled.", ""]
    for sample in samples:
        labels = [label for label, _ in sample["tiles"]]
        lines.append(f"### {sample['name']} (crop {sample['size']}x{sample['size']} at y={sample['top']}, "
                     f"x={sample['left']})")
        lines.append("")
        lines.append("| " + " | ".join(labels) + " |")
        lines.append("|" + "---|" * len(labels))
        lines.append("| " + " | ".join(f"![{label}](images/{tile_name(sample['name'], i, label)})"
                                        for i, label in enumerate(labels)) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
td.PASS { background: #dff5e1; } td.FAIL { background: #fbe0e0; } td.NA { background: #eee; }
figure { display: inline-block; margin: 4px; text-align: center; }
figure img { image-rendering: pixelated; }
figcaption { font-size: 0.85em; }
"""


def render_html(data: dict[str, Any], samples: list[dict[str, Any]]) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>srcockpit comparison report</title>",
             f"<style>{STYLE}</style></head><body>", "<h1>Comparison report: original / transferred / fine-tuned</h1>",
             f"<p>Created {e(data['created'])}.</p><ul>"]
    parts += [f"<li>{e(line)}</li>" for line in _settings_lines(data)] + ["</ul>", "<h2>Models</h2><table><tr>"]
    parts += [f"<th>{e(h)}</th>" for h in MODEL_HEADER] + ["</tr>"]
    for row in _model_rows(data):
        cells = [f"<td class='text'>{e(c)}</td>" if i < 2 else f"<td>{e(c)}</td>" for i, c in enumerate(row[:-1])]
        marked = " FAIL" if row[-1] not in ("-", "none") else ""
        parts.append("<tr>" + "".join(cells) + f"<td class='text{marked}'>{e(row[-1])}</td></tr>")
    parts.append("</table>")
    header, rows = _criteria_table(data)
    if header:
        parts.append("<h2>Success criteria (finetune-plan.md 7.1, 7.3)</h2><table><tr>")
        parts += [f"<th>{e(h)}</th>" for h in header] + ["</tr>"]
        for row in rows:
            cells = [f"<td class='text'>{e(row[0])}</td>", f"<td class='text'>{e(row[1])}</td>"]
            for cell in row[2:]:
                status = cell.split(":", 1)[0].replace("/", "")
                cells.append(f"<td class='text {e(status)}'>{e(cell)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Visual samples</h2><p>Crops of the validation images, shown at "
                 f"{DISPLAY_ZOOM}x with no smoothing.</p>")
    for sample in samples:
        parts.append(f"<h3>{e(sample['name'])} (crop {sample['size']}x{sample['size']} at y={sample['top']}, "
                     f"x={sample['left']})</h3><div>")
        for label, rgb in sample["tiles"]:
            encoded = base64.b64encode(png_bytes(rgb)).decode()
            width = rgb.shape[1] * DISPLAY_ZOOM
            parts.append(f"<figure><img alt='{e(label)}' width='{width}' src='data:image/png;base64,{encoded}'>"
                         f"<figcaption>{e(label)}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
