"""Damaged run folders through the real CLI (`status`, `status NAME`, `watch`, `attach --no-ui`): never a
traceback; a correct summary from what is still good, or one clear message and a non-zero exit.

Each case starts from a real recorded run (tests/fixtures/runs: stopped at iteration 3,000 of 4,000, best
PSNR 31.40 dB at 3,000) and damages one thing, as a crash, a full disk, a bad copy or another tool would.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import fixture_run

from engine.protocol import RunPaths, load_events
from tests.conftest import srcockpit
from tui.state import RunState
from tui.tailer import Tailer, read_all

NAME = "r1"
GOOD = ["stopped", "3000/4000", "31.40 dB @ 3000"]  # what `status` says of the undamaged run
DEEP = b"[" * 100_000 + b"]" * 100_000


def _append(data: bytes) -> Callable[[RunPaths], None]:
    def damage(paths: RunPaths) -> None:
        with open(paths.events, "ab") as handle:
            handle.write(data)
    return damage


def _engine_json(data: bytes) -> Callable[[RunPaths], None]:
    return lambda paths: paths.engine_json.write_bytes(data)


def _replace_log(data: bytes) -> Callable[[RunPaths], None]:
    return lambda paths: paths.events.write_bytes(data)


def _log_is_a_folder(paths: RunPaths) -> None:
    paths.events.unlink()
    paths.events.mkdir()


def _engine_json_is_a_folder(paths: RunPaths) -> None:
    paths.engine_json.mkdir()


def _header_only(paths: RunPaths) -> None:
    paths.events.write_bytes(paths.events.read_bytes().split(b"\n", 1)[0] + b"\n")


def _line(**fields) -> bytes:
    return json.dumps({"v": 1, "t": 1767261600.0, **fields}).encode() + b"\n"


@dataclass(frozen=True)
class Case:
    id: str
    damage: Callable[[RunPaths], None]
    argv: tuple[str, ...] = ("status",)
    rc: int = 0
    shows: tuple[str, ...] = tuple(GOOD)


CASES = [
    # engine.json that is no engine record: the run is simply not live
    Case("engine_json_list", _engine_json(b"[1, 2, 3]")),
    Case("engine_json_string", _engine_json(b'"hello"')),
    Case("engine_json_number", _engine_json(b"42")),
    Case("engine_json_invalid", _engine_json(b'{"pid": 12,')),
    Case("engine_json_binary", _engine_json(b"\x00\xff\xfe\x89PNG\r\n")),
    Case("engine_json_empty", _engine_json(b"")),
    Case("engine_json_folder", _engine_json_is_a_folder),
    Case("engine_json_pid_junk", _engine_json(b'{"pid": ["x"], "host": 7, "started": "soon"}')),
    Case("engine_json_list_named", _engine_json(b"[]"), ("status", NAME)),
    Case("engine_json_list_watch", _engine_json(b"[]"), ("watch", NAME), shows=(f"{NAME}: stopped",)),
    Case("engine_json_binary_attach", _engine_json(b"\xff" * 64), ("--no-ui", "attach", NAME),
         shows=("stopped at iteration 3,000/4,000, best PSNR 31.40 dB",)),
    # wrong-typed fields in the newest events: skipped, the last good ones count
    Case("run_total_iter_str", _append(_line(type="run", name=NAME, total_iter="x"))),
    Case("iter_list", _append(_line(type="iter", iter=[], total_iter=4000))),
    Case("iter_str", _append(_line(type="iter", iter="x", total_iter=4000))),
    Case("iter_out_of_range", _append(b'{"v":1,"t":1,"type":"iter","iter":1e400}\n')),
    Case("best_value_str", _append(_line(type="val", iter=3000, dataset="Set5", metrics={"psnr": 20.0},
                                         best={"psnr": {"value": "bad", "iter": 3000}}))),
    Case("status_unknown_word", _append(_line(type="status", status="sideways", iter=5))),
    Case("status_number", _append(_line(type="status", status=7))),
    Case("t_string", _append(_line(type="status", status="running", iter=1) .replace(b'"t": 1767261600.0',
                                                                                    b'"t": "noon"'))),
    Case("wrong_types_named", _append(_line(type="iter", iter=[], total_iter="x")), ("status", NAME)),
    Case("wrong_types_watch", _append(_line(type="iter", iter={}, total_iter="x")), ("watch", NAME),
         shows=(f"{NAME}: stopped",)),
    # torn, huge and foreign lines
    Case("torn_tail_50mb", _append(b'{"v":1,"t":1,"type":"log","message":"' + b"x" * (50 << 20))),
    Case("torn_tail_50mb_named", _append(b"{" + b"y" * (50 << 20)), ("status", NAME)),
    Case("torn_tail_50mb_attach", _append(b"{" + b"z" * (50 << 20)), ("--no-ui", "attach", NAME),
         shows=("stopped at iteration 3,000/4,000",)),
    Case("event_line_20mb", _append(_line(type="log", level="info", message="m" * (20 << 20)))),
    Case("garbage_line_20mb", _append(b"#" * (20 << 20) + b"\n")),
    Case("event_line_20mb_watch", _append(_line(type="log", level="info", message="w" * (20 << 20))),
         ("watch", NAME), shows=(f"{NAME}: stopped",)),
    Case("deep_nesting", _append(b'{"v":1,"t":1,"type":"result","x":' + DEEP + b"}\n")),
    Case("foreign_lines", _append(b'{"hello": "world"}\n[1, 2]\n"text"\n42\nnull\n')),
    Case("nul_bytes", _append(b"\x00" * 4096 + b"\n")),
    Case("crlf_line", _append(_line(type="log", message="crlf").rstrip(b"\n") + b"\r\n")),
    Case("unknown_event_type", _append(_line(type="sparkle", colour="red"))),
    Case("newer_fields", _append(_line(type="status", status="stopped", iter=3000, mood="calm"))),
    # logs with little or nothing in them
    Case("empty_log", _replace_log(b""), shows=(NAME, "unknown", "0/?")),
    Case("header_only", _header_only, shows=(NAME, "unknown", "0/?")),
    Case("torn_line_only", _replace_log(b'{"v":1,"t":1,"type":"sta'), shows=(NAME, "unknown")),
    Case("binary_log", _replace_log(bytes(range(256)) * 64), shows=(NAME, "unknown")),
    Case("utf16_log", _replace_log(_line(type="status", status="running").decode().encode("utf-16")),
         shows=(NAME, "unknown")),
    Case("empty_log_watch", _replace_log(b""), ("watch", NAME), shows=(f"{NAME}: no engine",)),
    Case("log_is_a_folder", _log_is_a_folder, shows=(NAME, "unreadable")),
    Case("log_is_a_folder_named", _log_is_a_folder, ("status", NAME), rc=2,
         shows=("events.jsonl is not a file",)),
    Case("log_is_a_folder_watch", _log_is_a_folder, ("watch", NAME), rc=2, shows=("events.jsonl is not a file",)),
    Case("no_such_run", lambda paths: None, ("watch", "nope"), rc=2, shows=("no run called 'nope'",)),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / NAME
    shutil.copytree(fixture_run().root, folder)
    return folder


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_damaged_run_folder_is_summarised_or_refused_clearly(case: Case, pristine: Path, tmp_path: Path):
    paths = RunPaths(tmp_path / "experiments" / NAME)
    shutil.copytree(pristine, paths.root)
    case.damage(paths)
    result = srcockpit(*case.argv, cwd=tmp_path, check=False, timeout=120)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode == case.rc, output[-3000:]
    for text in case.shows:
        assert text in output, output[-3000:]


def test_an_archived_run_is_listed_under_its_own_folder_name(pristine: Path, tmp_path: Path):
    archived = f"{pristine.name}_archived_20260101_101010"
    shutil.copytree(pristine, tmp_path / "experiments" / archived)
    shutil.copytree(pristine, tmp_path / "experiments" / NAME)
    out = srcockpit("status", cwd=tmp_path).stdout
    rows = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert rows == [NAME, archived]


@pytest.mark.parametrize("case", [c for c in CASES if c.argv == ("status",) and c.id != "log_is_a_folder"],
                         ids=lambda c: c.id)
def test_the_cockpit_state_folds_a_damaged_log(case: Case, pristine: Path, tmp_path: Path):
    paths = RunPaths(tmp_path / "experiments" / NAME)
    shutil.copytree(pristine, paths.root)
    case.damage(paths)
    state = read_all(Tailer(paths, engine_log=False), RunState(NAME))
    if case.shows == tuple(GOOD):
        assert (state.status, state.iter, state.total_iter) == ("stopped", 3000, 4000)
        assert state.vals["Set5"].best_psnr[1] == 3000
        assert len(load_events(paths.events).events) >= len(load_events(pristine / "cockpit/events.jsonl").events)
    else:
        assert state.status == "" and state.iter == 0
