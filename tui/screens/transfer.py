"""Weight transfer: the original (or a .pth) narrowed/deepened to the small network, as a job.

Starts engine.weights.run.transfer_weights as an engine job (the entry point `srcockpit weights
transfer` calls too: its progress becomes progress events, its report the result event) and shows the
per-layer share of L2 energy kept, and, with a validation set, PSNR/SSIM of the source, the transferred
network and the nearest/bicubic baselines (design.md section 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Checkbox, Footer, Input, Label, Select, Static

from engine.protocol import FINISHED
from engine.units import IMAGE_SUFFIXES
from tui.weights_tables import arch_label, layer_table, score_table
from tui.widgets.job_progress import JobProgress, JobScreen

DEFAULT_OUTPUT = "weights/transfer-32f32c.pth"


def free_output(root: Path, wanted: str = DEFAULT_OUTPUT) -> str:
    """The default output, numbered past any file already there (the demo's starting weights among them):
    a transfer run with the defaults never needs 'overwrite'."""
    path, number = Path(wanted), 2
    while (root / path).exists():
        path = Path(wanted).with_name(f"{Path(wanted).stem}-{number}.pth")
        number += 1
    return str(path)


def _positive(text: str) -> int | None:
    return int(text) if text.strip().isdigit() and int(text) > 0 else None


class TransferScreen(JobScreen):
    KIND = "transfer"
    TITLE_TEXT = "Weight transfer: the 64-feature original to the small network"
    DEFAULT_CSS = """
    TransferScreen #result { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.report: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        valset = "datasets/demo/val" if (self.root / "datasets/demo/val/GTmod12").is_dir() else ""
        yield from self.compose_title()
        with VerticalScroll(id="form"):
            with Horizontal(classes="row"):
                with Vertical(classes="field"):
                    yield Label("source: 'original' (shipped realesr-animevideov3) or a .pth")
                    yield Input("original", id="source", classes="validated")
                with Vertical(classes="field"):
                    yield Label("output .pth")
                    yield Input(free_output(self.root), id="output", classes="validated")
            with Horizontal(classes="row"):
                with Vertical(classes="field"):
                    yield Label("target width (features)")
                    yield Input("32", id="feat", classes="validated", type="integer")
                with Vertical(classes="field"):
                    yield Label("target body convs")
                    yield Input("32", id="conv", classes="validated", type="integer")
                with Vertical(classes="field"):
                    yield Label("deepen by")
                    yield Select([("duplicate (the plan)", "duplicate"), ("identity blocks", "identity")],
                                 value="duplicate", allow_blank=False, id="deepen")
                with Vertical(classes="field"):
                    yield Label(" ")
                    yield Checkbox("overwrite the output", id="force")
            with Horizontal(classes="row"):
                with Vertical(classes="field"):
                    yield Label("refit folder (optional; needs identity blocks)")
                    yield Input("", placeholder="e.g. datasets/demo/train/GTmod12", id="refit", classes="validated")
                with Vertical(classes="field"):
                    yield Label("validation set (optional; GTmod12/ + LRbicx<scale>/)")
                    yield Input(valset, placeholder="e.g. datasets/Set5", id="valset", classes="validated")
            yield self.problems_widget()
            yield JobProgress(id="job")
            yield Static(Text("ctrl+r runs the transfer; the per-layer share of L2 energy kept and, with a validation "
                              "set, PSNR/SSIM of source, transfer, nearest and bicubic show here", style="dim"),
                         id="result")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#source", Input).focus()
        self.reattach()

    def values(self) -> dict[str, Any]:
        return {name: self.query_one(f"#{name}", Input).value.strip()
                for name in ("source", "output", "feat", "conv", "refit", "valset")} | {
            "deepen": self.query_one("#deepen", Select).value, "force": self.query_one("#force", Checkbox).value}

    def validate(self) -> bool:
        v = self.values()
        problems: list[tuple[str | None, str]] = []
        if v["source"].lower() != "original":
            source = self.resolve(v["source"]) if v["source"] else None
            if source is None or not source.is_file():
                problems.append(("source", f"source {v['source'] or '(empty)'}: write 'original' or the path of "
                                           "an existing .pth"))
        if _positive(v["feat"]) is None:
            problems.append(("feat", "target width: a positive number of feature channels (the plan: 32)"))
        if _positive(v["conv"]) is None:
            problems.append(("conv", "target convs: a positive number of body convs (the plan: 32)"))
        if v["refit"]:
            folder = self.resolve(v["refit"])
            if not folder.is_dir():
                problems.append(("refit", f"refit folder {v['refit']}: not a folder"))
            elif not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
                problems.append(("refit", f"refit folder {v['refit']}: no images in it"))
            if v["deepen"] != "identity":
                problems.append(("refit", "a refit needs 'deepen by identity blocks' (duplicating a refit model "
                                          "breaks it)"))
        if v["valset"]:
            folder = self.resolve(v["valset"])
            if not folder.is_dir():
                problems.append(("valset", f"validation set {v['valset']}: not a folder"))
            elif not (folder / "GTmod12").is_dir() or not any(folder.glob("LRbicx*")):
                problems.append(("valset", f"validation set {v['valset']}: needs GTmod12/ and LRbicx<scale>/ "
                                           "(srcockpit data valset makes them)"))
        if not v["output"]:
            problems.append(("output", "output: the .pth file to write"))
        elif self.resolve(v["output"]).exists() and not v["force"]:
            problems.append(("output", f"output {v['output']} exists: tick 'overwrite' or choose another name"))
        return self.show_problems(problems)

    def action_start(self) -> None:
        if self.progress.running:
            self.notify("a transfer is running: wait for it (escape leaves it running)", severity="warning")
            return
        if not self.validate():
            return
        v = self.values()
        params = {"source": None if v["source"].lower() == "original" else v["source"], "output": v["output"],
                  "feat": int(v["feat"]), "conv": int(v["conv"]), "deepen": str(v["deepen"]),
                  "refit": v["refit"] or None, "valset": v["valset"] or None, "force": bool(v["force"])}
        self.report = None
        self.query_one("#result", Static).update("")
        self.launch(params)

    @on(JobProgress.Ended)
    def _finished(self, message: JobProgress.Ended) -> None:
        if message.status != FINISHED:
            return
        reports = [r.figures for r in message.results if "layers" in r.figures]
        if not reports:
            return
        self.report = reports[-1]
        self.query_one("#result", Static).update(self.render_report(self.report))

    def render_report(self, report: dict[str, Any]) -> Group:
        parts: list[Any] = []
        head = Text()
        head.append(f"{report.get('output')}", style="bold")
        head.append(f": {arch_label(report.get('target'))}, {report.get('parameters', 0):,} parameters; "
                    "load with param_key_g: params_ema")
        parts.append(head)
        parts.append(layer_table(report, compact=True))
        for note in report.get("notes") or []:
            parts.append(Text(f"  {note}", style="dim"))
        if report.get("validation"):
            parts.append(score_table(report["validation"]))
        else:
            parts.append(Text("no validation set given: no PSNR figures (add one to compare with nearest/bicubic)",
                              style="dim"))
        return Group(*parts)
