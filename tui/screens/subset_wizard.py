"""Subset wizard: pick source folders, counts, seed, link mode and gt_size; see the plan; build it as a job.

1. enter on a folder in the tree puts it in the source field; enter in the count field ("all" or N) adds
   the source; delete removes the highlighted one.
2. ctrl+r shows the plan (engine.data.subset.plan_subset, torch-free, in a thread: files per source and
   the disk a copy needs); ctrl+r again, with nothing changed, builds the subset as a job
   (`srcockpit data subset ... --job DIR`), followed like any job, with a progress bar.
3. At the end: what was left out and why (left_out.tsv), the meta_info path, and ctrl+o writes
   datasets.train.dataroot_gt and meta_info into an options YAML, leaving the rest of the file as it was.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, DataTable, DirectoryTree, Footer, Input, Label, Select, Static

from engine.protocol import FINISHED, UserError
from tui.widgets.job_progress import JobProgress, JobScreen

LINK_MODES = ("symlink", "hardlink", "copy")


class FolderTree(DirectoryTree):
    """Folders only, hidden and __dunder__ folders left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith((".", "__")) and p.is_dir()]


def parse_count(text: str) -> int | str | None:
    """'all'/'' -> None, '12' -> 12; anything else -> an error message (str)."""
    value = text.strip().lower()
    if value in ("", "all"):
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    return f"count {text.strip()!r}: write 'all' or a positive number"


def _human(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


# ------------------------------------------------------------------------------------ options file edit

def _yaml_scalar(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./@+-]+", value) else json.dumps(value)


_YAML_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+)\s*:(.*)$")


def set_train_paths(text: str, dataroot_gt: str, meta_info: str) -> str:
    """The options YAML with datasets.train.dataroot_gt and meta_info set; every other line kept as is.

    A line-level edit of block-style YAML (comments, order and quoting elsewhere survive); a UserError
    when the file has no datasets.train mapping in block style. The caller checks the result parses.
    """
    lines = text.splitlines(keepends=True)
    t_first, t_end, inner = _train_block(lines)
    pad = " " * inner
    newline = "\n" if not lines or lines[-1].endswith("\n") else ""
    gt_line = f"{pad}dataroot_gt: {_yaml_scalar(dataroot_gt)}\n"
    meta_line = f"{pad}meta_info: {_yaml_scalar(meta_info)}\n"
    gt = _find_key(lines, "dataroot_gt", t_first, t_end, inner)
    meta = _find_key(lines, "meta_info", t_first, t_end, inner)
    if gt is not None:
        lines[gt[0]] = gt_line
    if meta is not None:
        lines[meta[0]] = meta_line
    if gt is None and meta is None:
        lines[t_first:t_first] = [gt_line, meta_line]
    elif meta is None:
        lines.insert(gt[0] + 1, meta_line)  # type: ignore[index]
    elif gt is None:
        lines.insert(meta[0], gt_line)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    return "".join(lines)


def _train_block(lines: list[str]) -> tuple[int, int, int]:
    """(first line, end, indent of its keys) of datasets.train's block; a UserError when there is none."""
    datasets = _find_key(lines, "datasets", 0, len(lines), 0)
    if datasets is None:
        raise UserError("the options file has no top-level datasets: section",
                        "add datasets: train: ... (a basicsr options file)")
    first, end = _block(lines, datasets[0], 0)
    child = _first_indent(lines, first, end)
    train = _find_key(lines, "train", first, end, child) if child is not None else None
    if train is None:
        raise UserError("the options file has no datasets.train section in block style",
                        "add datasets: train: with dataroot_gt and meta_info")
    t_first, t_end = _block(lines, train[0], train[1])
    inner = _first_indent(lines, t_first, t_end)
    return t_first, t_end, train[1] + 2 if inner is None else inner


