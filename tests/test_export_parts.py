"""The export's parts on their own: sizes, MACs, the Constant-node trap, calibration discovery, SDK runner, AI Hub."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from engine.protocol import UserError


@pytest.mark.parametrize(("text", "size"), [("270x480", (270, 480)), ("64X64", (64, 64)), (" 1x4096 ", (1, 4096))])
def test_parse_size(text, size):
    from engine.units import parse_size

    assert parse_size(text) == size


def test_conv_macs_counts_every_conv_at_the_input_size():
    from engine.export.onnx_export import conv_macs
    from engine.srvgg import SRVGGArch

    net = SRVGGArch(num_feat=32, num_conv=32, upscale=2).build()
    per_pixel = 9 * (3 * 32 + 32 * 32 * 32 + 32 * 12)
    assert conv_macs(net, (270, 480)) == 270 * 480 * per_pixel == 38_780_467_200
    # AI Hub's reference: 64 feat, 32 convs, x4 at 128x128.
    from engine.export.manifest import reference_macs

    assert reference_macs() == 128 * 128 * 9 * (3 * 64 + 32 * 64 * 64 + 64 * 48)


def test_latency_estimate_is_labelled_and_scaled():
    from engine.export.manifest import latency_estimate, reference_macs

    estimate = latency_estimate(2 * reference_macs(), "a8w8")
    assert estimate["kind"] == "ESTIMATE"
    assert estimate["float_ms"] == pytest.approx(11.8) and estimate["w8a8_ms"] == pytest.approx(3.5)
    assert estimate["basis"]["float_ms"] == 5.9 and estimate["basis"]["w8a8_ms"] == 1.75


def test_legacy_export_constant_scales_become_initializers(tmp_path):
    """The legacy exporter writes Resize scales as a Constant node, which QDQ would quantize (design.md 8)."""
    import onnx
    import torch

    from engine.export.onnx_export import constants_to_initializers
    from engine.srvgg import SRVGGArch

    net = SRVGGArch(num_feat=4, num_conv=1, upscale=2).build().eval()
    path = tmp_path / "legacy.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 8, 8),), str(path), opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    before = sum(node.op_type == "Constant" for node in model.graph.node)
    assert before >= 1
    assert constants_to_initializers(model) == before
    assert not any(node.op_type == "Constant" for node in model.graph.node)
    onnx.checker.check_model(model)
    import onnxruntime as ort

    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {
        model.graph.input[0].name: x})[0]
    with torch.inference_mode():
        assert np.abs(got - net(torch.from_numpy(x)).numpy()).max() < 1e-5


def test_reshaped_qdq_model_keeps_weights_and_scales(tmp_path):
    import onnx

    from engine.export.onnx_export import export_onnx, reshape_static_model
    from engine.srvgg import SRVGGArch

    net = SRVGGArch(num_feat=4, num_conv=1, upscale=2).build().eval()
    big = export_onnx(net, tmp_path / "big.onnx", (20, 24))
    small = reshape_static_model(big, tmp_path / "small.onnx", (8, 10), 2)
    a, b = onnx.load(str(big)), onnx.load(str(small))
    assert [d.dim_value for d in b.graph.output[0].type.tensor_type.shape.dim] == [1, 3, 16, 20]
    assert {t.name: t.raw_data for t in a.graph.initializer} == {t.name: t.raw_data for t in b.graph.initializer}


def test_calibration_frames_from_small_and_large_images():
    from engine.export.calibration import make_frames

    images = [("small", np.full((10, 12, 3), 255, np.uint8)), ("large", np.zeros((300, 500, 3), np.uint8))]
    frames = make_frames(images, (32, 48), 4, seed=0)
    assert [frame.shape for frame in frames] == [(1, 3, 32, 48)] * 4
    assert all(frame.dtype == np.float32 for frame in frames)
    assert frames[0].min() == 1.0 and frames[1].max() == 0.0  # small upscaled to cover, large cropped
    with pytest.raises(UserError):
        make_frames(images, (32, 48), 0)


def test_run_validation_folder_is_found_from_a_basicsr_run(tmp_path, monkeypatch):
    from engine.export.calibration import run_validation_folder

    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets" / "Set5" / "LRbicx2").mkdir(parents=True)
    run = tmp_path / "experiments" / "demo"
    (run / "models").mkdir(parents=True)
    checkpoint = run / "models" / "net_g_100.pth"
    checkpoint.write_bytes(b"")
    assert run_validation_folder(checkpoint) is None
    (run / "demo.yml").write_text("datasets:\n  train: {dataroot_gt: x}\n  val:\n"
                                  "    dataroot_gt: datasets/Set5/GTmod12\n    dataroot_lq: datasets/Set5/LRbicx2\n")
    assert run_validation_folder(checkpoint) == tmp_path / "datasets" / "Set5" / "LRbicx2"


def test_sdk_script_runs_when_qnn_sdk_root_is_set(tmp_path, monkeypatch):
    """A stand-in SDK whose tools log their arguments proves the script runs the three steps in order."""
    from engine.export.qnn_sdk import run_sdk_script, write_sdk_files

    sdk = tmp_path / "sdk"
    tools = sdk / "bin" / "x86_64-linux-clang"
    tools.mkdir(parents=True)
    (sdk / "lib" / "x86_64-linux-clang").mkdir(parents=True)
    for tool in ("qnn-onnx-converter", "qnn-model-lib-generator", "qnn-context-binary-generator"):
        (tools / tool).write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> "$(pwd)/calls.log"\n')
        (tools / tool).chmod(0o755)
    folder = tmp_path / "qnn_sdk"
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    frames = [np.zeros((1, 3, 4, 6), np.float32)]
    write_sdk_files(folder, model, frames, "a16w8", (4, 6))

    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    assert run_sdk_script(folder).status == "written"
    assert not (folder / "calls.log").exists()

    monkeypatch.setenv("QNN_SDK_ROOT", str(sdk))
    result = run_sdk_script(folder)
    assert result.status == "ran", result.message
    calls = (folder / "calls.log").read_text().splitlines()
    assert [line.split()[0] for line in calls] == ["qnn-onnx-converter", "qnn-model-lib-generator",
                                                   "qnn-context-binary-generator"]
    assert "--act_bitwidth 16 --weights_bitwidth 8" in calls[0] and "--input_dim input 1,3,4,6" in calls[0]
    assert f"--backend {sdk}/lib/x86_64-linux-clang/libQnnHtp.so" in calls[2]

    (tools / "qnn-model-lib-generator").write_text("#!/usr/bin/env bash\nexit 3\n")
    failed = run_sdk_script(folder)
    assert failed.status == "failed" and "exit 3" in failed.message


def test_aihub_says_what_is_missing_without_crashing(tmp_path, monkeypatch):
    import importlib.util

    from engine.export import aihub

    # test double for an absent service: qai-hub (Qualcomm's cloud client) installed or not, whatever this venv holds
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "qai_hub" else real(name, *a))
    result = aihub.submit(tmp_path / "m.onnx", (8, 8))
    assert result.status == "unavailable" and "pip install" in result.message and "api_token" in result.message
    assert result.jobs == {} and result.latency_ms is None

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "qai_hub" else real(name, *a))
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "absent.ini"))
    result = aihub.submit(tmp_path / "m.onnx", (8, 8))
    assert result.status == "not configured" and "qai-hub configure" in result.message


def test_manifest_json_has_no_bare_infinity(tmp_path):
    from engine.export.manifest import write_manifest

    path = write_manifest(tmp_path, {"psnr": float("inf"), "nested": [float("nan")], "p": Path("a/b")})
    assert json.loads(path.read_text()) == {"psnr": "inf", "nested": ["nan"], "p": "a/b"}
    assert not any(name.endswith(".partial") for name in os.listdir(tmp_path))
