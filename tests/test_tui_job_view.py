"""Attaching to a job (not a training run) opens the job view: progress, then each result as it lands."""

from __future__ import annotations

import re
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


@sync
async def test_the_demo_jobs_final_screen_shows_the_comparison_and_export_figures(tmp_path: Path):
    from engine.demo import comparison, export_summary

    report = {"models": {"nearest": {"psnr": 29.1266, "ssim": 0.8664, "parameters": 0},
                         "bicubic": {"psnr": 30.9996, "ssim": 0.8890, "parameters": 0},
                         "original": {"psnr": 30.0712, "ssim": 0.8798, "parameters": 600652},
                         "transferred": {"psnr": 28.0011, "ssim": 0.8483, "parameters": 301356},
                         "fine-tuned": {"psnr": 30.3182, "ssim": 0.8885, "parameters": 301356}}}
    export = {"figures": {"quantize": {"psnr_vs_float_db": 38.4164}, "htp_compile": {"binary_bytes": 458752}}}
    record = {"steps": {"report": report, "export": export}}
    with Job(tmp_path / "experiments" / "demo", "demo") as job:
        job.result(step="summary", comparison=comparison(record), export=export_summary(record))
    app = make_app(tmp_path, save_settings=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle_run_list(pilot)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: isinstance(app.screen, JobViewScreen))
        progress = app.screen.query_one(JobProgress)
        assert await wait_for(pilot, lambda: progress.status == "finished")
        results = app.screen.query_one("#job-results")
        assert await wait_for(pilot, lambda: "fine-tuned" in "\n".join(str(line.text) for line in results.lines))
        text = "\n".join(str(line.text) for line in results.lines)
        for model, psnr, ssim in (("nearest", "29.127", "0.8664"), ("bicubic", "31.000", "0.8890"),
                                  ("original", "30.071", "0.8798"), ("transferred", "28.001", "0.8483"),
                                  ("fine-tuned", "30.318", "0.8885")):
            assert re.search(rf"{model} .*{psnr} .*{ssim}", text), text
        assert re.search(r"QDQ vs float .*38\.42 dB", text) and "458,752 bytes" in text, text


@sync
async def test_a_running_jobs_eta_counts_only_this_runs_work(tmp_path: Path):
    """A data job resumed after a kill: the images the killed run had done (resumed: ...) are not this run's
    pace. The ETA comes from the events' own times, so it reads the same live and replayed."""
    from engine.protocol import ProgressEvent

    job = Job(tmp_path / "experiments" / "job-extract", "extract-subimages")
    job.__enter__()  # left running: this process is its live engine
    for done, t, message in ((50, 100.0, "resumed: 0050.png"), (52, 110.0, "0052.png"), (62, 120.0, "0062.png")):
        job.events.emit(ProgressEvent(job="extract-subimages", done=done, total=100, message=message, t=t))
    job.events.close()
    app = make_app(tmp_path, save_settings=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle_run_list(pilot)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: isinstance(app.screen, JobViewScreen))
        message = app.screen.query_one("#job-message")
        # 10 images in 10 s since this run's first: 38 left take 0:38 (counting the resumed 50 would say 1:03)
        assert await wait_for(pilot, lambda: "0062.png  ·  eta 0:38" in str(message.render())), str(message.render())