def _indent_of(line: str) -> int | None:
    """A line's indent; None for blank and comment lines."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    return len(line) - len(line.lstrip(" "))


def _first_indent(lines: list[str], first: int, end: int) -> int | None:
    return next((_indent_of(lines[n]) for n in range(first, end) if _indent_of(lines[n]) is not None), None)


def _block(lines: list[str], start: int, parent_indent: int) -> tuple[int, int]:
    """Lines after `start` deeper than parent_indent: (first, end)."""
    end = start + 1
    while end < len(lines):
        ind = _indent_of(lines[end])
        if ind is not None and ind <= parent_indent:
            break
        end += 1
    return start + 1, end


def _find_key(lines: list[str], name: str, first: int, end: int, indent: int | None) -> tuple[int, int] | None:
    """(line number, indent) of the first `name:` key in lines[first:end] at that indent (any when None)."""
    for number in range(first, end):
        match = _YAML_KEY.match(lines[number].rstrip("\n"))
        if match and match[2] == name and (indent is None or len(match[1]) == indent):
            return number, len(match[1])
    return None


def write_train_paths(options: Path, dataroot_gt: str, meta_info: str) -> Path:
    """Edit the file in place (a .bak copy beside it); the result must parse with the two values set."""
    import yaml

    text = options.read_text()
    new = set_train_paths(text, dataroot_gt, meta_info)
    try:
        data = yaml.safe_load(new)
        train = data["datasets"]["train"]
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise UserError(f"{options}: the edit would not give a readable datasets.train ({error})",
                        "set dataroot_gt and meta_info by hand") from error
    if str(train.get("dataroot_gt")) != dataroot_gt or str(train.get("meta_info")) != meta_info:
        raise UserError(f"{options}: could not set datasets.train.dataroot_gt/meta_info safely",
                        "set them by hand")
    backup = options.with_name(options.name + ".bak")
    shutil.copy2(options, backup)
    partial = options.with_name(f".{options.name}.partial")
    partial.write_text(new)
    partial.replace(options)
    return backup


# ------------------------------------------------------------------------------------ the screen

class SubsetWizardScreen(JobScreen):
    KIND = "subset"
    TITLE_TEXT = "Subset wizard: a checked, seeded training subset of several folders"
    DEFAULT_CSS = """
    SubsetWizardScreen #tree { width: 44; height: 12; border: round $primary 40%; }
    SubsetWizardScreen #sources-side { width: 1fr; height: auto; padding-left: 1; }
    SubsetWizardScreen #src-folder { width: 1fr; }
    SubsetWizardScreen #src-count { width: 14; }
    SubsetWizardScreen #add-source { min-width: 8; }
    SubsetWizardScreen #sources { height: 6; }
    SubsetWizardScreen #mode { width: 20; }
    SubsetWizardScreen #force-field { width: 30; }
    SubsetWizardScreen #plan { height: auto; }
    SubsetWizardScreen #report { height: auto; }
    SubsetWizardScreen #options-row { height: auto; display: none; }
    SubsetWizardScreen #options-row.-shown { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+o", "write_options", "write options", priority=True),
        Binding("delete", "remove_source", "remove source", show=False),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.sources: list[tuple[str, int | None]] = []
        self.planned: tuple | None = None  # the form values the shown plan was made from
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_title()
        with VerticalScroll(id="form"):
            with Horizontal(classes="row"):
                yield FolderTree(self.root, id="tree")
                with Vertical(id="sources-side"):
                    yield Label("source folder (enter on a tree folder fills it) and count: all or N")
                    with Horizontal(classes="row"):
                        yield Input(placeholder="datasets/DF2K/OST", id="src-folder", classes="validated")
                        yield Input("all", placeholder="all or N", id="src-count", classes="validated")
                        yield Button("add", id="add-source")
                    yield DataTable(id="sources", cursor_type="row", zebra_stripes=True)
            with Horizontal(classes="row"):
                with Vertical(classes="field"):
                    yield Label("output folder")
                    yield Input("datasets/subset", id="out", classes="validated")
                with Vertical(classes="field"):
                    yield Label("seed")
                    yield Input("0", id="seed", classes="validated", type="integer")
                with Vertical(classes="field", id="mode-field"):
                    yield Label("link mode")
                    yield Select([(m, m) for m in LINK_MODES], value="symlink", allow_blank=False, id="mode")
                with Vertical(classes="field"):
                    yield Label("gt_size (short side at least)")
                    yield Input("256", id="gt-size", classes="validated", type="integer")
                with Vertical(classes="field", id="force-field"):
                    yield Label(" ")
                    yield Checkbox("replace old subset", id="force")
            yield self.problems_widget()
            yield Static(Text("ctrl+r shows the plan (files per source, disk needed); ctrl+r again builds it",
                              style="dim"), id="plan")
            yield JobProgress(id="job")
            yield Static(id="report")
            with Vertical(id="options-row"):
                yield Label("options file to point at the subset (datasets.train.dataroot_gt and meta_info; "
                            "ctrl+o writes, a .bak copy is kept)")
                with Horizontal(classes="row"):
                    yield Input(self._default_options(), id="options", classes="validated")
                    yield Button("write", id="write-options")
        yield Footer()

    def _default_options(self) -> str:
        found = sorted((self.root / "options").glob("*.yml"))
        return str(found[0].relative_to(self.root)) if found else "options/train.yml"

    def on_mount(self) -> None:
        table = self.query_one("#sources", DataTable)
        table.add_column("source folder", key="folder")
        table.add_column("take", key="count")
        self.query_one("#src-folder", Input).focus()  # a typed path goes to the field; tab reaches the tree
        self.reattach()

    # ---------------------------------------------------------------- sources
    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    @on(DirectoryTree.DirectorySelected, "#tree")
    def _folder_picked(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#src-folder", Input).value = self._rel(Path(event.path))

    @on(Input.Submitted, "#src-folder")
    def _folder_entered(self) -> None:
        self.query_one("#src-count", Input).focus()

    @on(Input.Submitted, "#src-count")
    @on(Button.Pressed, "#add-source")
    def add_source(self) -> None:
        folder = self.query_one("#src-folder", Input).value.strip()
        count = parse_count(self.query_one("#src-count", Input).value)
        problems: list[tuple[str | None, str]] = []
        if not folder:
            problems.append(("src-folder", "source folder: pick one in the tree (enter) or type its path"))
        elif not self.resolve(folder).is_dir():
            problems.append(("src-folder", f"source folder {folder}: not a folder"))
        elif any(self.resolve(f).resolve() == self.resolve(folder).resolve() for f, _ in self.sources):
            problems.append(("src-folder", f"source folder {folder} is already in the list"))
        if isinstance(count, str):
            problems.append(("src-count", count))
        if not self.show_problems(problems):
            return
        assert not isinstance(count, str)
        self.sources.append((folder, count))
        self._show_sources()
        self.query_one("#src-folder", Input).value = ""
        self.query_one("#src-count", Input).value = "all"
        self.query_one("#src-folder", Input).focus()

    def action_remove_source(self) -> None:
        table = self.query_one("#sources", DataTable)
        if self.focused is table and self.sources and table.cursor_row is not None:
            del self.sources[min(table.cursor_row, len(self.sources) - 1)]
            self._show_sources()

    def _show_sources(self) -> None:
        table = self.query_one("#sources", DataTable)
        table.clear()
        for folder, count in self.sources:
            table.add_row(folder, "all" if count is None else str(count))
        self.planned = None

    # ---------------------------------------------------------------- plan and run
    def form(self) -> tuple:
        return (tuple(self.sources), self.query_one("#out", Input).value.strip(),
                self.query_one("#seed", Input).value.strip(), self.query_one("#mode", Select).value,
                self.query_one("#gt-size", Input).value.strip(), self.query_one("#force", Checkbox).value)

    def validate(self) -> bool:
        sources, out, seed, _mode, gt_size, force = self.form()
        problems: list[tuple[str | None, str]] = []
        if not sources:
            problems.append(("src-folder", "no source yet: pick a folder, give a count, press enter (or add)"))
        for folder, _ in sources:
            if not self.resolve(folder).is_dir():
                problems.append((None, f"source folder {folder} no longer exists"))
        if not out:
            problems.append(("out", "output folder: give the folder the subset is written to"))
        else:
            target = self.resolve(out)
            if target.exists() and not target.is_dir():
                problems.append(("out", f"output {out} is a file"))
            elif target.is_dir() and any(target.iterdir()):
                if not (target / "subset.json").is_file():
                    problems.append(("out", f"output {out} exists and is not a subset: choose another folder"))
                elif not force:
                    problems.append(("out", f"output {out} holds a former subset: tick 'replace' or choose "
                                            "another folder"))
        if not re.fullmatch(r"-?\d+", seed):
            problems.append(("seed", "seed: a whole number"))
        if not gt_size.isdigit() or int(gt_size) < 1:
            problems.append(("gt-size", "gt_size: a positive number of pixels"))
        return self.show_problems(problems)

    def params(self) -> dict[str, Any]:
        """The subset job's parameters (engine.job_kinds.subset)."""
        sources, out, seed, mode, gt_size, force = self.form()
        return {"sources": [f"{folder}={'all' if count is None else count}" for folder, count in sources],
                "out": out, "seed": int(seed), "mode": str(mode), "gt_size": int(gt_size), "force": bool(force)}

    def action_start(self) -> None:
        if self.progress.running:
            self.notify("a subset job is running: wait for it (escape leaves it running)", severity="warning")
            return
        if not self.validate():
            return
        if self.planned != self.form():
            self.make_plan(self.form())
            return
        folder = self._new_folder()
        self.result = None
        self.query_one("#report", Static).update("")
        self.query_one("#options-row").set_class(False, "-shown")
        self.launch(self.params(), folder=folder)

    def _new_folder(self) -> Path:
        from tui.jobs import job_folder

        return job_folder(self.root, self.KIND)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def make_plan(self, form: tuple) -> None:
        sources, out, seed, mode, gt_size, _force = form
        try:
            from engine.data.subset import SourceSpec, plan_subset

            specs = [SourceSpec(self.resolve(folder), count) for folder, count in sources]
            plan = plan_subset(specs, self.resolve(out), seed=int(seed), mode=str(mode), gt_size=int(gt_size))
            need = plan.planned_bytes()
            target = self.resolve(out)
            probe = next((p for p in (target, *target.parents) if p.exists()), self.root)
            free = shutil.disk_usage(probe).free
        except UserError as error:
            self.app.call_from_thread(self.show_problems, [(None, str(error))])
            return
        except Exception as error:  # an unreadable folder: say it, do not crash the cockpit
            self.app.call_from_thread(self.show_problems, [(None, f"{type(error).__name__}: {error}")])
            return
        table = Table(title=f"plan -> {out}  (seed {seed}, {mode}, gt_size {gt_size})", title_justify="left",
                      expand=False)
        table.add_column("source")
        table.add_column("images there", justify="right")
        table.add_column("take", justify="right")
        table.add_column("sub-folders", overflow="fold")
        for source in plan.sources:
            cats = ", ".join(f"{k or '.'}:{v}" for k, v in source.categories.items()) if source.recursive else ""
            table.add_row(f"{source.label}  [dim]{self._rel(source.spec.path)}[/]", str(len(source.candidates)),
                          str(source.wanted), cats[:60])
        images = sum(s.wanted for s in plan.sources)
        text = Text()
        if mode == "copy":
            text.append(f"{images} images; copying needs about {_human(need)}, {_human(free)} free there")
            if need > free * 0.98:
                text.append("  not enough space", style="bold red")
        else:
            text.append(f"{images} images; {mode} mode needs next to no disk (a copy would need {_human(need)})")
        text.append("\nimages too small or unreadable are replaced by the next of the same source\n")
        text.append("ctrl+r again builds it", style="bold")

        def show() -> None:
            from rich.console import Group

            self.planned = form
            self.show_problems([])
            self.query_one("#plan", Static).update(Group(table, text))

        self.app.call_from_thread(show)

    # ---------------------------------------------------------------- results
    @on(JobProgress.Ended)
    def _finished(self, message: JobProgress.Ended) -> None:
        if message.status != FINISHED or not message.results:
            return
        self.result = message.results[-1].figures
        self.query_one("#report", Static).update(self.report(self.result))
        self.query_one("#options-row").set_class(True, "-shown")

    def report(self, result: dict[str, Any]) -> Text:
        out = self.resolve(str(result.get("out") or ""))
        text = Text()
        text.append(f"subset: {result.get('images')} images in {result.get('out')}\n", style="bold")
        for label, figures in (result.get("sources") or {}).items():
            line = f"  {label}: {figures.get('chosen')} of {figures.get('wanted')}"
            if figures.get("left_out"):
                line += f", {figures['left_out']} left out"
            text.append(line)
            if figures.get("short"):
                text.append("  (not enough usable images)", style="yellow")
            text.append("\n")
        left_out = int(result.get("left_out") or 0)
        tsv = out / "left_out.tsv"
        if left_out:
            text.append(f"left out {left_out} (reasons in {tsv}):\n", style="yellow")
            try:
                rows = [r for r in tsv.read_text().splitlines() if r and not r.startswith("#")]
            except OSError:
                rows = []
            for row in rows[:8]:
                path, _, reason = row.partition("\t")
                text.append(f"  {self._rel(Path(path))}: {reason}\n")
        else:
            text.append("nothing left out: every picked image decoded and was large enough\n")
        text.append("meta_info: ", style="bold")
        text.append(f"{result.get('meta_info')}\n")
        return text

    def action_write_options(self) -> None:
        if not self.result:
            self.notify("build a subset first (ctrl+r)", severity="warning")
            return
        field = self.query_one("#options", Input).value.strip()
        options = self.resolve(field) if field else None
        if options is None or not options.is_file():
            self.show_problems([("options", f"options file {field or '(empty)'}: no such file")])
            return
        try:
            backup = write_train_paths(options, str(self.result["out"]), str(self.result["meta_info"]))
        except UserError as error:
            self.show_problems([("options", str(error))])
            return
        except OSError as error:
            self.show_problems([("options", f"{options}: {error}")])
            return
        self.show_problems([])
        self.notify(f"{field}: datasets.train.dataroot_gt and meta_info set (previous file: {backup.name})",
                    timeout=6)

    @on(Button.Pressed, "#write-options")
    def _write_pressed(self) -> None:
        self.action_write_options()
