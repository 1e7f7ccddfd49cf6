"""`srcockpit weights import-ncnn / transfer` through tui.cli.main, as a user calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.srvgg import load_network
from tests.fixtures_weights import original_x2, write_small_valset
from tui.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["weights", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_import_ncnn_writes_the_exact_x2_original(tmp_path: Path, capsys):
    out = tmp_path / "original-x2.pth"
    code, text, _ = run(capsys, "import-ncnn", "-o", out)
    assert code == 0 and "600,652 parameters" in text and "exact x4 -> x2 head" in text
    blob = torch.load(out, weights_only=True)
    assert set(blob["params"]) == set(blob["params_ema"])
    _, arch = load_network(out, "params_ema")
    assert (arch.num_feat, arch.num_conv, arch.upscale) == (64, 16, 2)
    for key, tensor in original_x2().items():
        assert torch.equal(blob["params_ema"][key], tensor)
    code, _, err = run(capsys, "import-ncnn", "-o", out)
    assert code == 2 and "already exists" in err and "--force" in err
    code, text, _ = run(capsys, "import-ncnn", "--scale", "4", "-o", out, "--force", "--json")
    assert code == 0 and json.loads(text)["parameters"] == 621_424


def test_transfer_from_the_original_writes_checkpoint_report_and_scores(tmp_path: Path, capsys):
    valset = write_small_valset(tmp_path / "val", size=48)
    out, report = tmp_path / "small.pth", tmp_path / "report.json"
    code, text, err = run(capsys, "transfer", "--original", "--feat", "32", "--conv", "32", "-o", out,
                          "--report", report, "--valset", valset)
    assert code == 0, err
    assert "301,356 parameters" in text and "L2 energy kept" in text and "bicubic" in text
    _, arch = load_network(out, "params_ema")
    assert (arch.num_feat, arch.num_conv, arch.upscale) == (32, 32, 2)
    data = json.loads(report.read_text())
    assert data["parameters"] == 301_356 and data["deepen"] == "duplicate" and len(data["layers"]) == 18
    for layer in data["layers"][:-1]:
        assert layer["kept"] == sorted(layer["kept"]) and len(layer["kept"]) == 32
    assert set(data["validation"]) == {"nearest", "bicubic", "source", "transferred"}
    assert data["validation"]["source"]["parameters"] == 600_652
    # a transfer of a transfer: SOURCE.pth, narrower and shallower
    code, text, err = run(capsys, "transfer", out, "--feat", "16", "--conv", "8", "-o", tmp_path / "tiny.pth")
    assert code == 0, err
    assert load_network(tmp_path / "tiny.pth")[1].num_feat == 16


@pytest.mark.parametrize(("argv", "message"), [
    (["transfer", "missing.pth", "-o", "{tmp}/x.pth"], "checkpoint not found"),
    (["transfer", "{tmp}/other.pth", "-o", "{tmp}/x.pth"], "not an SRVGGNetCompact"),
    (["transfer", "--original", "--feat", "96", "-o", "{tmp}/x.pth"], "wider than the source"),
    (["transfer", "--original", "--conv", "0", "-o", "{tmp}/x.pth"], "at least 1 body conv"),
    (["transfer", "--original", "-o", "{tmp}/exists.pth"], "already exists"),
    (["transfer", "--original", "--refit", "{tmp}", "-o", "{tmp}/x.pth"], "duplicate is refused"),
    (["transfer", "--original", "--deepen", "identity", "--refit", "{tmp}/nowhere", "-o", "{tmp}/x.pth"],
     "does not exist"),
    (["transfer", "--original", "--valset", "{tmp}", "-o", "{tmp}/x.pth"], "no GTmod12"),
    (["transfer", "--original", "--scale", "3", "-o", "{tmp}/x.pth"], "multiple of x3"),
    (["import-ncnn", "--model", "{tmp}/nothing.param", "-o", "{tmp}/x.pth"], "ncnn model not found"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, capsys, argv: list[str], message: str):
    torch.save({"params": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, tmp_path / "other.pth")
    (tmp_path / "exists.pth").write_bytes(b"")
    (tmp_path / "calib.png").write_bytes(b"")  # --refit {tmp} passes the folder check, then is refused
    code, _, err = run(capsys, *[part.format(tmp=tmp_path) for part in argv])
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "x.pth").exists()


def test_help_texts(capsys):
    for argv in (["weights", "--help"], ["weights", "transfer", "--help"],
                 ["weights", "import-ncnn", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--deepen" in text and "--refit" in text and "params_ema" in text and "exact" in text
