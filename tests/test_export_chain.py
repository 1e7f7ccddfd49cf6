"""`srcockpit export` for real on a seeded SRVGGNetCompact 32/32/x2: ONNX, QDQ, HTP v73 binary, simulator.

Small inputs keep it fast (32x48 static, 32x32 on the HTP simulator); calibration images are
scikit-image photos written to a folder, read the way a user's --calib DIR is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from engine.protocol import read_events
from tui.cli import main

pytestmark = pytest.mark.slow


def _seeded_checkpoint(path: Path, num_feat: int = 32, num_conv: int = 32) -> Path:
    import torch

    from engine.srvgg import SRVGGArch, save_checkpoint

    torch.manual_seed(1234)
    net = SRVGGArch(num_feat=num_feat, num_conv=num_conv, upscale=2).build()
    return save_checkpoint(path, net.state_dict())


def _photo_folder(folder: Path) -> Path:
    from skimage import data

    from engine.data.images import write_png

    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        write_png(folder / f"{name}.png", getattr(data, name)())
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("export")
    checkpoint = _seeded_checkpoint(root / "net_g_100.pth")
    calib = _photo_folder(root / "calib")
    out = root / "out"
    code = main(["export", str(checkpoint), "-o", str(out), "--size", "32x48", "--sim-size", "32x32",
                 "--calib", str(calib), "--calib-frames", "6"])
    manifest = json.loads((out / "manifest.json").read_text())
    return {"code": code, "out": out, "manifest": manifest, "checkpoint": checkpoint, "calib": calib}


def test_export_succeeds_and_reports_every_step(exported, capsys):
    assert exported["code"] == 0
    figures = exported["manifest"]["figures"]
    for step in ("model", "onnx", "onnx_dynamic", "calibration", "quantize", "htp_compile", "htp_sim", "qnn_sdk",
                 "aihub"):
        assert step in figures, step


def test_onnx_matches_torch_and_has_the_expected_graph(exported):
    out, figures = exported["out"], exported["manifest"]["figures"]
    assert 0 <= figures["onnx"]["max_abs_error"] < 1e-5
    assert 0 <= figures["onnx_dynamic"]["max_abs_error"] < 1e-5
    model = onnx.load(str(out / "net_g_100_fp32_32x48.onnx"))
    assert next(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) == 17
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Conv") == 34 and ops.count("PRelu") == 33
    assert "Constant" not in ops  # the QDQ quantizer would quantize a Constant-node Resize scale
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 48]
    dynamic = onnx.load(str(out / "net_g_100_fp32_dynamic.onnx"))
    assert [d.dim_param for d in dynamic.graph.input[0].type.tensor_type.shape.dim][2:] == ["height", "width"]


def test_quantized_model_is_qdq_and_close_to_float(exported):
    out, quantize = exported["out"], exported["manifest"]["figures"]["quantize"]
    assert quantize["mode"] == "a8w8"
    assert quantize["psnr_vs_float_db"] > 40
    ops = {node.op_type for node in onnx.load(str(out / "net_g_100_a8w8_32x48.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    # Recompute the figure independently: quantized vs float on onnxruntime CPU, other crops.
    import onnxruntime as ort

    from engine.data.images import list_images, read_rgb
    from engine.export.calibration import make_frames

    images = [(path.name, read_rgb(path)) for path in list_images(exported["calib"])]
    frames = make_frames(images, (32, 48), 4, seed=7)
    sessions = [ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
                for name in ("net_g_100_fp32_32x48.onnx", "net_g_100_a8w8_32x48.onnx")]
    mse = np.mean([np.mean((np.clip(sessions[0].run(None, {"input": f})[0], 0, 1)
                            - np.clip(sessions[1].run(None, {"input": f})[0], 0, 1)) ** 2) for f in frames])
    assert 40 < 10 * np.log10(1 / mse) < 90  # quantization really happened, and it is faithful


def test_htp_context_binary_compiled_and_simulated(exported):
    out, figures = exported["out"], exported["manifest"]["figures"]
    context = out / "net_g_100_a8w8_32x48_ctx.onnx"
    nodes = onnx.load(str(context)).graph.node
    assert [node.op_type for node in nodes] == ["EPContext"]  # the whole graph went to HTP
    attributes = {a.name: a for a in nodes[0].attribute}
    binary = out / attributes["ep_cache_context"].s.decode()
    assert attributes["embed_mode"].i == 0 and binary.is_file() and binary.stat().st_size > 100_000
    compile_figures = figures["htp_compile"]
    assert compile_figures["soc_model"] == 43 and compile_figures["htp_arch"] == 73
    sim = figures["htp_sim"]
    assert sim["size"] == [32, 32]
    assert sim["psnr_vs_float_db"] > 40
    assert sim["psnr_vs_cpu_qdq_db"] > 45  # the simulator computes what the QDQ model says
    assert (out / "htp_sim" / "net_g_100_a8w8_32x32_ctx.onnx").is_file()


def test_manifest_lists_every_artefact_with_matching_hashes(exported):
    from engine.export.manifest import check_manifest
    from engine.files import sha256_file as sha256

    out, manifest = exported["out"], exported["manifest"]
    listed = {entry["path"] for entry in manifest["artefacts"]}
    on_disk = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    # besides the artefacts: the manifest itself and the job's own files (event log, engine.json)
    assert on_disk - listed == {"manifest.json", "cockpit/events.jsonl", "cockpit/engine.json"}
    assert listed <= on_disk
    for entry in manifest["artefacts"]:
        path = out / entry["path"]
        assert entry["sha256"] == sha256(path) and entry["bytes"] == path.stat().st_size
    assert check_manifest(out) == []
    assert manifest["parameters"] == 301_356
    assert manifest["macs_per_frame"] == 32 * 48 * 9 * (3 * 32 + 32 * 32 * 32 + 32 * 12)
    assert manifest["opset"] == 17
    assert manifest["checkpoint"]["sha256"] == sha256(exported["checkpoint"])
    assert {"torch", "onnx", "onnxruntime", "onnxruntime-qnn"} <= set(manifest["versions"])
    estimate = manifest["latency_estimate"]
    assert estimate["kind"] == "ESTIMATE" and "not a measurement" in estimate["method"]
    ratio = manifest["macs_per_frame"] / estimate["basis"]["macs"]
    assert estimate["w8a8_ms"] == pytest.approx(1.75 * ratio, abs=0.01)


def test_manifest_check_catches_a_changed_file(exported, tmp_path):
    import shutil

    from engine.export.manifest import check_manifest

    copy = tmp_path / "copy"
    shutil.copytree(exported["out"], copy)
    binary = copy / "net_g_100_a8w8_32x48_ctx_qnn.bin"
    blob = bytearray(binary.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size, one byte different
    binary.write_bytes(bytes(blob))
    (copy / "net_g_100_fp32_dynamic.onnx").unlink()
    problems = check_manifest(copy)
    assert any("ctx_qnn.bin: changed" in problem for problem in problems)
    assert any("dynamic.onnx: missing" in problem for problem in problems)


def test_qnn_sdk_script_written_not_run(exported, monkeypatch):
    out, sdk = exported["out"], exported["manifest"]["figures"]["qnn_sdk"]
    assert sdk["status"] == "written" and "not run" in sdk["message"]
    script = (out / "qnn_sdk" / "build_qnn_sdk.sh").read_text()
    for needle in ("qnn-onnx-converter", "qnn-model-lib-generator", "qnn-context-binary-generator",
                   "libQnnHtp.so", "--input_dim input 1,3,32,48", "--act_bitwidth 8", "htp_backend_extensions.json"):
        assert needle in script, needle
    config = json.loads((out / "qnn_sdk" / "htp_v73_config.json").read_text())
    assert config["devices"][0]["dsp_arch"] == "v73" and config["devices"][0]["soc_id"] == 43
    raw = (out / "qnn_sdk" / "calibration" / "frame_000.raw").stat().st_size
    assert raw == 32 * 48 * 3 * 4


def test_job_events_carry_each_step_and_its_figure(exported):
    events = list(read_events(exported["out"] / "cockpit" / "events.jsonl"))
    results = [event for event in events if event["type"] == "result"]
    steps = [event["step"] for event in results]
    assert steps[:3] == ["load", "onnx", "onnx_dynamic"] and steps[-1] == "summary"
    onnx_result = next(event for event in results if event["step"] == "onnx")
    assert onnx_result["max_abs_error"] < 1e-5
    sim = next(event for event in results if event["step"] == "htp_sim")
    assert sim["psnr_db"] > 40
    assert events[-1]["type"] == "status" and events[-1]["status"] == "finished"
    assert any(event["type"] == "progress" for event in events)


def test_a16w8_is_closer_to_float_and_force_goes_on_below_threshold(exported, tmp_path, capsys):
    out = tmp_path / "a16"
    code = main(["export", str(exported["checkpoint"]), "-o", str(out), "--size", "24x24", "--calib",
                 str(exported["calib"]), "--calib-frames", "4", "--quant", "a16w8", "--no-htp",
                 "--min-psnr", "200", "--force"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    quantize = manifest["figures"]["quantize"]
    assert quantize["mode"] == "a16w8" and quantize["below_threshold_forced"] is True
    assert quantize["psnr_vs_float_db"] > exported["manifest"]["figures"]["quantize"]["psnr_vs_float_db"]
    assert "below 200 dB, kept by --force" in capsys.readouterr().out
    assert not any("ctx" in entry["path"] for entry in manifest["artefacts"])  # --no-htp


def test_psnr_below_threshold_stops_with_exit_2(exported, tmp_path, capsys):
    out = tmp_path / "strict"
    code = main(["export", str(exported["checkpoint"]), "-o", str(out), "--size", "16x16", "--calib",
                 str(exported["calib"]), "--calib-frames", "2", "--no-htp", "--min-psnr", "200"])
    assert code == 2
    err = capsys.readouterr().err
    assert "below --min-psnr 200 dB" in err and "--force" in err
    assert not (out / "manifest.json").exists()
