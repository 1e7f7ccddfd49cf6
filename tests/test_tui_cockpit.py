"""Pilot tests of the cockpit's truthful panels (issue 19): the log panel reads basicsr's train log, every
PSNR/SSIM says which weights were scored, the header and ETA stay right on attach and while paused, and
per-process figures (the engine and its workers, not the machine)."""

from __future__ import annotations

import io
import logging
import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from rich.console import Console
from tui_helpers import LiveRun, fixture_run, frozen_clock, settle_dashboard, settle_run_list, sync, wait_for

from engine.protocol import (
    PAUSED,
    RUNNING,
    IterEvent,
    ProgressEvent,
    RunEvent,
    RunPaths,
    StatusEvent,
    ValEvent,
    load_events,
)
from tests.conftest import TINY_RUN, srcockpit
from tests.conftest import wait_for as conftest_wait_for
from tui.app import make_app
from tui.messages import IterBatch
from tui.runs import attach_hint, resolve_run
from tui.state import RunState, overall_progress
from tui.tailer import BasicsrLog, split_events

SIZE = (160, 48)


def log_text(app) -> list[str]:
    return [line.text for line in app.screen.query_one("#log").lines]


@sync
async def test_log_panel_shows_basicsr_train_log_of_an_in_process_run(run_copy):
    """A run trained in-process (as the demo's stages are) has no cockpit/engine.log: the panel reads its
    train_NAME_*.log."""
    assert not (run_copy / "cockpit" / "engine.log").exists()
    app = make_app(run_copy.parent.parent, TINY_RUN, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        assert await wait_for(pilot, lambda: any("Model [CockpitRealESRGANModel] is created" in t
                                                 for t in log_text(app)))
        # the log is read in chunks: the iteration lines come after the model's creation
        assert await wait_for(pilot, lambda: any("[epoch:" in message and "l_g_pix" in message
                                                 for _, _, message in app.screen.state.logs))


def test_python_warnings_land_in_basicsr_log_with_their_level(tmp_path):
    from engine.loop import fresh_root_logger

    log_file = tmp_path / "train_warn_20260101_000000.log"
    # an earlier test may have left logging's capture on while pytest put warnings.showwarning back
    logging.captureWarnings(False)
    fresh_root_logger(log_file)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a torch-like warning", UserWarning, stacklevel=1)
    follower = BasicsrLog(tmp_path)
    lines = follower.poll()
    assert any(level == "warning" and "a torch-like warning" in message for _, level, message in lines), lines


def folded(events) -> RunState:
    """Events folded as attaching does: split into messages (a poll's status goes last) and applied."""
    state = RunState("r")
    for message in split_events("r", events, replayed=True):
        if isinstance(message, IterBatch):
            state.apply_iters(message.columns)
        elif hasattr(message, "event"):
            state.apply(message.event)
        else:
            state.apply_all(getattr(message, "events", []))
    return state


def test_attach_keeps_the_last_iteration_not_the_starting_status():
    events = [RunEvent(t=0.0, name="r", total_iter=1200), StatusEvent(t=1.0, status=RUNNING, iter=0),
              *(IterEvent(t=1.0 + k, iter=k, total_iter=1200, it_s=1.0) for k in range(1, 83))]
    assert folded(events).iter == 82


def test_eta_follows_the_smoothed_rate_not_the_last_it_s():
    # one iteration a second, but each event's own it/s swings between 0.1 and 10 (validations, a busy host)
    events = [RunEvent(t=0.0, name="r", total_iter=1000), StatusEvent(t=0.0, status=RUNNING, iter=0),
              *(IterEvent(t=float(k), iter=k, total_iter=1000, it_s=0.1 if k % 2 else 10.0,
                          eta_s=(1000 - k) / (0.1 if k % 2 else 10.0)) for k in range(1, 101))]
    state = folded(events)
    assert 850 <= state.eta(100.0) <= 950


@sync
async def test_paused_run_shows_paused_and_no_eta_or_speed(tmp_path):
    live = LiveRun(tmp_path)
    try:
        app = make_app(live.paths.root.parent.parent, live.paths, clock=frozen_clock, save_settings=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle_dashboard(pilot)
            assert "it/s" in str(app.screen.query_one("#run-header").render())
            live.append("status", status=PAUSED, iter=800)
            assert await wait_for(pilot, lambda: app.screen.state.status == PAUSED)
            app.screen.redraw()
            header = str(app.screen.query_one("#run-header").render())
            assert "ETA paused" in header and "it/s" not in header
            assert "paused" in str(app.screen.query_one("#speed-text").render())
    finally:
        live.close()


def demo_folder_with_a_stage(tmp_path: Path) -> Path:
    """The folder a user ran `srcockpit demo` in: the demo's runs lie in ./srcockpit-demo/experiments."""
    stage = tmp_path / "srcockpit-demo" / "experiments" / "demo_stage1_l1"
    shutil.copytree(fixture_run("demo_cpu_l1").root, stage)
    return stage


@sync
async def test_run_list_finds_the_demo_runs_and_d_gives_an_attach_that_works(tmp_path, monkeypatch):
    stage = demo_folder_with_a_stage(tmp_path)
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        assert [s.paths.root for s in app.screen.summaries] == [stage]
        await pilot.press("enter")
        await settle_dashboard(pilot)
        await pilot.press("d")
    assert "`srcockpit attach demo_stage1_l1` comes back" in app.detached
    assert resolve_run("demo_stage1_l1", tmp_path).root == stage  # what `srcockpit attach NAME` resolves


def test_attach_hint_gives_a_path_where_the_name_does_not_resolve(tmp_path):
    stage = demo_folder_with_a_stage(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert attach_hint(RunPaths(stage), elsewhere) == f"srcockpit attach {stage}"
    assert attach_hint(RunPaths(stage), tmp_path / "srcockpit-demo") == "srcockpit attach demo_stage1_l1"


def test_demo_command_reports_a_demo_that_exits_at_once(tmp_path):
    """The cockpit opens only once the spawned demo has written its first event: one that exits first (here
    its folder holds a --fast demo) is reported with its own message, exit status 2, no cockpit."""
    root = tmp_path / "demo_root"
    root.mkdir()
    (root / "demo.json").write_text('{"fast": true, "steps": {}}')
    result = srcockpit("demo", "--root", str(root), cwd=tmp_path, check=False, timeout=300)
    assert result.returncode == 2, result
    assert "holds a --fast demo" in result.stderr + result.stdout


@sync
async def test_gpu_panel_shows_the_runs_processes_and_its_own_gpu_memory(tmp_path):
    live = LiveRun(tmp_path)
    try:
        app = make_app(live.paths.root.parent.parent, live.paths, clock=frozen_clock, save_settings=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle_dashboard(pilot)
            gpu = {"index": 0, "name": "H200", "mem_used": 40 << 30, "mem_total": 140 << 30, "proc_mem": 12 << 30}
            live.append("system", gpus=[gpu], cpu_percent=100.0, rss=1 << 30, ram_used=8 << 30, ram_total=64 << 30,
                        proc_cpu_percent=180.0, proc_rss=3 << 30, procs=3)
            assert await wait_for(pilot, lambda: app.screen.state.system.procs == 3)
            app.screen.redraw()
            await pilot.pause()
            panel = str(app.screen.query_one("#gpu-panel").render())
            assert "engine 3 procs cpu 180%" in panel and "rss 3.0 GiB" in panel
            assert "this run 12.0 GiB" in panel and "40.0/140.0 GiB" in panel
    finally:
        live.close()


def test_val_events_say_which_weights_were_scored_and_score_net_g_too(tiny_run):
    vals = [e for e in load_events(RunPaths(tiny_run / "experiments" / TINY_RUN).events).events
            if isinstance(e, ValEvent)]
    assert vals
    for val in vals:  # the tiny run keeps an EMA: basicsr scored it, the engine scored the raw net_g as well
        assert val.weights == "net_g_ema"
        assert math.isfinite(val.net_g["psnr"]) and math.isfinite(val.net_g["ssim"])


@sync
async def test_dashboard_and_run_list_label_every_psnr_with_its_weights(run_copy):
    app = make_app(run_copy.parent.parent, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        row = " ".join(str(cell) for cell in app.screen.query_one("#runs").get_row_at(0))
        assert "EMA · net_g" in row, row
        await pilot.press("enter")
        await settle_dashboard(pilot)
        console = Console(width=60, file=io.StringIO(), record=True)
        console.print(app.screen.query_one("#val-table").content)
        table = console.export_text()
        assert "best ★ EMA" in table and "net_g" in table and "best net_g" in table, table


def test_a_jobs_sub_step_is_not_shown_as_its_overall_progress(tmp_path):
    from engine.jobs import Job
    from tui.runs import summarise

    folder = tmp_path / "experiments" / "demo"
    seen = []
    with Job(folder, "demo") as job:
        job.begin_step(4, 8, "stage 1: L1 warm-up")
        for done in (0, 5, 17):
            job.progress(done, 17, f"iteration {done}/17")
            summary = summarise(RunPaths(folder))
            seen.append((summary.iter, summary.total_iter))
        job.begin_step(5, 8, "stage 2")
        job.progress(0, 5, "iteration 0/5")
    fractions = [overall_progress(e) for e in load_events(RunPaths(folder).events).events
                 if isinstance(e, ProgressEvent)]
    assert seen == [(3, 8), (3, 8), (4, 8)]  # steps done of the whole job, never "17 / 17"
    assert [done for done, _ in fractions] == sorted(done for done, _ in fractions)  # the bar never jumps back
    assert {total for _, total in fractions} == {8.0}


def test_stop_says_it_waits_for_a_validation(tmp_path):
    from engine.control import ControlServer

    live = LiveRun(tmp_path)
    live.close()
    busy = "validating Set5 at iteration 800"
    server = ControlServer(live.paths.socket(), lambda: {"status": RUNNING, "iter": 800, "busy": busy})
    try:
        stop = subprocess.Popen([sys.executable, "-m", "tui.cli", "stop", "live_run"], cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        got: list[str] = []
        conftest_wait_for(lambda: got.extend(server.pending()) or "stop" in got, timeout=120, what="the stop command")
        live.append("status", status="stopped", iter=800)
        output, _ = stop.communicate(timeout=120)
    finally:
        server.close()
    assert stop.returncode == 0, output
    assert "waiting up to" in output and f"finish {busy}, then save a resumable state" in output, output


@sync
async def test_question_mark_on_the_demo_job_screen_shows_its_keys(tmp_path):
    from engine.jobs import Job
    from tui.screens.dialogs import HelpScreen
    from tui.screens.job_view import JobViewScreen

    with Job(tmp_path / "experiments" / "demo", "demo") as job:
        job.begin_step(1, 8, "demo data")
    app = make_app(tmp_path, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: isinstance(app.screen, JobViewScreen))
        await pilot.press("question_mark")
        assert await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))


@sync
async def test_tool_screens_start_where_a_user_types_and_do_not_overwrite(tmp_path):
    from textual.widgets import Input, Label

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "small-realesr-animevideox2v3.pth").write_bytes(b"the demo's starting weights")
    (weights / "transfer-32f32c.pth").write_bytes(b"an earlier transfer")
    app = make_app(tmp_path, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        await pilot.press("w")
        assert await wait_for(pilot, lambda: app.screen.query("#src-folder"))
        await pilot.press("d", "a", "t", "a")
        assert app.screen.query_one("#src-folder", Input).value == "data"  # the field, not the folder tree
        await pilot.press("escape")
        await pilot.press("T")
        assert await wait_for(pilot, lambda: app.screen.query("#output"))
        assert app.screen.query_one("#output", Input).value == "weights/transfer-32f32c-2.pth"
        await pilot.press("escape")
        await pilot.press("x")
        assert await wait_for(pilot, lambda: app.screen.query("#calib"))
        labels = " ".join(str(label.render()) for label in app.screen.query(Label))
        placeholder = app.screen.query_one("#calib", Input).placeholder
        assert placeholder in labels and "default" not in placeholder  # the label says what the empty field means
