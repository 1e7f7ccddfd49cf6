"""The typed event contract: every log ever written still decodes, bad lines are skipped and counted."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.protocol import (
    COMMANDS,
    FINISHED,
    Best,
    Command,
    EventFollower,
    IterEvent,
    LossKind,
    ResultEvent,
    Status,
    StatusEvent,
    ValEvent,
    classify_loss,
    decode_event,
    encode_event,
    load_events,
    losses_of_kind,
)

FIXTURES = Path(__file__).parent / "fixtures" / "runs" / "experiments"


@pytest.mark.parametrize("log", sorted(FIXTURES.glob("*/cockpit/events.jsonl")), ids=lambda p: p.parent.parent.name)
def test_every_recorded_log_decodes_whole(log: Path):
    lines = [line for line in log.read_bytes().splitlines() if line.strip()]
    read = load_events(log)
    assert read.skipped == 0 and len(read.events) == len(lines)


def test_a_typed_event_round_trips_with_non_finite_losses_as_strings():
    event = IterEvent(iter=7, total_iter=8, lr=1e-4, losses={"l_pix": math.nan, "l_g_gan": math.inf}, it_s=2.0)
    line = encode_event(event)
    assert b'"l_pix":"nan"' in line and b'"inf"' in line and b'"v":1' in line and b'"t":' in line
    back = decode_event(line)
    assert isinstance(back, IterEvent) and back.iter == 7 and math.isnan(back.losses["l_pix"])
    assert math.isinf(back.losses["l_g_gan"]) and back.type == "iter"


def test_status_values_and_commands_keep_their_words():
    line = encode_event(StatusEvent(status=FINISHED, iter=8))
    assert b'"status":"finished"' in line and b"null" not in line
    assert decode_event(line).status is Status.FINISHED and f"{FINISHED}" == "finished"
    assert COMMANDS == ("stop", "pause", "resume", "save", "validate", "ping") and Command("save") is Command.SAVE


def test_unknown_fields_are_accepted_and_a_result_keeps_its_figures():
    newer = b'{"v":1,"t":5,"type":"val","iter":4,"metrics":{"psnr":30.5},"best":{"psnr":{"value":31,"iter":2}},' \
            b'"colour_shift":{"r":0.1}}\n'
    event = decode_event(newer)
    assert isinstance(event, ValEvent) and event.best["psnr"] == Best(31.0, 2)
    result = decode_event(encode_event(ResultEvent(job="rank", figures={"candidates": [1, 2], "seconds": 1.5})))
    assert isinstance(result, ResultEvent) and result.figures == {"candidates": [1, 2], "seconds": 1.5}


@pytest.mark.parametrize("line", [
    b'{"v":1,"t":1,"type":"run","total_iter":"x"}',
    b'{"v":1,"t":1,"type":"iter","iter":[]}',
    b'{"v":1,"t":1,"type":"val","iter":4,"best":{"psnr":{"value":"bad"}}}',
    b'{"v":1,"t":1,"type":"status","status":"sideways"}',
    b'{"v":1,"t":1,"type":"iter","it',
    b'{"hello": "world"}',
    b"[1, 2, 3]",
    b'"just a string"',
    b"\xff\xfe\x00binary",
    b"",
    b'{"v":1,"t":1,"type":"result","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
], ids=["total_iter_str", "iter_list", "best_value_str", "unknown_status", "torn", "foreign", "list", "string",
        "binary", "empty", "deep_nesting"])
def test_a_bad_line_decodes_to_none(line: bytes):
    assert decode_event(line) is None


def test_huge_lines_and_a_torn_tail_are_skipped_and_counted(tmp_path: Path):
    log = tmp_path / "events.jsonl"
    good = encode_event(StatusEvent(status=FINISHED, iter=8))
    log.write_bytes(good + b'{"v":1,"t":1,"type":"log","message":"' + b"x" * (20 << 20) + b'"}\n'
                    + b'{"v":1,"t":1,"type":"iter","iter":"x"}\n' + good + b"{" + b"y" * (50 << 20))
    read = load_events(log)
    assert [type(e).__name__ for e in read.events] == ["StatusEvent", "LogEvent", "StatusEvent"]
    assert read.skipped == 1  # the wrong-typed iter; the torn tail is not a line yet
    follower = EventFollower(log)
    events = []
    while follower.offset < log.stat().st_size:
        events += follower.poll(8 << 20)
    assert len(events) == 3 and follower.skipped == 1


@pytest.mark.parametrize(("name", "kind"), [
    ("l_g_pix", LossKind.PIXEL), ("l_pix", LossKind.PIXEL), ("l_g_percep", LossKind.PERCEPTUAL),
    ("l_percep", LossKind.PERCEPTUAL), ("l_g_style", LossKind.STYLE), ("l_style", LossKind.STYLE),
    ("l_g_gan", LossKind.GAN), ("l_d_real", LossKind.D_REAL), ("l_d_fake", LossKind.D_FAKE),
    ("out_d_real", LossKind.D_OUTPUT), ("out_d_fake", LossKind.D_OUTPUT), ("l_g_ldl", LossKind.GENERATOR_OTHER),
    ("l_d_gp", LossKind.D_OTHER), ("l_g_l1", LossKind.PIXEL),
])
def test_losses_are_classified_from_their_own_names(name: str, kind: LossKind):
    assert classify_loss(name) is kind


def test_losses_of_kind_orders_by_the_kinds_given():
    names = ["l_d_fake", "out_d_real", "l_g_gan", "l_g_pix", "l_d_real", "l_g_percep"]
    assert losses_of_kind(names, (LossKind.PIXEL, LossKind.PERCEPTUAL, LossKind.GAN)) == \
        ("l_g_pix", "l_g_percep", "l_g_gan")
    assert losses_of_kind(names, (LossKind.D_REAL, LossKind.D_FAKE)) == ("l_d_real", "l_d_fake")
