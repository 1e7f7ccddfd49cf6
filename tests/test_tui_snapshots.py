"""Snapshots of the run list, a dashboard and a job's view (dark and light), replaying the recorded fixture
runs with a frozen clock, UTC times and no NVML (the cockpit reads GPU figures from the log only), at
the sizes of real terminals: 80x24 (most SSH clients), 100x30, 160x48 and 240x70.

Regenerate with `pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs first.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from textual.widgets import Footer
from tui_helpers import FIXTURE_ROOT, frozen_clock, settle_dashboard, settle_run_list, sync, wait_for

from engine.jobs import Job
from engine.protocol import RunPaths
from tui.app import make_app
from tui.config import Config
from tui.screens.dashboard import DashboardScreen
from tui.screens.run_list import RunListScreen
from tui.widgets.job_progress import JobProgress

SIZE = (150, 46)
SIZES = [(80, 24), (160, 48), (240, 70)]
THEMES = ["srcockpit-dark", "srcockpit-light"]


@pytest.fixture(autouse=True)
def _stable(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCOCKPIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(FIXTURE_ROOT)  # the run list shows the folder as given: "experiments"
    yield
    monkeypatch.undo()
    time.tzset()


def app_for(run: str | None, theme: str):
    return make_app(Path("."), run, config=Config(theme=theme), clock=frozen_clock, save_settings=False)


def test_run_list_dark(snap_compare):
    async def ready(pilot):
        await settle_run_list(pilot)

    assert snap_compare(app_for(None, "srcockpit-dark"), terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize("theme", ["srcockpit-dark", "srcockpit-light"])
def test_dashboard(snap_compare, theme):
    async def ready(pilot):
        await settle_dashboard(pilot)

    assert snap_compare(app_for("finetune_x2_gan", theme), terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize("size", [SIZE, (80, 24)], ids=["150x46", "80x24"])
def test_failed_run_dashboard(snap_compare, size):
    """At 80x24 the failure's box stays within 8 rows (its traceback scrolls) above the losses."""
    async def ready(pilot):
        await settle_dashboard(pilot)

    assert snap_compare(app_for("oom_at_256", "srcockpit-dark"), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_dashboard_at_size(snap_compare, size, theme):
    """Below 120 columns one scrolling column, losses and validation first; every figure whole."""
    async def ready(pilot):
        await settle_dashboard(pilot)

    assert snap_compare(app_for("finetune_x2_gan", theme), terminal_size=size, run_before=ready)


def test_dashboard_at_100x30(snap_compare):
    async def ready(pilot):
        await settle_dashboard(pilot)

    assert snap_compare(app_for("finetune_x2_gan", "srcockpit-dark"), terminal_size=(100, 30), run_before=ready)


def test_dashboard_at_80x24_scrolled_to_the_end(snap_compare):
    """What the one-column layout keeps below the fold: throughput, GPU/host, alerts, the log."""
    async def ready(pilot):
        await settle_dashboard(pilot)
        pilot.app.screen.query_one("#dash-body").scroll_end(animate=False)
        await pilot.pause()

    assert snap_compare(app_for("finetune_x2_gan", "srcockpit-dark"), terminal_size=(80, 24), run_before=ready)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_run_list_at_size(snap_compare, size, theme):
    async def ready(pilot):
        await settle_run_list(pilot)

    assert snap_compare(app_for(None, theme), terminal_size=size, run_before=ready)


def write_job(root: Path) -> None:
    """A finished subset job's log, written by the engine's own Job (as every srcockpit job writes it)."""
    with Job(root / "experiments" / "job-subset-test", "subset", sources=2) as job:
        job.progress(1, 2, "DIV2K_train_HR")
        job.result(step="pick", title="pick images", picked=42, left_out=3)
        job.progress(2, 2, "done")
        job.result(step="summary", meta_info="datasets/DIV2K/meta_info/meta_info_DIV2K_sub_subset.txt", images=42)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_job_view_at_size(snap_compare, tmp_path, monkeypatch, size, theme):
    write_job(tmp_path)
    monkeypatch.chdir(tmp_path)  # the view shows the folder as given: experiments/job-subset-test

    async def ready(pilot):
        progress = pilot.app.screen.query_one(JobProgress)
        assert await wait_for(pilot, lambda: progress.status == "finished" and len(progress.results) == 2)
        await pilot.pause()

    app = make_app(Path("."), RunPaths(Path("experiments/job-subset-test")), config=Config(theme=theme),
                   clock=frozen_clock, save_settings=False)
    assert snap_compare(app, terminal_size=size, run_before=ready)


@sync
async def test_a_terminal_resized_under_the_dashboard_lays_out_the_run_list_again():
    app = app_for(None, "srcockpit-dark")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle_run_list(pilot)
        runs = app.screen
        assert runs.has_class("-wide") and not runs.has_class("-narrow")
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.resize_terminal(80, 24)
        assert await wait_for(pilot, lambda: app.screen.has_class("-narrow", "-short"))
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: isinstance(app.screen, RunListScreen))
        assert await wait_for(pilot, lambda: runs.has_class("-narrow", "-short") and not runs.has_class("-wide"))


PANELS = ("#run-header", "#loss-g", "#loss-d", "#val-chart", "#val-table", "#throughput", "#gpu-panel", "#alerts",
          "#log")


@sync
@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 48), (240, 70)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_no_panel_covers_another(size):
    """Every panel on screen lies inside the terminal and apart from the others; the header, the losses
    and the validation table are on the first screen at every size."""
    app = app_for("finetune_x2_gan", "srcockpit-dark")
    async with app.run_test(size=size) as pilot:
        await settle_dashboard(pilot)
        screen = app.screen
        body = screen.query_one("#dash-body").region  # what the scrolling column shows of the panels
        shown = {"footer": screen.query_one(Footer).region}
        for name in PANELS:
            region = screen.query_one(name).region
            assert region.right <= size[0], f"{name} runs past the right edge at {size}: {region}"
            shown[name] = region if name == "#run-header" else region.intersection(body)
        for name in ("#run-header", "#loss-g", "#loss-d", "#val-table"):
            assert shown[name].area > 0, f"{name} is not on the first screen at {size}"
        shown = {name: region for name, region in shown.items() if region.area}
        for name, region in shown.items():
            assert region.bottom <= size[1], (name, region)
            for other, other_region in shown.items():
                assert name == other or not region.overlaps(other_region), (name, region, other, other_region)


@sync
async def test_the_log_box_takes_no_room_until_a_line_arrives(tmp_path: Path):
    from generate import write_run

    from tui.widgets.log_panel import LogPanel

    write_run(tmp_path / "experiments" / "quiet", total_iter=200, logs=False)
    app = make_app(tmp_path, "quiet", config=Config(), clock=frozen_clock, save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_dashboard(pilot)
        log = app.screen.query_one(LogPanel)
        assert not log.display and log.region.area == 0
        log.add_lines([(frozen_clock(), "warning", "a late warning")])
        assert await wait_for(pilot, lambda: log.display)


@sync
async def test_page_down_scrolls_the_one_column_layout():
    app = app_for("finetune_x2_gan", "srcockpit-dark")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_dashboard(pilot)
        body = app.screen.query_one("#dash-body")
        await pilot.press("pagedown")
        assert await wait_for(pilot, lambda: body.scroll_y > 0), f"pagedown did not scroll; focus on {app.focused}"
        await pilot.press("end")
        assert await wait_for(pilot, lambda: app.screen.query_one("#log").region.intersection(body.region).area > 0)
