"""Attaching to a job (not a training run) opens the job view: progress, then each result as it lands."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import settle_run_list, sync, wait_for

from engine.jobs import Job
from tui.app import make_app
from tui.screens.dashboard import DashboardScreen
from tui.screens.job_view import JobViewScreen
from tui.widgets.job_progress import JobProgress


def write_job(root: Path) -> Path:
    """A finished job's log, written by the engine's own Job (as every srcockpit job writes it)."""
    folder = root / "experiments" / "job-subset-test"
    with Job(folder, "subset", sources=2) as job:
        job.progress(1, 2, "DIV2K_train_HR")
        job.result(step="pick", title="pick images", picked=42, left_out=3)
        job.progress(2, 2, "done")
        job.result(step="summary", meta_info="datasets/x/meta_info.txt")
    return folder


@sync
async def test_enter_on_a_job_opens_the_job_view_with_its_results(tmp_path: Path):
    write_job(tmp_path)
    app = make_app(tmp_path, save_settings=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle_run_list(pilot)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: isinstance(app.screen, JobViewScreen))
        progress = app.screen.query_one(JobProgress)
        assert await wait_for(pilot, lambda: len(progress.results) == 2), "the results never arrived"
        assert await wait_for(pilot, lambda: progress.status == "finished")
        text = "\n".join(str(line.text) for line in app.screen.query_one("#job-results").lines)
        assert "pick images: picked 42  left_out 3" in text
        assert not isinstance(app.screen, DashboardScreen)
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: not isinstance(app.screen, JobViewScreen))
