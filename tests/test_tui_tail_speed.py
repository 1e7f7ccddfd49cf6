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


def _series(series) -> tuple:
    return (series.count, series.stride, series.counts, series.x0, series.x1, series.mins, series.maxs,
            series.last_x)


def _same_state(state: RunState, typed: RunState) -> None:
    """The folded state of the tailer's pieces and batches against the typed per-line fold: equal, the
    bucket sums (numpy's in a long batch) to the last bits. (The event count is not compared: the tailer
    coalesces a poll's system samples into its last, as it always has; nor a late loss's non-finite count:
    it is NaN over the points of its batch that lack it, as it always was, and batches differ.)"""
    assert (state.iter, state.status, state.checkpoints, state.total_iter, state.start_iter) == (
        typed.iter, typed.status, typed.checkpoints, typed.total_iter, typed.start_iter)
    assert list(state.rate_points) == list(typed.rate_points) and state.session_t == typed.session_t
    assert list(state.losses) == list(typed.losses)
    pairs = [(state.losses[name], typed.losses[name]) for name in typed.losses]
    for ours, theirs in [*pairs, (state.lr_series, typed.lr_series), (state.speed, typed.speed),
                         (state.data_share, typed.data_share)]:
        assert _series(ours) == _series(theirs)
        assert ours is state.losses.get("l_new") or ours.nonfinite == theirs.nonfinite
        assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(ours.sums, theirs.sums, strict=True))
    assert {k: repr(v) for k, v in state.last_losses.items()} == {k: repr(v) for k, v in typed.last_losses.items()}
    assert {k: len(v.points) for k, v in state.vals.items()} == {k: len(v.points) for k, v in typed.vals.items()}


def test_a_long_log_replays_in_pieces_as_the_typed_events_fold(tmp_path):
    """Pieces of the log decode in one call each; the odd ones (a resume's run event, a blank line, a loss
    that appears late, a result, a line holding two events, a torn line) take the line-by-line path."""
    from generate import write_run

    paths = RunPaths(tmp_path / "run")
    write_run(paths.root, total_iter=3000, iter_every=1, val_every=500, ckpt_every=1000, alerts=False,
              final="running")
    first = load_events(paths.events).events
    end, names = first[-1].t, next(e for e in first if e.type == "iter").losses
    resume = [make_event("run", t=end + 1, name="run", start_iter=3000, total_iter=6000),  # within the rate window
              make_event("result", t=end + 1, job="x", figures={"a": 1.0}, a=1.0)]
    later = [make_event("iter", t=end + 2 + i / 50, iter=3000 + i, total_iter=6000, lr=1e-4, it_s=5.0, data_s=0.1,
                        compute_s=0.1, losses={**dict.fromkeys(names, 0.1 + i / 1e4), **({"l_new": 0.2} if i > 900
                                                                                           else {})})
             for i in range(1, 1800)]
    with open(paths.events, "ab") as handle:
        handle.write(b"".join(encode_event(r) for r in resume))
        handle.write(b"".join(encode_event(r) for r in later[:300]) + b"\n")
        handle.write(b"".join(encode_event(r) for r in later[300:600]))
        handle.write(encode_event(later[600]).rstrip(b"\n") + encode_event(later[601]))  # two on one line
        handle.write(b"".join(encode_event(r) for r in later[602:]) + b'{"v":1,"t":1.0,"type":"iter","iter"')
    typed = RunState()
    typed.apply_all(load_events(paths.events).events)
    for chunk in (4 << 20, 40_000, 8_000):  # pieces of 256 KiB, one a poll, and line by line
        tailer = Tailer(paths, chunk_bytes=chunk, engine_log=False)
        _same_state(read_all(tailer, RunState()), typed)
        assert tailer.events.skipped == 1  # the line holding two events; the torn last line waits
    assert typed.iter == 4799 and typed.losses["l_new"].count == 899 and typed.rate_points[0][1] == 3001


