"""Checkpoint ranking of one run: from its log at once, scored on demand as a job, promote the chosen one.

- At once: the run's val events (PSNR/SSIM per validation set at each validated iteration, with NIQE and the
  artifact figures its val.metrics name) beside the checkpoint files in models/, ranked by highest PSNR, then
  SSIM; the best marked, and a validation whose colour shift or checkerboard is above the live alerts' limits
  (engine.health.artifact_problems) marked with the reason and ranked after the clean ones, as `srcockpit rank`
  ranks.
- ctrl+r: `srcockpit rank RUN --job DIR` scores every models/net_g_*.pth (params and params_ema apart)
  with nearest/bicubic (and the original model) beside; its ranking replaces the log's.
- p: promote the highlighted candidate of a scored ranking (a job: rank again from the cache, then
  engine.rank.promote) to the weights path given.
- The highlighted row's validation images: LR / output / GT paths (open them in an image viewer).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Checkbox, DataTable, Footer, Input, Label, Static

from engine.artifacts import figure_names, shown_names
from engine.health import artifact_problems
from engine.metric_info import SHOWN_FIGURES, figure_text
from engine.protocol import (
    FINISHED,
    AnyEvent,
    PromoteFigures,
    RankFigures,
    RunEvent,
    RunPaths,
    ValEvent,
    figures_as,
)
from tui.widgets.job_progress import JobProgress, JobScreen

DEFAULT_TARGET = "weights/small-realesr-animevideox2v3-finetuned.pth"
CHECKPOINT_RE = re.compile(r"^net_g_(\d+|latest)\.pth$")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else float("nan")


def rank_key(psnr: float, ssim: float) -> tuple[float, float]:
    """Highest PSNR, then SSIM; NaN last."""
    return (-psnr if psnr == psnr else math.inf, -ssim if ssim == ssim else math.inf)


@dataclass
class RankRow:
    """One line of the table: a validated iteration (from the log) or a scored checkpoint entry (from a job)."""

    iter: int | None
    scores: dict[str, tuple[float, float]]  # validation set -> (PSNR, SSIM)
    psnr: float
    ssim: float
    file: str = ""
    images: list[str] = field(default_factory=list)
    rank: int | None = None
    label: str = ""
    entry: str = ""
    note: str = ""
    error: str = ""
    figures: dict[str, float] = field(default_factory=dict)  # SHOWN_FIGURES' keys, means over the sets
    flags: list[str] = field(default_factory=list)  # artifacts above the health limits


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def log_rows(events: list[AnyEvent], models: Path) -> tuple[list[RankRow], list[str]]:
    """One row per validated iteration (means over the sets), ranked; and the set names."""
    val_metrics = next(((e.options.get("val") or {}).get("metrics") for e in reversed(events)
                        if isinstance(e, RunEvent)), None) or {}
    names, limits = shown_names(val_metrics), figure_names(val_metrics)
    by_iter: dict[int, dict[str, ValEvent]] = {}
    sets: list[str] = []
    for event in events:
        if isinstance(event, ValEvent):
            sets += [event.dataset] if event.dataset not in sets else []
            by_iter.setdefault(event.iter, {})[event.dataset] = event
    rows = []
    for it, vals in by_iter.items():
        file = models / f"net_g_{it}.pth"
        scores = {name: (_num(v.metrics.get("psnr")), _num(v.metrics.get("ssim"))) for name, v in vals.items()}
        flags = [f"{name}: {problem}" if len(sets) > 1 else problem for name, v in vals.items()
                 for problem in artifact_problems(v.metrics, limits, v.baselines.get("bicubic"))]
        rows.append(RankRow(it, scores, _mean([p for p, _ in scores.values()]), _mean([s for _, s in scores.values()]),
                            file=str(file) if file.is_file() else "",
                            images=[image for v in vals.values() for image in v.images], flags=flags,
                            figures={key: _mean([_num(v.metrics.get(name)) for v in vals.values()])
                                     for key, name in names.items()}))
    rows.sort(key=lambda r: (bool(r.flags), *rank_key(r.psnr, r.ssim), -(r.iter or 0)))
    for number, row in enumerate(rows, start=1):
        row.rank = number
    return rows, sets


class RankingScreen(JobScreen):
    KIND = "rank"
    TITLE_TEXT = "Checkpoint ranking"
    DEFAULT_CSS = """
    RankingScreen #source-line { height: auto; padding: 0 1; }
    RankingScreen #ranked { height: auto; max-height: 16; }
    RankingScreen #references { height: auto; padding: 0 1; }
    RankingScreen #images { height: auto; padding: 0 1; color: $text-muted; }
    RankingScreen #promoted { height: auto; padding: 0 1; }
    RankingScreen #original-field { width: 36; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("p", "promote", "promote")]

    def __init__(self, root: Path, run: RunPaths) -> None:
        super().__init__(root)
        self.run = run
        self.rows: list[RankRow] = []  # what the table shows, in order
        self.sets: list[str] = []
        self.source = "log"  # "log" or "job"
        self.log_images: dict[int, list[str]] = {}
        self.val_dirs: list[tuple[str, str]] = []  # (gt, lq) folders from the run's options
        self.rank_result: RankFigures | None = None
        self.promoted: PromoteFigures | None = None
        self.mode = "rank"  # which job the progress widget follows: rank or promote

    def compose(self) -> ComposeResult:
        yield from self.compose_title()
        with VerticalScroll(id="form"):
            yield Static(id="source-line")
            yield DataTable(id="ranked", cursor_type="row", zebra_stripes=True)
            yield Static(id="references")
            yield Static(id="images")
            with Horizontal(classes="row"):
                with Vertical(classes="field"):
                    yield Label("promote to (p promotes the highlighted scored checkpoint: params and EMA, + .json)")
                    yield Input(DEFAULT_TARGET, id="target", classes="validated")
                with Vertical(classes="field", id="original-field"):
                    yield Label(" ")
                    yield Checkbox("compare with the original", value=True, id="original")
            yield self.problems_widget()
            yield JobProgress(id="job")
            yield Static(id="promoted")
        yield Footer()

    def compose_title(self) -> ComposeResult:
        title = Text(f"{self.TITLE_TEXT}: {self.run.root.name}", style="bold")
        title.append("  —  ctrl+r scores every checkpoint (a job) · p promotes · escape goes back", style="dim")
        yield Static(title, id="screen-title")

    def on_mount(self) -> None:
        self.query_one("#ranked", DataTable).focus()
        self.load_log()
        self.reattach()

    def find_job(self) -> Path | None:
        """The newest rank job of this run (its scores are shown even when it finished long ago)."""
        from tui.jobs import find_jobs, read_job

        for folder in find_jobs(self.root, self.KIND)[:30]:
            run = read_job(folder).params.get("run")
            if run and Path(run).resolve() == self.run.root.resolve():
                return folder
        return None

    # ---------------------------------------------------------------- the log
    @work(thread=True, exclusive=True, group="read-log", exit_on_error=False)
    def load_log(self) -> None:
        from engine.protocol import load_events

        events = [e for e in load_events(self.run.events).events if isinstance(e, (ValEvent, RunEvent))]
        rows, sets = log_rows(events, self.run.models)
        options = next((e.options for e in reversed(events) if isinstance(e, RunEvent)), {})
        dirs = []
        for key, dataset in (options.get("datasets") or {}).items():
            if key.startswith("val") and isinstance(dataset, dict) and dataset.get("dataroot_gt"):
                dirs.append((str(dataset.get("dataroot_gt")), str(dataset.get("dataroot_lq") or "")))
        self.app.call_from_thread(self._log_loaded, rows, sets, dirs)

    def _log_loaded(self, rows: list[RankRow], sets: list[str], dirs: list[tuple[str, str]]) -> None:
        self.val_dirs = dirs
        self.log_images = {row.iter: row.images for row in rows if row.iter is not None}
        if self.source == "log":
            self.rows, self.sets = rows, sets
            self.fill_table()

    def fill_table(self) -> None:
        table = self.query_one("#ranked", DataTable)
        table.clear(columns=True)
        table.add_column("rank", key="rank")
        table.add_column("checkpoint", key="model")
        table.add_column("iter", key="iter")
        for name in self.sets:
            suffix = f" {name}" if len(self.sets) > 1 else ""
            table.add_column(f"PSNR{suffix}", key=f"psnr:{name}")
            table.add_column(f"SSIM{suffix}", key=f"ssim:{name}")
        if len(self.sets) > 1:
            table.add_column("mean PSNR", key="psnr")
            table.add_column("mean SSIM", key="ssim")
        shown = [(key, short) for key, short, _ in SHOWN_FIGURES if any(key in row.figures for row in self.rows)]
        for key, short in shown:  # only the figures the run measures: a PSNR/SSIM-only run keeps its columns
            table.add_column(short, key=f"figure:{key}")
        table.add_column("", key="flag")
        theme = self.app.current_theme
        for row in self.rows:
            best = row.rank == 1
            style = f"bold {theme.success}" if best else ""
            label = row.label or (Path(row.file).name if row.file else "(no checkpoint file)")
            cells: list[Any] = [Text(str(row.rank or "-"), style=style, justify="right"), Text(label, style=style),
                                Text(str(row.iter) if row.iter is not None else "latest", justify="right")]
            for name in self.sets:
                psnr, ssim = row.scores.get(name, (float("nan"), float("nan")))
                cells += [Text(f"{psnr:.3f}" if psnr == psnr else "-", justify="right", style=style),
                          Text(f"{ssim:.4f}" if ssim == ssim else "-", justify="right")]
            if len(self.sets) > 1:
                cells += [Text(f"{row.psnr:.3f}", justify="right", style=style),
                          Text(f"{row.ssim:.4f}", justify="right")]
            cells += [Text(figure_text(key, row.figures.get(key)), justify="right") for key, _ in shown]
            cells.append(self.flag_cell(row, style))
            table.add_row(*cells)
        line = Text()
        if self.source == "log":
            line.append("from the run's log", style="bold")
            line.append(" (the engine's validations, network as validated): ")
            line.append(f"{len(self.rows)} validated iterations" if self.rows else "no validation yet", style="bold")
            files = sorted(p.name for p in self.run.models.glob("net_g_*.pth")) if self.run.models.is_dir() else []
            line.append(f"; checkpoint files: {', '.join(files) if files else 'none'}\n")
            line.append("ctrl+r scores every checkpoint file (params and EMA) on the validation sets", style="dim")
        else:
            result = self.rank_result or RankFigures(candidates=[])
            settings = result.settings
            line.append("scored by `srcockpit rank`", style="bold")
            line.append(f": rank by highest PSNR, then SSIM; {'Y' if settings.get('test_y_channel') else 'RGB'}, "
                        f"crop_border {settings.get('crop_border')}; {result.evaluated} evaluated, "
                        f"{result.reused} from the cache")
        self.query_one("#source-line", Static).update(line)
        self.show_images()

    def flag_cell(self, row: RankRow, style: str) -> Text:
        """best, and why a row is ranked after the clean ones (its artifacts), or its note or error."""
        text = Text("★ best" if row.rank == 1 else "", style=style)
        if row.flags:
            text.append(("  " if text else "") + "! " + "; ".join(row.flags),
                        style=f"bold {self.app.current_theme.warning or 'yellow'}")
        elif row.rank != 1:
            text.append(row.error or row.note, style="dim")
        return text

    # ---------------------------------------------------------------- images
    @on(DataTable.RowHighlighted, "#ranked")
    def _highlighted(self) -> None:
        self.show_images()

    def selected(self) -> RankRow | None:
        table = self.query_one("#ranked", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def show_images(self) -> None:
        row = self.selected()
        widget = self.query_one("#images", Static)
        if row is None or row.iter is None:
            widget.update("")
            return
        outputs = row.images or self.log_images.get(row.iter, [])
        if not outputs:
            widget.update(Text(f"no validation images saved at iteration {row.iter} (val.save_img)"))
            return
        text = Text(f"validation crops at iteration {row.iter} (LR / output / GT; open them in an image viewer):\n")
        for output in outputs[:6]:
            name = Path(output).parent.name
            lr, gt = self.pair_paths(name)
            text.append(f"  {name}: ", style="bold")
            text.append(f"LR {lr or '?'}  /  output {output}  /  GT {gt or '?'}\n")
        widget.update(text)

    def pair_paths(self, name: str) -> tuple[str, str]:
        for gt_dir, lq_dir in self.val_dirs:
            gt = self._find(gt_dir, name)
            if gt:
                return self._find(lq_dir, name) if lq_dir else "", gt
        return "", ""

    def _find(self, folder: str, stem: str) -> str:
        base = Path(folder)
        base = base if base.is_absolute() else self.root / base
        for path in sorted(base.glob(f"{stem}.*")) if base.is_dir() else []:
            return str(path)
        return ""

    # ---------------------------------------------------------------- jobs
    def action_start(self) -> None:
        if self.progress.running:
            self.notify("a job is running: wait for it (escape leaves it running)", severity="warning")
            return
        if not self.run.models.is_dir() or not any(self.run.models.glob("net_g_*.pth")):
            self.show_problems([(None, f"{self.run.root.name} has no checkpoint yet (models/net_g_*.pth)")])
            return
        self.show_problems([])
        self.mode = "rank"
        from tui.jobs import job_folder

        folder = job_folder(self.root, self.KIND)
        self.launch({"run": str(self.run.root), "original": self.original()}, folder=folder)

    def action_promote(self) -> None:
        if self.progress.running:
            self.notify("a job is running: wait for it", severity="warning")
            return
        row = self.selected()
        target = self.query_one("#target", Input).value.strip()
        problems: list[tuple[str | None, str]] = []
        if self.source != "job":
            problems.append((None, "promote needs scored checkpoints: ctrl+r scores them first (the log's "
                                   "validations do not say which weights were validated)"))
        elif row is None or row.rank is None:
            problems.append((None, "choose a ranked checkpoint (up/down), then p"))
        if not target:
            problems.append(("target", "promote to: the .pth path to write"))
        elif not target.endswith(".pth"):
            problems.append(("target", f"promote to {target}: give a .pth file name"))
        if not self.show_problems(problems):
            return
        assert row is not None
        self.mode = "promote"
        from tui.jobs import job_folder

        folder = job_folder(self.root, "promote")
        self.launch({"run": str(self.run.root), "file": row.file, "entry": row.entry, "to": target,
                     "original": self.original()}, folder=folder, kind="promote")

    def original(self) -> str:
        """The original model shown beside the candidates: the shipped one, or none."""
        return "auto" if self.query_one("#original", Checkbox).value else "none"

    @on(JobProgress.Ended)
    def _finished(self, message: JobProgress.Ended) -> None:
        if message.status != FINISHED:
            return
        for event in message.results:
            ranked, promoted = figures_as(event.figures, RankFigures), figures_as(event.figures, PromoteFigures)
            if ranked is not None:
                self.show_ranking(ranked)
            elif promoted is not None:
                self.show_promoted(promoted)

    def show_promoted(self, promoted: PromoteFigures) -> None:
        self.promoted = promoted
        text = Text.assemble(("promoted ", "bold"))
        text.append(f"{promoted.label} (rank {promoted.rank}, PSNR {_num(promoted.psnr):.3f} dB, "
                    f"SSIM {_num(promoted.ssim):.4f}) -> {promoted.weights}\n")
        text.append(f"scores and source in {promoted.sidecar}", style="dim")
        self.query_one("#promoted", Static).update(text)

    def show_ranking(self, result: RankFigures) -> None:
        self.rank_result = result
        self.source = "job"
        self.sets = [v.name for v in result.valsets]
        rows = []
        for candidate in result.candidates:
            scores = {name: (_num(s.psnr), _num(s.ssim)) for name, s in candidate.scores.items()}
            file = Path(candidate.file)
            rows.append(RankRow(candidate.iter, scores, _num(candidate.psnr), _num(candidate.ssim), file=str(file),
                                images=self.log_images.get(candidate.iter, []) if candidate.iter is not None else [],
                                rank=candidate.rank, label=f"{file.name} [{candidate.entry}]", entry=candidate.entry,
                                note=candidate.note or "", error=candidate.error or "", flags=candidate.flags,
                                figures={k: _num(v) for k, v in candidate.figures.items()}))
        self.rows = rows
        self.fill_table()
        refs = Text()
        for reference in result.references:
            refs.append(f"{reference.label}: ", style="bold")
            refs.append(f"PSNR {_num(reference.psnr):.3f}  SSIM {_num(reference.ssim):.4f}  ")
            for key, short, _ in SHOWN_FIGURES:
                if key in reference.figures:
                    refs.append(f"{short} {figure_text(key, reference.figures[key])}  ")
            refs.append(f"{reference.description}\n", style="dim")
        for note in result.notes:
            refs.append(f"note: {note}\n", style="yellow")
        self.query_one("#references", Static).update(refs)
