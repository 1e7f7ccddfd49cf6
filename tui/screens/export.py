"""Export a checkpoint for QCS8550 as a job: `srcockpit export CKPT --size HxW --quant ... -o DIR`.

The export job (engine.job_kinds.export, run by engine.job_runner) writes its log in its output folder:
a result event per finished step (engine.protocol.StepResult) with that step's verification figures (max
error vs torch, PSNR of the quantized and the simulated model against float, bytes, seconds). Each lands
in the steps table as soon as it is written; the highlighted step's figures are listed below it; the
manifest path (engine.protocol.ExportSummary) ends the job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Checkbox, DataTable, Footer, Input, Label, Select, Static

from engine.export import steps as export_steps
from engine.job_kinds import ExportRequest
from engine.protocol import ExportSummary, RunPaths, StepResult, UserError, figures_as
from engine.units import parse_size
from tui.widgets.job_progress import JobProgress, JobScreen

DEFAULT_SIZE = ExportRequest.size
PROMOTED = "weights/small-realesr-animevideox2v3-finetuned.pth"
STATUS_STYLE = {"done": "green", "warning": "yellow", "skipped": "dim", "running": "cyan"}


def newest_checkpoint(run: RunPaths | None) -> Path | None:
    if run is None or not run.models.is_dir():
        return None
    numbered = []
    for path in run.models.glob("net_g_*.pth"):
        tail = path.stem.removeprefix("net_g_")
        if tail.isdigit():
            numbered.append((int(tail), path))
    return max(numbered)[1] if numbered else None


def figure_lines(figures: dict[str, Any], prefix: str = "") -> list[str]:
    """A step's figures as 'key: value' lines (nested dicts flattened one level)."""
    lines = []
    for key, value in figures.items():
        if isinstance(value, dict):
            lines += figure_lines(value, f"{prefix}{key}.")
        elif isinstance(value, float):
            lines.append(f"{prefix}{key}: {value:.6g}")
        else:
            text = json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)
            lines.append(f"{prefix}{key}: {text[:140]}")
    return lines


