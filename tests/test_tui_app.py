"""Pilot-driven tests of the cockpit: every key, attach and replay of a recorded log, engine loss."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import (
    FIXTURE_ROOT,
    LiveRun,
    fixture_run,
    frozen_clock,
    settle_dashboard,
    settle_run_list,
    sync,
    wait_for,
)

from engine.launch import acquire_lock
from engine.options import read_yaml
from engine.protocol import FAILED, FINISHED, STATUS, STOPPED, RunPaths, read_events
from tests.conftest import TINY_OPTIONS
from tui.app import make_app
from tui.config import Config, load_config
from tui.launcher import START_TIMEOUT_S
from tui.screens.dashboard import DashboardScreen
from tui.screens.dialogs import ConfirmScreen, HelpScreen, PathScreen
from tui.screens.run_list import RunListScreen

SIZE = (150, 46)


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCOCKPIT_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def live(tmp_path):
    run = LiveRun(tmp_path)
    yield run
    run.close()


def live_app(live: LiveRun):
    return make_app(live.paths.root.parent.parent, live.paths, save_settings=False)


async def engine_gets(pilot, live: LiveRun, command: str) -> list[str]:
    """Wait until the test's engine has received command; returns every command it received meanwhile."""
    got: list[str] = []
    assert await wait_for(pilot, lambda: got.extend(live.received()) or command in got), f"{command} never arrived"
    return got


def notices(app) -> list[str]:
    """The notifications as the user reads them: title and message of each toast on the screen
    (Pilot shows toasts only when the test asks for them: run_test(notifications=True))."""
    return [str(toast.render()).replace("\n", " ") for toast in app.screen.query("Toast")]


