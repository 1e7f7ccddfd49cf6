"""The ncnn importer against ncnn itself, and the exact x4 -> x2 head, on the real shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data as data
import torch

from engine.protocol import UserError
from engine.srvgg import count_parameters
from engine.weights.heads import downscale_head
from engine.weights.ncnn_import import import_ncnn, parse_param, shipped_ncnn_model
from tests.fixtures_weights import as_input, build, original_x2, shipped_x4


def ncnn_run(param: Path, binary: Path, image: np.ndarray, input_blob: str, output_blob: str) -> np.ndarray:
    """The ncnn PyPI package's own CPU inference (fp32 storage/arithmetic) of a float RGB image."""
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(binary)) == 0
    extractor = net.create_extractor()
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))  # ncnn.Mat wraps this memory: keep it alive
    extractor.input(input_blob, ncnn.Mat(chw))
    status, out = extractor.extract(output_blob)
    assert status == 0
    return np.array(out).transpose(1, 2, 0)


def test_shipped_model_is_found_through_the_package_and_adds_up():
    param, binary = shipped_ncnn_model(4)
    assert param.name == "realesr-animevideov3-x4.param" and binary.stat().st_size == 1_247_368
    imported = shipped_x4()
    assert (imported.arch.num_feat, imported.arch.num_conv, imported.arch.upscale) == (64, 16, 4)
    assert count_parameters(imported.state) == 621_424
    assert imported.weight_dtype == "float16"
    assert sorted(imported.state) == sorted(build(imported.state).state_dict())
    with pytest.raises(UserError):
        shipped_ncnn_model(5)


def test_x4_import_reproduces_ncnn_inference_on_a_photo():
    imported = shipped_x4()
    image = data.astronaut()[80:112, 180:212].astype(np.float32) / 255.0
    expected = ncnn_run(imported.param_path, imported.bin_path, image, imported.input_blob,
                        imported.output_blob)
    with torch.inference_mode():
        ours = build(imported.state)(as_input(image * 255))[0].permute(1, 2, 0).numpy()
    assert ours.shape == expected.shape == (128, 128, 3)
    error = float(np.abs(ours - expected).max())
    print(f"max |torch - ncnn| = {error:.2e}")
    # fp16 weights are read exactly; what is left is float32 summation order (~1e-6).
    assert error < 1e-4
    assert float(np.abs(expected).mean()) > 0.1  # a real image came out, not zeros


def test_x2_param_is_the_x4_network_plus_a_bicubic_half_resize():
    param, binary = shipped_ncnn_model(2)
    imported = import_ncnn(param, binary)
    assert imported.output_resize == ("bicubic", 0.5) and imported.effective_scale == 2
    for key, tensor in shipped_x4().state.items():
        assert torch.equal(imported.state[key], tensor), key


def test_x2_head_equals_avg_pooled_x4_on_a_photo():
    x4 = build(shipped_x4().state)
    x2_state, arch = downscale_head(shipped_x4().state, 2)
    assert arch.upscale == 2 and count_parameters(x2_state) == 600_652
    x = as_input(data.coffee()[100:140, 200:240])
    with torch.inference_mode():
        pooled = torch.nn.functional.avg_pool2d(x4(x), 2)
        head = build(x2_state)(x)
    assert head.shape == (1, 3, 80, 80)
    assert float((head - pooled).abs().max()) < 1e-5
    # and not trivially: the x2 output is not the nearest base alone
    assert float((head - torch.nn.functional.interpolate(x, scale_factor=2)).abs().max()) > 0.05


def test_x2_head_close_to_the_shipped_x2_ncnn_model():
    """avg-pool vs ncnn's bicubic 0.5x resize of the same x4 output: close, not equal."""
    param, binary = shipped_ncnn_model(2)
    imported = import_ncnn(param, binary)
    image = data.chelsea()[60:92, 120:152].astype(np.float32) / 255.0
    theirs = ncnn_run(param, binary, image, imported.input_blob, imported.output_blob)
    with torch.inference_mode():
        ours = build(original_x2())(as_input(image * 255))[0].permute(1, 2, 0).numpy()
    diff = (np.clip(ours, 0, 1) - np.clip(theirs, 0, 1))[4:-4, 4:-4]
    psnr = 10 * np.log10(1.0 / float(np.mean(diff ** 2)))
    print(f"PSNR(exact x2 head, ncnn x2 model) = {psnr:.2f} dB")
    assert 35 < psnr < 80  # close (50 dB on this crop), yet not the same resize


def _write(tmp_path: Path, text: str, bin_bytes: bytes) -> Path:
    param = tmp_path / "model.param"
    param.write_text(text)
    param.with_suffix(".bin").write_bytes(bin_bytes)
    return param


def test_unknown_layer_types_sizes_and_truncation_are_user_errors(tmp_path: Path):
    param, binary = shipped_ncnn_model(4)
    text, blob = param.read_text(), binary.read_bytes()
    cases = {
        "layer type": (text.replace("PReLU                    PRelu_3", "ReLU Relu_3"), blob),
        "kernel": (text.replace("1 1 56 57 0=64 1=3", "1 1 56 57 0=64 1=5"), blob),
        "truncated": (text, blob[:-100]),
        "too long": (text, blob + b"\0" * 8),
        "not ncnn": ("hello\n", blob),
    }
    expected = {"layer type": "ReLU", "kernel": "kernel 5x5", "truncated": "ends at byte",
                "too long": "holds", "not ncnn": "not an ncnn .param"}
    for case, (param_text, bin_bytes) in cases.items():
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        with pytest.raises(UserError) as error:
            import_ncnn(_write(folder, param_text, bin_bytes))
        assert expected[case] in str(error.value), (case, str(error.value))
    with pytest.raises(UserError, match="not found"):
        parse_param(tmp_path / "missing.param")


def test_fp32_tag_is_read_as_well(tmp_path: Path):
    """Rewrite the shipped .bin with float32 weights (tag 0): the same network comes back."""
    import struct

    param, binary = shipped_ncnn_model(4)
    blob, out, offset = binary.read_bytes(), bytearray(), 0
    for layer in parse_param(param):
        if layer.kind == "Convolution":
            count, bias = int(layer.params[6]), int(layer.params[0])
            assert struct.unpack("<I", blob[offset:offset + 4])[0] == 0x01306B47
            weights = np.frombuffer(blob[offset + 4:offset + 4 + 2 * count], "<f2").astype("<f4")
            offset += 4 + 2 * count
            out += struct.pack("<I", 0) + weights.tobytes() + blob[offset:offset + 4 * bias]
            offset += 4 * bias
        elif layer.kind == "PReLU":
            out += blob[offset:offset + 4 * int(layer.params[0])]
            offset += 4 * int(layer.params[0])
    assert offset == len(blob)
    fp32 = import_ncnn(_write(tmp_path, param.read_text(), bytes(out)))
    assert fp32.weight_dtype == "float32"
    for key, tensor in shipped_x4().state.items():
        assert torch.equal(fp32.state[key], tensor), key
