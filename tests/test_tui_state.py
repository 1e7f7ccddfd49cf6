"""The cockpit's data side: bounded series, the tail worker's parsing, run discovery, settings, themes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from generate import write_run
from tui_helpers import fixture_run

from engine.protocol import RunPaths, UserError, load_events
from tui import config as cfg
from tui.messages import IterBatch, RunStatus, SystemSample, TailCaughtUp, ValResults
from tui.runs import discover_runs, engine_alive, resolve_run, summarise
from tui.state import RunState, Series
from tui.tailer import Tailer, read_all, split_events


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCOCKPIT_CONFIG_DIR", str(tmp_path / "config"))


@pytest.mark.parametrize("n", [1, 7, 100, 513, 10_000])
def test_series_keeps_min_max_mean_and_stays_bounded(n):
    series = Series(capacity=64)
    xs = list(range(n))
    ys = [math.sin(i / 10) + i / n for i in xs]
    half = n // 2
    series.extend(xs[:half], ys[:half])  # two batches: a bucket spans the seam
    for x, y in zip(xs[half:half + 3], ys[half:half + 3], strict=False):
        series.append(x, y)
    series.extend(xs[half + 3:], ys[half + 3:])
    assert len(series) <= 64
    assert series.count == n
    assert sum(series.counts) == n
    assert min(series.mins) == pytest.approx(min(ys))
    assert max(series.maxs) == pytest.approx(max(ys))
    assert sum(series.sums) == pytest.approx(sum(ys))
    assert series.x0[0] == 0 and series.x1[-1] == n - 1
    assert series.last == ys[-1]


def test_series_counts_non_finite_values_but_keeps_drawing():
    series = Series()
    series.extend([1, 2, 3, 4], [0.5, math.nan, math.inf, 0.25])
    assert series.nonfinite == 2
    assert series.means() == [0.5, 0.25]
    assert series.smoothed(0.6)[0] == pytest.approx(0.5)


def test_fixture_folds_into_state():
    state = RunState()
    state.apply_all(load_events(fixture_run().events).events)
    assert state.name == "finetune_x2_gan"
    assert (state.status, state.iter, state.total_iter) == ("stopped", 3000, 4000)
    assert set(state.losses) >= {"l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake"}
    assert state.vals["Set5"].best_psnr[1] == 3000
    assert state.vals["Set5"].baselines["bicubic"]["psnr"] == 32.0
    assert len(state.gpus) == 1 and state.gpus[0].sample["mem_total"] > 0
    assert [a.code for a in state.alerts] == ["slow", "d_collapse"]
    assert state.checkpoints == 3
    assert not state.live


def test_tailer_handles_torn_lines_and_growth(tmp_path):
    paths = RunPaths(tmp_path / "run")
    source = fixture_run().events.read_bytes()
    paths.cockpit.mkdir(parents=True)
    cut = len(source) // 2 + 17  # mid-line
    paths.events.write_bytes(source[:cut])
    tailer = Tailer(paths, chunk_bytes=1 << 20, engine_log=False)
    first = tailer.poll()
    assert any(isinstance(m, TailCaughtUp) for m in first)
    with open(paths.events, "ab") as handle:
        handle.write(source[cut:])
    second = tailer.poll()
    state = RunState()
    for message in first + second:
        if isinstance(message, IterBatch):
            state.apply_iters(message.columns)
        elif isinstance(message, (RunStatus, SystemSample)):
            state.apply(message.event)
        elif isinstance(message, ValResults):
            for event in message.events:
                state.apply(event)
    assert tailer.count == len(load_events(fixture_run().events).events)
    assert state.iter == 3000 and state.status == "stopped"
    assert state.losses["l_g_pix"].count == 150


def test_split_events_coalesces_state_messages():
    messages = split_events("run", load_events(fixture_run().events).events)
    kinds = [type(m).__name__ for m in messages]
    assert kinds.count("SystemSample") == 1 and kinds.count("RunStatus") == 1
    assert kinds[-1] == "RunStatus"
    assert SystemSample("r", {}).can_replace(SystemSample("r", {}))
    assert not IterBatch("r", None).can_replace(IterBatch("r", None))


def test_200k_iteration_replay_stays_bounded(tmp_path):
    """A 200,000-iteration history (one iter event every 10) folds into a bounded store (its speed: bench/)."""
    paths = RunPaths(tmp_path / "big")
    write_run(paths.root, total_iter=200_000, iter_every=10, val_every=5000, ckpt_every=10_000,
              it_s=20.0, system_every=30.0, alerts=False, logs=False, final="finished")
    state = read_all(Tailer(paths, engine_log=False), RunState("big"))
    assert state.iter == 200_000 and state.status == "finished"
    assert state.losses["l_g_pix"].count == 20_000
    assert all(len(s) <= 512 for s in state.losses.values())
    assert state.stored_points() <= 512 * (len(state.losses) + 3) + 100


def test_discover_summarise_and_resolve():
    runs = discover_runs(Path(__file__).parent / "fixtures" / "runs")
    assert [p.root.name for p in runs] == ["demo_cpu_l1", "finetune_x2_gan", "oom_at_256"]
    summary = summarise(fixture_run())
    assert (summary.status, summary.iter, summary.total_iter) == ("stopped", 3000, 4000)
    assert summary.best_psnr == pytest.approx(31.4, abs=0.3) and summary.best_psnr_iter == 3000
    assert summary.last_t is not None and not summary.alive
    failed = summarise(fixture_run("oom_at_256"))
    assert failed.display_status == "failed"
    root = Path(__file__).parent / "fixtures" / "runs"
    assert resolve_run("demo_cpu_l1", root).root.name == "demo_cpu_l1"
    assert resolve_run(str(fixture_run().events), root).root.name == "finetune_x2_gan"
    with pytest.raises(UserError):
        resolve_run("nope", root)


def test_engine_alive_needs_a_live_pid_and_a_live_status(tmp_path):
    paths = RunPaths(tmp_path / "run")
    write_run(paths.root, total_iter=100, final="running", val_every=0, ckpt_every=0)
    assert not engine_alive(paths)  # no engine.json
    import socket

    info = {"pid": os.getpid(), "host": socket.gethostname(), "status": "running", "started": time.time()}
    paths.engine_json.write_text(json.dumps(info))
    assert engine_alive(paths)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    paths.engine_json.write_text(json.dumps({**info, "pid": dead.pid}))
    assert not engine_alive(paths)  # stale engine.json of a killed engine
    assert summarise(paths).display_status == "lost"
    paths.engine_json.write_text(json.dumps(info))
    with open(paths.events, "ab") as handle:
        handle.write(b'{"v":1,"t":1,"type":"status","status":"stopped"}\n')
    assert not engine_alive(paths)  # final status: dead whatever the pid


def test_config_round_trip_and_bad_file(tmp_path):
    assert cfg.config_path() == tmp_path / "config" / "config.yaml"
    config = cfg.load_config()
    assert config.theme == cfg.DEFAULT_THEME and not config.problems
    config.theme = "srcockpit-light"
    cfg.save_config(config)
    assert cfg.load_config().theme == "srcockpit-light"
    cfg.config_path().write_text("theme: [oops\n")
    broken = cfg.load_config()
    assert broken.theme == cfg.DEFAULT_THEME and broken.problems
    cfg.config_path().write_text("colour: red\nsmoothing: lots\n")
    assert len(cfg.load_config().problems) == 2


def test_project_themes_load_and_a_bad_theme_is_reported(tmp_path):
    themes, problems = cfg.load_themes([cfg.PROJECT_THEMES])
    names = {t.name for t in themes}
    assert {"srcockpit-dark", "srcockpit-light", "srcockpit-contrast"} <= names and not problems
    assert not next(t for t in themes if t.name == "srcockpit-light").dark
    bad = tmp_path / "themes"
    bad.mkdir()
    (bad / "broken.yaml").write_text("name: broken\nprimary: not-a-colour\n")
    (bad / "nameless.yaml").write_text("primary: '#fff'\n")
    (bad / "extra.yaml").write_text("name: x\nprimary: '#fff'\nsparkle: 3\n")
    themes, problems = cfg.load_themes([bad])
    assert themes == [] and len(problems) == 3


def test_importing_the_cockpit_never_imports_torch():
    code = ("import sys\nimport tui.app, tui.screens.dashboard, tui.screens.run_list, tui.tailer, tui.replay\n"
            "import tui.commands.attach\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'basicsr', 'cv2', 'numpy')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_importing_the_protocol_never_imports_torch():
    """engine.protocol is the contract both rooms import: standard library and msgspec only."""
    code = ("import sys\nimport engine.protocol, engine.losses\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'basicsr', 'cv2', 'numpy', "
            "'textual')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_cli_without_a_command_prints_help_under_no_ui(capsys):
    from tui.cli import main

    assert main(["--no-ui"]) == 0
    assert "usage: srcockpit" in capsys.readouterr().out


def test_attach_command_resolves_the_run_and_summarises_under_no_ui(capsys):
    from tui.cli import main

    assert main(["--no-ui", "attach", str(fixture_run().root)]) == 0
    assert capsys.readouterr().out.strip().startswith("finetune_x2_gan: stopped at iteration 3,000/4,000")
    assert main(["--no-ui", "attach", "no-such-run"]) == 2