class ExportScreen(JobScreen):
    KIND = "export"
    TITLE_TEXT = "Export for Qualcomm QCS8550: ONNX -> QDQ -> HTP v73 context binary, each step checked"
    DEFAULT_CSS = """
    ExportScreen #quant-field { width: 22; }
    ExportScreen #htp-field { width: 40; }
    ExportScreen #steps { height: auto; max-height: 14; }
    ExportScreen #steps.-empty { display: none; }
    ExportScreen #figures { height: auto; padding: 0 1; }
    ExportScreen #summary { height: auto; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self, root: Path, run: RunPaths | None = None) -> None:
        super().__init__(root)
        self.run = run
        self.steps: dict[str, StepResult] = {}  # step name -> the step as it finished, in arrival order
        self.summary: ExportSummary | None = None

    def _default_checkpoint(self) -> str:
        found = newest_checkpoint(self.run)
        if found is None and (self.root / PROMOTED).is_file():
            found = self.root / PROMOTED
        if found is None:
            return ""
        try:
            return str(found.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(found)

    def compose(self) -> ComposeResult:
        yield from self.compose_title()
        with VerticalScroll(id="form"):
            with Horizontal(classes="row"):
                with Vertical(classes="field"):
                    yield Label("checkpoint (.pth, SRVGGNetCompact)")
                    yield Input(self._default_checkpoint(), placeholder=PROMOTED, id="checkpoint",
                                classes="validated")
                with Vertical(classes="field"):
                    yield Label("input size HxW (LR frame)")
                    yield Input(DEFAULT_SIZE, id="size", classes="validated")
                with Vertical(classes="field", id="quant-field"):
                    yield Label("quantization")
                    yield Select([("a8w8", "a8w8"), ("a16w8", "a16w8")], value="a8w8", allow_blank=False,
                                 id="quant")
            with Horizontal(classes="row"):
                with Vertical(classes="field"):
                    yield Label("calibration (empty: validation LR images; 'builtin')")
                    yield Input("", placeholder="validation LR images", id="calib", classes="validated")
                with Vertical(classes="field"):
                    yield Label("output folder (optional)")
                    yield Input("", placeholder="experiments/job-export-<time>", id="out", classes="validated")
                with Vertical(classes="field", id="htp-field"):
                    yield Label(" ")
                    yield Checkbox("HTP binary + simulator", value=True, id="htp")
            yield self.problems_widget()
            yield JobProgress(id="job")
            yield DataTable(id="steps", cursor_type="row", zebra_stripes=True, classes="-empty")
            yield Static(id="figures")
            yield Static(Text(f"ctrl+r starts the export ({' -> '.join(export_steps.labels().values())}); each "
                              "step's verification figure shows here as it lands (the calibration default: the "
                              "run's validation LR images)", style="dim"), id="summary")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#steps", DataTable)
        for label, key in (("#", "index"), ("step", "title"), ("status", "status"), ("result", "message"),
                           ("s", "seconds")):
            table.add_column(label, key=key)
        self.query_one("#checkpoint", Input).focus()
        self.reattach()

    def values(self) -> dict[str, Any]:
        fields = ("checkpoint", "size", "calib", "out")
        return {name: self.query_one(f"#{name}", Input).value.strip() for name in fields} \
            | {"quant": self.query_one("#quant", Select).value, "htp": self.query_one("#htp", Checkbox).value}

    def validate(self) -> bool:
        v = self.values()
        problems: list[tuple[str | None, str]] = []
        if not v["checkpoint"]:
            problems.append(("checkpoint", "checkpoint: the .pth to export (a run's models/net_g_N.pth, or the "
                                           "promoted weights)"))
        elif not self.resolve(v["checkpoint"]).is_file():
            problems.append(("checkpoint", f"checkpoint {v['checkpoint']}: no such file"))
        try:
            parse_size(v["size"], "size")
        except UserError as error:
            problems.append(("size", f"{error.message}: {error.hint}"))
        if v["calib"] and v["calib"] != "builtin" and not self.resolve(v["calib"]).is_dir():
            problems.append(("calib", f"calibration folder {v['calib']}: not a folder (leave empty for the default)"))
        if v["out"]:
            out = self.resolve(v["out"])
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                problems.append(("out", f"output folder {v['out']} exists and is not empty: choose another"))
        return self.show_problems(problems)

    def action_start(self) -> None:
        if self.progress.running:
            self.notify("an export is running: wait for it (escape leaves it running)", severity="warning")
            return
        if not self.validate():
            return
        from tui.jobs import job_folder

        v = self.values()
        folder = self.resolve(v["out"]) if v["out"] else job_folder(self.root, self.KIND)
        params = {"checkpoint": v["checkpoint"], "out": str(folder), "size": v["size"].replace(" ", "").lower(),
                  "quant": str(v["quant"]), "calib": v["calib"] or None, "htp": bool(v["htp"])}
        self.clear_steps()
        self.launch(params, folder=folder)

    def clear_steps(self) -> None:
        self.steps, self.summary = {}, None
        self.query_one("#steps", DataTable).clear()
        self.query_one("#steps", DataTable).set_class(True, "-empty")
        self.query_one("#figures", Static).update("")
        self.query_one("#summary", Static).update("")

    # ---------------------------------------------------------------- steps as they land
    @on(JobProgress.Result)
    def _step(self, message: JobProgress.Result) -> None:
        step = StepResult.from_figures(message.event.figures)
        if step is None or not step.name:
            return
        if step.name == "summary":
            self.show_summary(figures_as(message.event.figures, ExportSummary))
            return
        table = self.query_one("#steps", DataTable)
        cells = (Text(f"{step.index}/{step.total}", justify="right"), Text(step.title or step.name, style="bold"),
                 Text(step.status, style=STATUS_STYLE.get(step.status, "")), Text(step.message),
                 Text(f"{step.seconds:.1f}" if step.seconds >= 0.05 else "", justify="right"))
        if step.name in self.steps:
            for key, cell in zip(("index", "title", "status", "message", "seconds"), cells, strict=True):
                table.update_cell(step.name, key, cell)
        else:
            table.add_row(*cells, key=step.name)
            table.move_cursor(row=table.row_count - 1)
            table.set_class(False, "-empty")
        self.steps[step.name] = step
        self.show_figures()

    def show_summary(self, summary: ExportSummary | None) -> None:
        self.summary = summary
        text = Text.assemble(("manifest: ", "bold"))
        text.append(f"{summary.manifest if summary else None}\n")
        text.append("every artefact with its sha256, the figures above, versions and a latency ESTIMATE", style="dim")
        self.query_one("#summary", Static).update(text)

    @on(DataTable.RowHighlighted, "#steps")
    def _highlighted(self) -> None:
        self.show_figures()

    def show_figures(self) -> None:
        table = self.query_one("#steps", DataTable)
        names = list(self.steps)
        if not names or table.cursor_row is None or table.cursor_row >= len(names):
            return
        step = self.steps[names[table.cursor_row]]
        lines = figure_lines(step.figures)
        text = Text.assemble((f"{step.title}: ", "bold"))
        text.append("figures\n" if lines else "no figures\n")
        text.append("\n".join(f"  {line}" for line in lines[:14]))
        self.query_one("#figures", Static).update(text)