@sync
async def test_run_list_lists_fixture_runs_and_enter_attaches():
    app = make_app(FIXTURE_ROOT, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        screen = app.screen
        assert isinstance(screen, RunListScreen)
        assert [s.name for s in screen.summaries] == ["finetune_x2_gan", "oom_at_256", "demo_cpu_l1"]
        await pilot.press("down", "enter")
        assert isinstance(app.screen, DashboardScreen)
        await settle_dashboard(pilot)
        assert app.screen.state.name == "oom_at_256"
        await pilot.press("escape")
        assert isinstance(app.screen, RunListScreen)


@sync
async def test_attach_replays_the_recorded_log():
    app = make_app(FIXTURE_ROOT, "finetune_x2_gan", clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        state = app.screen.state
        assert (state.status, state.iter, state.total_iter) == ("stopped", 3000, 4000)
        assert state.vals["Set5"].best_psnr[1] == 3000
        header = str(app.screen.query_one("#run-header").render())
        assert "STOPPED" in header and "3,000" in header and "4,000" in header
        log = app.screen.query_one("#log")
        assert any("Saving models" in line.text for line in log.lines)
        assert not app.screen.lost


@sync
async def test_paced_replay_reaches_the_end():
    app = make_app(FIXTURE_ROOT, "demo_cpu_l1", clock=frozen_clock, replay_speed=1e6, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        assert app.screen.state.status == "finished"
        assert str(app.screen.query_one("#gpu-panel").render()).startswith("CPU only: no GPU")


@sync
async def test_failed_run_shows_traceback_and_r_resumes_binding():
    app = make_app(FIXTURE_ROOT, "oom_at_256", clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle_dashboard(pilot)
        banner = app.screen.query_one("#engine-lost")
        assert banner.has_class("-visible")
        assert "OutOfMemoryError" in str(banner.query_one("#lost-text").render())
        await pilot.press("r")
        # the real launcher resumes this run: the recorded fixture has no options copy, so it says so by name
        assert await wait_for(pilot, lambda: any("resume: not done" in n and "oom_at_256 has no cockpit/options.yml"
                                                 in n for n in notices(app)))
        assert app.screen.paths == fixture_run("oom_at_256")


@sync
async def test_engine_lost_when_pid_is_dead(tmp_path):
    import json
    import subprocess

    run = LiveRun(tmp_path)
    run.close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = json.loads(run.paths.engine_json.read_text())
    run.paths.engine_json.write_text(json.dumps({**info, "pid": dead.pid}))
    app = make_app(tmp_path, run.paths, save_settings=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle_dashboard(pilot)
        assert await wait_for(pilot, lambda: app.screen.lost)
        app.screen.redraw()
        assert app.screen.query_one("#engine-lost").has_class("-visible")
        assert await wait_for(pilot, lambda: any("engine lost" in n for n in notices(app)))


@pytest.mark.parametrize(("key", "command"), [("p", "pause"), ("c", "save"), ("v", "validate")])
@sync
async def test_control_keys_reach_the_engine(live, key, command):
    app = live_app(live)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle_dashboard(pilot)
        assert app.screen.state.live and not app.screen.lost
        await pilot.press(key)
        await engine_gets(pilot, live, command)
        assert await wait_for(pilot, lambda: any("accepted" in n for n in notices(app)))


@sync
async def test_stop_asks_first_then_sends_stop(live):
    app = live_app(live)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # changed my mind
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("s", "y")
        got = await engine_gets(pilot, live, "stop")
        # the channel keeps order: a command sent on escape would have arrived before this stop
        assert got == ["stop"]


@sync
async def test_r_unpauses_a_paused_run(live):
    live.status = "paused"
    live.append("status", status="paused", iter=800)
    app = live_app(live)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        assert app.screen.state.status == "paused"
        await pilot.press("r")
        await engine_gets(pilot, live, "resume")


@sync
async def test_engine_refusal_is_reported(live):
    live.status = "paused"  # the engine is paused but the log still says running: pause is refused
    app = live_app(live)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle_dashboard(pilot)
        await pilot.press("p")
        assert await wait_for(pilot, lambda: any("already paused" in n for n in notices(app)))


@sync
async def test_control_key_without_engine_says_so():
    app = make_app(FIXTURE_ROOT, "finetune_x2_gan", clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle_dashboard(pilot)
        await pilot.press("p")
        assert await wait_for(pilot, lambda: any("nothing to pause" in n for n in notices(app)))


@sync
async def test_d_detaches_and_training_goes_on(live):
    app = live_app(live)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        await pilot.press("d")
        await pilot.pause()
    assert not app.is_running and "training goes on" in app.detached
    assert live.received() == []


@sync
async def test_q_on_a_live_run_asks_whether_to_stop(live):
    app = live_app(live)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#stop")
        await engine_gets(pilot, live, "stop")
        assert await wait_for(pilot, lambda: not app.is_running)


@sync
async def test_q_on_a_finished_run_just_quits():
    app = make_app(FIXTURE_ROOT, "demo_cpu_l1", clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


@sync
async def test_t_cycles_the_theme_and_remembers_it():
    app = make_app(FIXTURE_ROOT, clock=frozen_clock, config=Config())
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        assert app.theme == "srcockpit-dark"
        await pilot.press("t")
        assert app.theme != "srcockpit-dark"
        assert load_config().theme == app.theme
    again = make_app(FIXTURE_ROOT, clock=frozen_clock)
    async with again.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        assert again.theme == app.theme


@sync
async def test_a_bad_theme_file_notifies_and_falls_back(tmp_path):
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "bad.yaml").write_text("name: bad\nprimary: nope\n")
    app = make_app(FIXTURE_ROOT, clock=frozen_clock, config=Config(theme="bad"), theme_dirs=[themes],
                   save_settings=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle_run_list(pilot)
        assert app.theme == "srcockpit-dark"
        assert await wait_for(pilot, lambda: any("theme" in n for n in notices(app)))


@sync
async def test_question_mark_shows_help_on_both_screens():
    app = make_app(FIXTURE_ROOT, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("enter")
        await settle_dashboard(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert any("detach" in what for _, what in app.screen.keys)


@sync
async def test_the_help_fits_an_80x24_terminal_and_scrolls_to_its_last_key():
    """The dashboard's keys are longer than 24 rows: the box stays on screen, and end shows the last one."""
    from textual.containers import VerticalScroll

    app = make_app(FIXTURE_ROOT, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_run_list(pilot)
        await pilot.press("enter")
        await settle_dashboard(pilot)
        await pilot.press("question_mark")
        box = app.screen.query_one(VerticalScroll)
        await pilot.pause()
        assert box.region.y >= 0 and box.region.bottom <= 24 and box.max_scroll_y > 0 and app.focused is box
        await pilot.press("end")
        assert await wait_for(pilot, lambda: box.scroll_y == box.max_scroll_y)
        assert "this&#160;help" in app.export_screenshot()  # the last key, on screen


@sync
async def test_the_header_says_the_log_is_being_read_until_the_history_is_in():
    """An empty state while the tailer folds a long history is not an unknown run: the header says so, and
    shows the run's own status once the dashboard has caught up."""
    from tui.state import RunState
    from tui.widgets.run_header import READING, RunHeader

    app = make_app(FIXTURE_ROOT, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        await pilot.press("enter")
        await settle_dashboard(pilot)
        header = app.screen.query_one(RunHeader)
        assert not header.reading and header.status == app.screen.state.status != ""
        header.reading = True  # as on mount: nothing folded yet
        header.show(RunState("big"), 0.0)
        assert header.status == READING and header.has_class("-reading")
        header.reading = False
        header.show(RunState("big"), 0.0)
        assert header.status == "unknown" and not header.has_class("-reading")


@sync
async def test_binding_n_starts_a_run_from_an_options_file(run_root):
    (run_root / "opts.yml").write_text(TINY_OPTIONS.read_text())
    app = make_app(run_root, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_run_list(pilot)
        await pilot.press("n")
        assert isinstance(app.screen, PathScreen)
        app.screen.query_one("Input").value = ""
        await pilot.press(*"opts.yml", "enter")
        # a real engine starts detached from opts.yml (the tiny run), then the cockpit attaches to it
        assert await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), timeout=START_TIMEOUT_S)
        await settle_dashboard(pilot)
        paths = app.screen.paths
        assert paths == RunPaths(run_root / "experiments" / "tiny_cpu")
        await pilot.press("s", "y")  # the engine must not outlive the test
        assert await wait_for(pilot, lambda: any(e["type"] == STATUS and e.get("status") in (STOPPED, FINISHED, FAILED)
                                                 for e in read_events(paths.events)), timeout=300)
    assert read_yaml(paths.cockpit / "options.yml")["name"] == "tiny_cpu"


@sync
async def test_binding_shift_d_starts_the_demo(tmp_path):
    root = tmp_path / "demo_root"
    # the real demo starts detached; this test holds the demo's lock, so the demo exits at once (and says why)
    lock = acquire_lock(RunPaths(root / "experiments" / "demo"))
    try:
        app = make_app(root, clock=frozen_clock, save_settings=False)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle_run_list(pilot)
            await pilot.press("D")
            # D reports what really happened: the folder's demo lock is held, so a demo runs there already
            assert await wait_for(pilot, lambda: any("demo not started" in n and "already running" in n
                                                     for n in notices(app)), timeout=120), notices(app)
            assert not any("demo started" in n for n in notices(app))
            # the demo is a job, not a training run: the list stays, and its stages appear in it as they start
            assert not isinstance(app.screen, DashboardScreen)
    finally:
        os.close(lock)


@sync
async def test_m_cycles_smoothing():
    app = make_app(FIXTURE_ROOT, "finetune_x2_gan", clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        chart = app.screen.query_one("#loss-g")
        before = chart.border_title
        assert "smoothing" in before
        await pilot.press("m")
        assert await wait_for(pilot, lambda: chart.border_title != before)