def _engine_iters(writer, first: int, count: int, losses: tuple[str, ...], t0: float) -> None:
    """Iter events as the training loop emits them, a system sample and a val now and then between."""
    from engine.protocol import IterEvent, SystemEvent, ValEvent

    for it in range(first, first + count):
        eta = None if it % 13 == 0 else float(count - it)
        writer.emit(IterEvent(t=t0 + it / 50, iter=it, epoch=it // 100, total_iter=first + count, lr=1e-4 / (1 + it),
                              losses={name: 0.5 / it + index for index, name in enumerate(losses)}, it_s=5.0 + it % 3,
                              data_s=0.01, compute_s=0.19, eta_s=eta))
        if it % 7 == 0:
            writer.emit(SystemEvent(t=t0 + it / 50, cpu_percent=float(it % 90), rss=it))
        if it % 250 == 0:
            writer.emit(ValEvent(t=t0 + it / 50, iter=it, dataset="val", metrics={"psnr": 30 + it / 1e3}))


def _replays(paths: RunPaths) -> tuple[RunState, RunState, RunState]:
    """The run folded through the engine's iter index, from the log alone, and as typed events."""
    indexed = read_all(Tailer(paths, engine_log=False), RunState())
    alone = Tailer(paths, engine_log=False)
    alone.events.index = False
    typed = RunState()
    typed.apply_all(load_events(paths.events).events)
    return indexed, read_all(alone, RunState()), typed


def test_the_engines_iter_index_replays_a_resumed_run_as_its_log_does(tmp_path):
    """Written by the real EventWriter: a loss that appears (a second index file), a resume whose last row was
    torn, an iter line whose row never came (a kill between the two), a result between the iters."""
    from engine.events import EventWriter
    from engine.protocol import RunEvent, StatusEvent, decode_series_header, series_paths
    from tui.iter_index import read_index

    paths = RunPaths(tmp_path / "run")
    writer = EventWriter(paths.events, source="engine")
    writer.emit(RunEvent(t=1.0, name="run", start_iter=0, total_iter=900))
    _engine_iters(writer, 1, 400, ("l_g_pix",), 10.0)
    _engine_iters(writer, 401, 200, ("l_g_pix", "l_new"), 10.0)
    writer.close()
    last = series_paths(paths.events)[-1]
    with open(last, "ab") as handle:
        handle.write(b"\x00" * 5)  # a row cut short by a full disk
    with open(paths.events, "ab") as handle:  # a line the killed engine wrote, its row not
        handle.write(encode_event(make_event("iter", t=30.0, iter=601, losses={"l_g_pix": 0.1, "l_new": 1.0})))
        handle.write(encode_event(make_event("result", t=30.0, job="probe", figures={"a": 1.0}, a=1.0)))
    resumed = EventWriter(paths.events, source="engine")
    header, start = decode_series_header(last.read_bytes())
    assert (last.stat().st_size - start) % (8 * header.width) == 0  # cut back to whole rows
    resumed.emit(RunEvent(t=40.0, name="run", start_iter=601, total_iter=900))
    _engine_iters(resumed, 602, 299, ("l_g_pix", "l_new"), 30.0)
    resumed.emit(StatusEvent(t=60.0, status="finished", iter=900))
    resumed.close()
    assert [path.name for path in series_paths(paths.events)] == ["events.iters-000.bin", "events.iters-001.bin"]
    index = read_index(paths.events)
    assert index is not None and index.rows == 899  # every iteration but the one whose row never came
    indexed, alone, typed = _replays(paths)
    _same_state(indexed, typed)
    _same_state(alone, typed)
    assert indexed.iter == 900 and indexed.status == "finished" and indexed.start_iter == 601
    assert indexed.losses["l_new"].count == 500 and math.isnan(indexed.eta_s) is False


def test_an_iter_index_that_disagrees_with_its_log_is_left_unread(tmp_path):
    """A log rewritten under its index (every line moved), or a last line whose numbers are not its row's:
    the index is not used, and the replay is the log's."""
    from generate import write_run

    from tui.iter_index import read_index

    paths = RunPaths(tmp_path / "run")
    write_run(paths.root, total_iter=300, iter_every=1, val_every=100, ckpt_every=100, final="finished")
    assert read_index(paths.events) is not None
    original = paths.events.read_bytes()
    paths.events.write_bytes(encode_event(make_event("log", level="info", message="moved")) + original)
    assert read_index(paths.events) is None
    indexed, _, typed = _replays(paths)
    _same_state(indexed, typed)
    at = original.rfind(b'"type":"iter","iter":300,')  # the same length: every line stays where its row says
    paths.events.write_bytes(original[:at] + original[at:].replace(b'"iter":300,', b'"iter":301,', 1))
    assert read_index(paths.events) is None
    indexed, _, typed = _replays(paths)
    _same_state(indexed, typed)
    assert indexed.lr_series.last_x == 301
