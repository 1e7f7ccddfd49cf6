"""The tailer's fast path folds a log exactly as the typed events do (its speed is measured in bench/, not here)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import fixture_run

from engine.protocol import RunPaths, encode_event, load_events, make_event
from tui.messages import Backlog, IterBatch, TailCaughtUp
from tui.state import RunState
from tui.tailer import Tailer, read_all


def _write(paths: RunPaths, records: list[dict]) -> None:
    paths.cockpit.mkdir(parents=True, exist_ok=True)
    paths.events.write_bytes(b"".join(encode_event(r) for r in records))


def test_odd_iter_lines_fold_as_the_typed_events_do(tmp_path):
    """A list lr (old logs), "nan" strings, a missing eta, a loss that appears late and one that stops."""
    paths = RunPaths(tmp_path / "run")
    records = [make_event("iter", iter=1, lr=[2e-4, 1e-4], losses={"l_pix": 0.5}, it_s=1.0, data_s=0.1,
                          compute_s=0.9),
               make_event("iter", iter=2, lr=1e-4, losses={"l_pix": "nan", "l_g_gan": 0.1}, it_s=1.0,
                          data_s=0.1, compute_s=0.9, eta_s=5.0),
               make_event("iter", iter=3, lr=1e-4, losses={"l_g_gan": 0.2}, it_s="inf", data_s=0.1,
                          compute_s=0.9, eta_s=4.0)]
    _write(paths, records)
    with open(paths.events, "ab") as handle:  # no type: not an iter event, whatever its fields say
        handle.write(b'{"v":1,"t":1.0,"iter":4}\n')
    tailer = Tailer(paths, engine_log=False)
    state = read_all(tailer, RunState())
    assert tailer.events.skipped == 1
    typed = RunState()
    typed.apply_all(load_events(paths.events).events)
    assert state.iter == typed.iter == 3
    assert state.lr_series.means() == typed.lr_series.means() == [2e-4, 1e-4, 1e-4]
    for name in ("l_pix", "l_g_gan"):
        assert state.losses[name].means() == typed.losses[name].means()
        assert state.losses[name].nonfinite == typed.losses[name].nonfinite
    assert state.losses["l_pix"].means() == [0.5] and state.losses["l_g_gan"].count == 2
    assert math.isnan(state.last_losses["l_pix"]) and state.last_losses["l_g_gan"] == 0.2
    assert state.speed.nonfinite == 1 and state.eta_s == 4.0


def test_read_all_counts_every_checkpoint_of_a_chunk():
    state = read_all(Tailer(RunPaths(fixture_run().root), engine_log=False), RunState())
    assert state.checkpoints == 3


def test_follow_with_a_backlog_posts_the_history_once_then_follows(tmp_path):
    paths = RunPaths(tmp_path / "run")
    source = fixture_run().events.read_bytes()
    paths.cockpit.mkdir(parents=True)
    paths.events.write_bytes(source)
    posted: list = []

    def post(message) -> None:
        posted.append(message)
        if isinstance(message, TailCaughtUp):  # the history is in: the engine writes one more iteration
            with open(paths.events, "ab") as handle:
                handle.write(encode_event(make_event("iter", iter=3001, losses={"l_g_pix": 0.01})))

    Tailer(paths, chunk_bytes=4096, engine_log=False).follow(
        post, lambda: any(isinstance(m, IterBatch) for m in posted), interval=0.01, backlog=RunState("run"))
    backlog = [m for m in posted if isinstance(m, Backlog)]
    assert len(backlog) == 1 and isinstance(posted[1], TailCaughtUp) and posted[0] is backlog[0]
    expected = RunState("run")
    expected.apply_all(load_events(fixture_run().events).events)
    state = backlog[0].state
    assert (state.iter, state.status, state.checkpoints) == (expected.iter, expected.status, expected.checkpoints)
    assert state.losses["l_g_pix"].means() == expected.losses["l_g_pix"].means()
    assert [m.columns.iters for m in posted if isinstance(m, IterBatch)] == [[3001.0]]
