"""The job screens (subset wizard, weight transfer, ranking, export) driven by Pilot through real jobs.

Every job runs as a real detached `python -m engine.job_runner ...` process on tiny data; the tests wait on the
job's event log with a bounded timeout. Snapshots show each screen as it opens, at 80x24, 160x48 and 240x70
in the dark and light themes (regenerate with --snapshot-update and look at each before accepting it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from textual.widgets import Button, Checkbox, DataTable, Footer, Input, Select, Static, Tree
from tui_helpers import FIXTURE_ROOT, frozen_clock, sync, wait_for

from tui.app import make_app
from tui.config import Config
from tui.jobs import find_jobs, job_alive, read_job
from tui.screens.export import ExportScreen
from tui.screens.ranking import RankingScreen
from tui.screens.subset_wizard import SubsetWizardScreen, set_train_paths
from tui.screens.transfer import TransferScreen
from tui.widgets.job_progress import JobProgress

SIZE = (150, 46)
JOB_TIMEOUT = 120.0


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCOCKPIT_CONFIG_DIR", str(tmp_path / "config"))


def app_at(root: Path, run: str | None = None):
    return make_app(root, run, config=Config(theme="srcockpit-dark"), save_settings=False)


def write_photos(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for number, (h, w) in enumerate(sizes):
        path = folder / f"img_{number:02d}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus an input, clear it and type, key by key, as a user does."""
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    widget.value = ""
    for char in text:
        await pilot.press(char if char not in "/._-=" else {"/": "slash", ".": "full_stop", "_": "underscore",
                                                             "-": "minus", "=": "equals_sign"}[char])


async def wait_job(pilot, timeout: float = JOB_TIMEOUT) -> JobProgress:
    progress = pilot.app.screen.query_one(JobProgress)
    assert await wait_for(pilot, lambda: progress.status in ("finished", "failed", "lost"), timeout=timeout), \
        f"job still {progress.status} after {timeout} s: {progress.folder}"
    await pilot.pause()
    return progress


def plain(widget) -> str:
    """What a Static shows, as plain text (rich renderables included)."""
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def shown(pilot, selector: str) -> str:
    return plain(pilot.app.screen.query_one(selector))


def problems(pilot) -> str:
    return shown(pilot, "#problems")


# ---------------------------------------------------------------------------------------------- subset

OPTIONS_YAML = """\
# my fine-tune
name: mine
datasets:
  train:
    name: DF2K  # the plan's set
    type: RealESRGANDataset
    dataroot_gt: datasets/DF2K
    meta_info: datasets/DF2K/meta_info/old.txt
    io_backend:
      type: disk
  val:
    name: Set5
    dataroot_gt: datasets/Set5/GTmod12
train:
  total_iter: 10
"""


def test_set_train_paths_keeps_the_rest_of_the_file():
    new = set_train_paths(OPTIONS_YAML, "datasets/sub", "datasets/sub/meta_info/meta_info_sub.txt")
    assert new.replace("datasets/sub/meta_info/meta_info_sub.txt", "datasets/DF2K/meta_info/old.txt").replace(
        "dataroot_gt: datasets/sub\n", "dataroot_gt: datasets/DF2K\n") == OPTIONS_YAML
    without = OPTIONS_YAML.replace("    meta_info: datasets/DF2K/meta_info/old.txt\n", "")
    added = set_train_paths(without, "a b/sub", "m.txt")
    import yaml

    train = yaml.safe_load(added)["datasets"]["train"]
    assert train["dataroot_gt"] == "a b/sub" and train["meta_info"] == "m.txt" and train["name"] == "DF2K"
    assert yaml.safe_load(added)["datasets"]["val"]["dataroot_gt"] == "datasets/Set5/GTmod12"


