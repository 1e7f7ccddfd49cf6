"""Bad `srcockpit export` requests end with exit code 2 and one clear message, before any work is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from engine.srvgg import SRVGGArch, save_checkpoint

    torch.manual_seed(0)
    net = SRVGGArch(num_feat=8, num_conv=2, upscale=2).build()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", net.state_dict())


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(["export", *argv])
    return code, capsys.readouterr().err


def test_missing_checkpoint(tmp_path, capsys):
    code, err = _run(capsys, str(tmp_path / "nope.pth"), "--calib", "builtin")
    assert code == 2 and "checkpoint not found" in err and "nope.pth" in err


def test_random_dict_is_not_a_checkpoint(tmp_path, capsys):
    import torch

    path = tmp_path / "dict.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    code, err = _run(capsys, str(path), "-o", str(tmp_path / "out"), "--calib", "builtin")
    assert code == 2 and "no state dict" in err
    assert not (tmp_path / "out").exists()


def test_other_architecture_is_refused(tmp_path, capsys):
    import torch

    path = tmp_path / "resnet.pth"
    torch.save({"params": {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.bias": torch.zeros(4)}}, path)
    code, err = _run(capsys, str(path), "-o", str(tmp_path / "out"), "--calib", "builtin")
    assert code == 2 and "not an SRVGGNetCompact network" in err


def test_srvgg_keys_with_inconsistent_shapes_are_refused(tmp_path, capsys):
    import torch

    state = {"body.0.weight": torch.zeros(8, 3, 3, 3), "body.0.bias": torch.zeros(8),
             "body.1.weight": torch.zeros(8), "body.2.weight": torch.zeros(12, 5, 3, 3),
             "body.2.bias": torch.zeros(12)}
    path = tmp_path / "broken.pth"
    torch.save({"params": state}, path)
    code, err = _run(capsys, str(path), "-o", str(tmp_path / "out"), "--calib", "builtin")
    assert code == 2 and "does not load as SRVGGNetCompact" in err


@pytest.mark.parametrize("size", ["270by480", "0x480", "270x-4", "270x480x3", "1.5x2", "x480", "9999x16"])
def test_unsupported_size(checkpoint, tmp_path, capsys, size):
    code, err = _run(capsys, str(checkpoint), "-o", str(tmp_path / "out"), f"--size={size}", "--calib", "builtin")
    assert code == 2
    assert "--size" in err and ("is not HEIGHTxWIDTH" in err or "between 1 and 4096" in err)
    assert not (tmp_path / "out").exists()


def test_bad_sim_size(checkpoint, tmp_path, capsys):
    code, err = _run(capsys, str(checkpoint), "-o", str(tmp_path / "out"), "--sim-size", "64", "--calib",
                     "builtin")
    assert code == 2 and "--sim-size '64' is not HEIGHTxWIDTH" in err


def test_output_folder_exists_without_force(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _run(capsys, str(checkpoint), "-o", str(out), "--calib", "builtin")
    assert code == 2 and "already exists" in err and "--force" in err
    assert [path.name for path in out.iterdir()] == ["keep.txt"]


def test_missing_calibration_folder(checkpoint, tmp_path, capsys):
    code, err = _run(capsys, str(checkpoint), "-o", str(tmp_path / "out"), "--calib", str(tmp_path / "none"))
    assert code == 2 and "calibration folder" in err and "does not exist" in err


def test_no_calibration_source_outside_a_run(checkpoint, tmp_path, capsys):
    code, err = _run(capsys, str(checkpoint), "-o", str(tmp_path / "out"), "--no-htp")
    assert code == 2 and "no calibration images" in err and "--calib" in err


def test_unknown_quantization_via_the_api(checkpoint):
    from engine.export import export_checkpoint
    from engine.protocol import UserError

    with pytest.raises(UserError, match="unknown quantization 'a4w4'"):
        export_checkpoint(checkpoint, quant="a4w4")