@sync
async def test_subset_wizard_validates_plans_builds_and_writes_options(tmp_path):
    root = tmp_path
    write_photos(root / "src_a", [(40, 40)] * 4 + [(16, 16)])  # one too small for gt_size 32
    write_photos(root / "src_b", [(48, 40)] * 3, seed=1)
    (root / "src_b" / "broken.png").write_bytes(Image.open(root / "src_b" / "img_00.png").tobytes()[:50])
    (root / "options").mkdir()
    (root / "options" / "mine.yml").write_text(OPTIONS_YAML)
    app = app_at(root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        screen = pilot.app.screen
        assert isinstance(screen, SubsetWizardScreen)
        # nothing given: clear messages in place, no job
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "no source yet" in problems(pilot)
        assert screen.query_one("#src-folder").has_class("-invalid")
        # the tree: options, src_a, src_b under the root; enter on src_a fills the folder field
        tree = screen.query_one("#tree")
        await wait_for(pilot, lambda: len(tree.root.children) >= 3)
        tree.focus()
        await pilot.press("down", "down", "enter")
        assert screen.query_one("#src-folder").value == "src_a"
        await type_into(pilot, "#src-count", "zero")
        await pilot.press("enter")
        assert "write 'all' or a positive number" in problems(pilot)
        await type_into(pilot, "#src-count", "5")
        await pilot.press("enter")
        assert screen.sources == [("src_a", 5)]
        await type_into(pilot, "#src-folder", "src_b")
        await pilot.press("enter")  # moves to the count field, "all" already there
        await pilot.press("enter")
        assert screen.sources == [("src_a", 5), ("src_b", None)]
        await type_into(pilot, "#gt-size", "32")
        await type_into(pilot, "#seed", "7")
        # first ctrl+r: the plan, no job yet
        await pilot.press("ctrl+r")
        assert await wait_for(pilot, lambda: screen.planned is not None, timeout=20)
        plan = shown(pilot, "#plan")
        assert "src_a" in plan and "src_b" in plan and "9 images" in plan and "ctrl+r again" in plan
        assert not find_jobs(root, "subset")
        # second ctrl+r: the job
        await pilot.press("ctrl+r")
        progress = await wait_job(pilot)
        assert progress.status == "finished", progress.error
        folder = screen.job_folder
        assert folder.parent == root / "experiments" and folder.name.startswith("job-subset-")
        state = read_job(folder)
        assert state.final and state.results[-1].figures["images"] == 7
        assert (root / "datasets" / "subset" / "meta_info" / "meta_info_subset.txt").is_file()
        report = shown(pilot, "#report")
        assert "left out 2" in report and "img_04.png" in report and "broken.png" in report
        assert "meta_info_subset.txt" in report
        # ctrl+o: the options file points at the subset, the rest kept
        await type_into(pilot, "#options", "options/nope.yml")
        await pilot.press("ctrl+o")
        assert "no such file" in problems(pilot)
        await type_into(pilot, "#options", "options/mine.yml")
        await pilot.press("ctrl+o")
        await pilot.pause()
        import yaml

        written = yaml.safe_load((root / "options" / "mine.yml").read_text())
        assert written["datasets"]["train"]["dataroot_gt"] == "datasets/subset"
        assert written["datasets"]["train"]["meta_info"] == "datasets/subset/meta_info/meta_info_subset.txt"
        assert written["datasets"]["val"] == {"name": "Set5", "dataroot_gt": "datasets/Set5/GTmod12"}
        assert "# the plan's set" in (root / "options" / "mine.yml").read_text()
        assert (root / "options" / "mine.yml.bak").read_text() == OPTIONS_YAML
        # the same output again without 'replace': refused in place
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "former subset" in problems(pilot)


@sync
async def test_a_failing_job_shows_its_error_in_place(tmp_path):
    write_photos(tmp_path / "small", [(20, 20)] * 3)  # all below the default gt_size 256
    app = app_at(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        screen = pilot.app.screen
        await type_into(pilot, "#src-folder", "small")
        await pilot.press("enter", "enter")
        await pilot.press("ctrl+r")
        assert await wait_for(pilot, lambda: screen.planned is not None, timeout=20)
        await pilot.press("ctrl+r")
        progress = await wait_job(pilot)
        assert progress.status == "failed"
        error = shown(pilot, "#job-error")
        assert "no usable image" in error and "gt-size" in error
        assert read_job(screen.job_folder).status == "failed" and not job_alive(screen.job_folder)
        assert shown(pilot, "#report") == "\n"  # no report for a failed build


# ---------------------------------------------------------------------------------------------- transfer

@sync
async def test_transfer_validates_then_transfers_the_original_with_scores(run_root):
    root = run_root
    (root / "calib").mkdir()
    app = app_at(root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("T")
        screen = pilot.app.screen
        assert isinstance(screen, TransferScreen)
        await type_into(pilot, "#source", "missing.pth")
        await type_into(pilot, "#feat", "0")
        await type_into(pilot, "#refit", "calib")
        await pilot.press("ctrl+r")
        await pilot.pause()
        text = problems(pilot)
        assert "write 'original' or the path of an existing .pth" in text
        assert "target width: a positive number" in text
        assert "no images in it" in text and "needs 'deepen by identity blocks'" in text
        assert screen.query_one("#feat").has_class("-invalid") and not screen.query_one("#conv").has_class("-invalid")
        assert not find_jobs(root, "transfer")
        await type_into(pilot, "#source", "original")
        await type_into(pilot, "#feat", "8")
        await type_into(pilot, "#conv", "4")
        await type_into(pilot, "#refit", "")
        await type_into(pilot, "#output", "weights/small.pth")
        assert screen.query_one("#valset").value == "datasets/demo/val"  # found beside the run
        await pilot.press("ctrl+r")
        progress = await wait_job(pilot)
        assert progress.status == "finished", (progress.error, progress.output)
        assert (root / "weights" / "small.pth").is_file()
        result = shown(pilot, "#result")
        assert "64 feat / 16 conv / x2 / prelu -> 8 feat / 4 conv / x2 / prelu" in result and "L2 energy kept" in result
        assert "body.0 (first)" in result and "8/64" in result
        for model in ("nearest", "bicubic", "source", "transferred"):
            assert model in result
        validation = screen.report["validation"]
        assert validation["bicubic"]["psnr"] > validation["transferred"]["psnr"]  # pruning to 8 costs a lot
        assert f"{validation['transferred']['psnr']:.2f}" in result
        # the output exists now: refused without 'overwrite'
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "exists: tick 'overwrite'" in problems(pilot)


# ---------------------------------------------------------------------------------------------- ranking + export

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real tiny run (options/tiny_cpu.yml: 8 iterations, checkpoints and validation at 4 and 8)."""
    from engine.launch import run_engine
    from tests.conftest import TINY_OPTIONS, write_tiny_dataset

    root = write_tiny_dataset(tmp_path_factory.mktemp("ranked"))
    before = Path.cwd()
    os.chdir(root)  # the options' dataset paths are relative to the folder srcockpit runs in
    try:
        assert run_engine(TINY_OPTIONS, root=root) == "finished"
    finally:
        os.chdir(before)
    return root


@sync
async def test_ranking_shows_the_log_then_scores_and_promotes_the_chosen_checkpoint(tiny_run, monkeypatch):
    root = tiny_run
    monkeypatch.chdir(root)
    app = app_at(root)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(pilot, lambda: getattr(pilot.app.screen, "loaded", False))
        await pilot.press("k")
        screen = pilot.app.screen
        assert isinstance(screen, RankingScreen)
        assert await wait_for(pilot, lambda: len(screen.rows) == 2)
        # at once, from the log: iterations 4 and 8 with their checkpoint files, best first and marked
        events = [json.loads(line) for line in (root / "experiments/tiny_cpu/cockpit/events.jsonl").open()]
        vals = sorted((e for e in events if e["type"] == "val"), key=lambda e: -e["metrics"]["psnr"])
        assert [row.iter for row in screen.rows] == [v["iter"] for v in vals]
        table = screen.query_one("#ranked")
        first = [str(cell) for cell in table.get_row_at(0)]
        assert first[1] == f"net_g_{vals[0]['iter']}.pth" and "best" in first[-1]
        assert f"{vals[0]['metrics']['psnr']:.3f}" in first
        assert "from the run's log" in shown(pilot, "#source-line")
        images = shown(pilot, "#images")
        assert f"astronaut_{vals[0]['iter']}.png" in images and "GTmod12/astronaut.png" in images
        assert "LRbicx2/astronaut.png" in images
        # promote needs scored checkpoints
        await pilot.press("p")
        assert "ctrl+r scores them first" in problems(pilot)
        # ctrl+r: the rank job (original model left out to keep the test short)
        screen.query_one("#original").value = False
        await pilot.press("ctrl+r")
        progress = await wait_job(pilot)
        assert progress.status == "finished", (progress.error, progress.output)
        assert screen.source == "job" and len(screen.rows) >= 2
        psnrs = [(row.psnr, row.ssim) for row in screen.rows]
        assert psnrs == sorted(psnrs, reverse=True)
        assert "best" in str(table.get_row_at(0)[-1]) and "best" not in str(table.get_row_at(1)[-1])
        assert "bicubic" in shown(pilot, "#references") and "nearest" in shown(pilot, "#references")
        # promote the second one (not the best): a job, weights + sidecar
        table.focus()
        await pilot.press("down")
        chosen = screen.rows[1]
        await type_into(pilot, "#target", "weights/chosen.pth")
        table.focus()
        await pilot.press("p")
        progress = await wait_job(pilot)
        assert progress.status == "finished", (progress.error, progress.output)
        sidecar = json.loads((root / "weights" / "chosen.json").read_text())
        assert (root / "weights" / "chosen.pth").is_file()
        assert sidecar["rank"] == 2 and sidecar["source"] == chosen.file and sidecar["entry"] == chosen.entry
        assert "promoted" in shown(pilot, "#promoted") and "chosen.pth" in shown(pilot, "#promoted")


def test_ranking_from_the_log_shows_the_figures_and_ranks_a_marked_validation_after_the_clean(tmp_path):
    """Val events as a GAN stage logs them (the demo's val.metrics): iteration 40 has the best PSNR but a colour
    shift above the health limit, so it ranks after iteration 20, with its reason; NIQE and the other figures
    come along by the options' names."""
    import yaml

    from engine.protocol import RunEvent, ValEvent
    from tui.screens.ranking import log_rows

    options = Path(__file__).parent.parent / "options/demo_stage1_l1.yml"
    metrics = yaml.safe_load(options.read_text())["val"]["metrics"]
    bicubic = {"psnr": 30.0, "ssim": 0.9, "color_shift": 0.01, "chroma_shift": 0.01, "checkerboard": 0.002}

    def val(iteration: int, psnr: float, colour: float, checker: float) -> ValEvent:
        return ValEvent(iter=iteration, dataset="demo_val", baselines={"bicubic": bicubic},
                        metrics={"psnr": psnr, "ssim": 0.9, "color_shift": colour, "chroma_shift": 0.2,
                                 "checkerboard": checker, "sharpness": 0.9, "niqe": 5.5})

    events = [RunEvent(options={"val": {"metrics": metrics}}), val(20, 31.0, 1.2, 0.003), val(40, 31.5, 3.4, 0.004),
              val(60, 30.5, 0.5, 0.02)]
    rows, sets = log_rows(events, tmp_path)
    assert sets == ["demo_val"] and [row.iter for row in rows] == [20, 40, 60] and rows[0].flags == []
    assert rows[1].flags == ["colour shift 3.40 > 3.0 grey levels"]
    assert rows[2].flags == ["checkerboard 2.00% > 1% (bicubic 0.20%)"]
    assert rows[0].figures == {"color_shift": 1.2, "chroma_shift": 0.2, "checkerboard": 0.003, "sharpness": 0.9,
                               "niqe": 5.5}
    plain, _ = log_rows([ValEvent(iter=4, metrics={"psnr": 30.0, "ssim": 0.9})], tmp_path)
    assert plain[0].figures == {} and plain[0].flags == []  # a PSNR/SSIM-only run: no figure columns


@sync
async def test_export_runs_as_a_job_that_outlives_the_screen(tiny_run, monkeypatch):
    root = tiny_run
    monkeypatch.chdir(root)
    app = app_at(root, "tiny_cpu")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("x")
        screen = pilot.app.screen
        assert isinstance(screen, ExportScreen)
        assert screen.query_one("#checkpoint").value == "experiments/tiny_cpu/models/net_g_8.pth"
        await type_into(pilot, "#size", "16by16")
        await type_into(pilot, "#calib", "nowhere")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "write HEIGHTxWIDTH" in problems(pilot) and "not a folder" in problems(pilot)
        await type_into(pilot, "#size", "5000x16")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "between 1 and 4096" in problems(pilot)
        await type_into(pilot, "#size", "16x16")
        await type_into(pilot, "#calib", "datasets/demo/val/LRbicx2")
        screen.query_one("#htp").value = False
        await pilot.press("ctrl+r")
        await pilot.pause()
        folder = screen.job_folder
        assert folder is not None and folder.parent == root / "experiments"
        # leave at once: the job goes on without the screen (and without this process's memory of it)
        await pilot.press("escape")
        assert not isinstance(pilot.app.screen, ExportScreen)
        assert await wait_for(pilot, lambda: (folder / "cockpit" / "engine.json").exists(), timeout=30)
        assert job_alive(folder)
        # a process that did not start the job (a new cockpit) finds it in the folders
        found = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from tui.jobs import "
                                "find_jobs; print(*find_jobs(Path(sys.argv[1]), 'export'), sep='\\n')", str(root)],
                               capture_output=True, text=True, check=True).stdout.split()
        assert str(folder) in found
        await pilot.press("x")
        back = pilot.app.screen
        assert isinstance(back, ExportScreen) and back is not screen
        assert await wait_for(pilot, lambda: back.job_folder == folder, timeout=5), "the running export not found"
        progress = await wait_job(pilot)
        assert progress.status == "finished", (progress.error, progress.output)
        steps = back.steps
        assert list(steps)[:5] == ["load", "onnx", "onnx_dynamic", "calibration", "quantize"]
        assert steps["htp_compile"].status == "skipped"
        table = back.query_one("#steps")
        quant_row = [str(c) for c in table.get_row("quantize")]
        assert "PSNR vs float" in quant_row[3] and quant_row[2] == "done"
        assert steps["quantize"].figures["psnr_db"] > 30
        table.focus()
        table.move_cursor(row=list(steps).index("onnx"))
        await pilot.pause()
        assert "max_abs_error" in shown(pilot, "#figures")
        assert "manifest.json" in shown(pilot, "#summary") and (folder / "manifest.json").is_file()
    runs = [p.name for p in (root / "experiments").glob("*/cockpit/events.jsonl")]
    assert folder.name in [Path(p).name for p in runs] or (folder / "cockpit" / "events.jsonl").is_file()


# ---------------------------------------------------------------------------------------------- snapshots

@pytest.fixture
def _fixture_root(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(FIXTURE_ROOT)
    yield
    monkeypatch.undo()
    time.tzset()


SCREENS = {"w": SubsetWizardScreen, "T": TransferScreen, "k": RankingScreen, "x": ExportScreen}
SNAPSHOT_SIZES = [(80, 24), (160, 48), (240, 70)]
THEMES = ["srcockpit-dark", "srcockpit-light"]


def snapshot_app(run: str | None = None, theme: str = "srcockpit-dark"):
    return make_app(Path("."), run, config=Config(theme=theme), clock=frozen_clock, save_settings=False)


async def open_job_screen(pilot, key: str):
    """Open the screen and wait until it is ready: its first widget focused, its data loaded, and the
    inputs' cursors steady (a blinking cursor is shown or not depending on when the frame is taken)."""
    await pilot.press(key)
    screen = pilot.app.screen
    assert isinstance(screen, SCREENS[key])
    assert await wait_for(pilot, lambda: pilot.app.focused is not None and pilot.app.focused.screen is screen)
    if key == "w":
        tree = screen.query_one("#tree")
        assert await wait_for(pilot, lambda: len(tree.root.children) >= 1)
    if key == "k":
        assert await wait_for(pilot, lambda: len(screen.rows) > 0)
    for field in screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()
    return screen


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("key", list(SCREENS))
def test_job_screen_snapshots(snap_compare, _fixture_root, key, size, theme):
    async def ready(pilot):
        await open_job_screen(pilot, key)

    assert snap_compare(snapshot_app("demo_cpu_l1", theme), terminal_size=size, run_before=ready)


REACHABLE = (Input, Button, Checkbox, Select, DataTable, Tree)


@sync
@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("key", list(SCREENS))
async def test_job_screens_fit_the_terminal(_fixture_root, key, size):
    """Every shown widget lies inside the terminal, no two leaf widgets overlap, no label is wider than its
    place (a cut label), and every input and button can be scrolled into full view."""
    app = snapshot_app("demo_cpu_l1")
    async with app.run_test(size=size) as pilot:
        screen = await open_job_screen(pilot, key)
        form = screen.query_one("#form")
        assert_apart(screen, size)
        for widget in screen.query("*"):
            if isinstance(widget, REACHABLE) and all(node.display for node in widget.ancestors_with_self):
                form.scroll_to_widget(widget, animate=False)
                await pilot.pause()
                assert form.region.contains_region(widget.region), f"{widget} out of reach at {size}"
                assert_apart(screen, size)


def assert_apart(screen, size: tuple[int, int]) -> None:
    """Leaf widgets: inside the terminal, within their parent's width (a label wider than its place is cut),
    and none over another (as much of each as the scrolling form shows)."""
    form = screen.query_one("#form")
    leaves = {}
    for widget in screen.walk_children():
        region = widget.region
        if not region.area or widget.children or not widget.visible:
            continue
        parent = widget.parent.region
        assert parent.x <= region.x and region.right <= parent.right, (widget, region, "past its parent", parent)
        region = region.intersection(form.region) if form in widget.ancestors else region
        assert region.right <= size[0] and region.bottom <= size[1], (widget, region, size)
        if region.area:
            leaves[widget] = region
    for widget, region in leaves.items():
        for other, other_region in leaves.items():
            assert widget is other or not region.overlaps(other_region), (widget, region, other, other_region)


@sync
async def test_a_long_result_scrolls_into_view_above_the_footer(_fixture_root):
    """At 160x48 a transfer's report taller than the screen (layers, notes, scores) scrolls in the form."""
    app = snapshot_app("demo_cpu_l1")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_job_screen(pilot, "T")
        form, result = screen.query_one("#form"), screen.query_one("#result", Static)
        result.update("\n".join(f"layer {number}: 99.0% of the L2 energy kept" for number in range(60)))
        await pilot.pause()
        form.scroll_end(animate=False)
        assert await wait_for(pilot, lambda: form.scroll_y > 0 and result.region.bottom <= form.region.bottom)
        assert form.region.bottom <= screen.query_one(Footer).region.y
