"""engine/evaluate.py: basicsr's metrics on the right channel order, baselines, tiling, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.evaluate import (
    evaluate_baselines,
    evaluate_model,
    find_valset,
    load_pairs,
    tiled_forward,
)
from engine.protocol import UserError
from tests.fixtures_weights import build, original_x2, write_small_valset


@pytest.fixture(scope="module")
def valset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return find_valset(write_small_valset(tmp_path_factory.mktemp("val"), size=48), 2)


def reference_psnr_y(sr: np.ndarray, gt: np.ndarray, crop: int) -> float:
    """PSNR on ITU-R BT.601 luma (16..235), written out here from RGB, independent of basicsr."""
    def luma(rgb: np.ndarray) -> np.ndarray:
        rgb = rgb.astype(np.float64) / 255.0
        return (16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2])

    a, b = luma(sr)[crop:-crop, crop:-crop], luma(gt)[crop:-crop, crop:-crop]
    return float(10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2)))


def test_baselines_match_an_independent_y_psnr(valset):
    gt_dir, lq_dir = valset
    pairs = load_pairs(gt_dir, lq_dir)
    assert pairs.scale == 2 and len(pairs) == 4
    results = evaluate_baselines(pairs)
    nearest = results["nearest"]
    assert nearest.crop_border == 2 and nearest.test_y_channel and "repetition" in nearest.method
    for score, gt, lq in zip(nearest.images, pairs.gt, pairs.lq, strict=True):
        sr = lq.repeat(2, axis=0).repeat(2, axis=1)
        assert score.psnr == pytest.approx(reference_psnr_y(sr, gt, 2), abs=1e-4)  # basicsr: float32 luma
    assert "imresize" in results["bicubic"].method
    assert results["bicubic"].psnr > results["nearest"].psnr  # true on any photo set
    rgb = evaluate_baselines(pairs, crop_border=4, test_y_channel=False)["nearest"]
    assert rgb.crop_border == 4 and not rgb.test_y_channel and rgb.psnr != nearest.psnr
    data = nearest.to_dict()
    assert data["psnr"] == nearest.psnr and len(data["images"]) == 4 and data["crop_border"] == 2


def test_a_callable_equal_to_nearest_scores_like_the_nearest_baseline(valset):
    def nearest(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    model = evaluate_model(nearest, *valset, label="nearest net")
    baseline = evaluate_baselines(*valset, which=("nearest",))["nearest"]
    assert [s.psnr for s in model.images] == pytest.approx([s.psnr for s in baseline.images], abs=1e-9)
    assert model.ssim == pytest.approx(baseline.ssim, abs=1e-9)


def test_network_scores_tiling_and_training_flag(valset):
    net = build(original_x2())
    net.train()
    whole = evaluate_model(net, *valset, device="cpu", label="original")
    assert net.training  # restored for a training loop that calls this mid-run
    assert whole.label == "original" and whole.device == "cpu" and whole.seconds > 0
    assert 20 < whole.psnr < 60 and 0 < whole.ssim <= 1
    x = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = net.eval()(x)
        tiled = tiled_forward(net, x, 2, tile=16, tile_pad=18)  # 18 convs: receptive radius 18
    assert tiled.shape == full.shape
    assert float((tiled - full).abs().max()) < 1e-5
    tiled_scores = evaluate_model(net, *valset, tile=16, tile_pad=18)
    assert tiled_scores.psnr == pytest.approx(whole.psnr, abs=0.01)


def test_bad_sets_are_user_errors(tmp_path: Path, valset):
    gt_dir, lq_dir = valset
    with pytest.raises(UserError, match="no GTmod12"):
        find_valset(tmp_path, 2)
    other = tmp_path / "lq"
    other.mkdir()
    (other / "unrelated.png").write_bytes((lq_dir / "coffee.png").read_bytes())
    with pytest.raises(UserError, match="no LQ image"):
        load_pairs(gt_dir, other)
    with pytest.raises(UserError, match="does not match GT"):
        evaluate_model(lambda x: x, gt_dir, lq_dir)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_scores_match_cpu(valset):
    net = build(original_x2())
    cpu = evaluate_model(net, *valset, device="cpu")
    gpu = evaluate_model(net, *valset, device="cuda")
    assert gpu.device.startswith("cuda")
    assert gpu.psnr == pytest.approx(cpu.psnr, abs=0.01)


def test_unknown_or_missing_device_is_a_user_error(valset):
    with pytest.raises(UserError, match="unknown device"):
        evaluate_model(build(original_x2()), *valset, device="tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            evaluate_model(build(original_x2()), *valset, device="cuda")


def test_the_same_weights_on_the_same_images_are_scored_once_per_process(valset):
    """The demo's report scores stage 1's best after the stage-2 start's ranking did: the second asks the memo
    (engine/score_memo.py), keyed by the weights' and images' bytes, never by a label or a path."""
    from engine import score_memo
    from engine.metrics import standard_figures

    score_memo.forget()
    net, calls = build(original_x2()), []
    net.register_forward_hook(lambda *_: calls.append(1))
    pairs = load_pairs(*valset)
    figures = standard_figures(2, 2)
    first = evaluate_model(net, pairs, label="stage 1's best", figures=figures)
    runs = len(calls)
    assert runs == len(pairs)
    copy = build(original_x2())  # the promoted copy of the same weights: another module, the same bytes
    copy.register_forward_hook(lambda *_: calls.append(1))
    again = evaluate_model(copy, *valset, label="finetuned", figures=figures)
    assert len(calls) == runs and again.label == "finetuned" and first.label == "stage 1's best"
    assert [(s.psnr, s.ssim, s.figures) for s in again.images] == [(s.psnr, s.ssim, s.figures) for s in first.images]
    # other figures or another crop: the remembered outputs scored again, the network not run
    bare = evaluate_model(copy, pairs, figures=None)
    cropped = evaluate_model(copy, pairs, figures=figures, crop_border=4)
    assert len(calls) == runs and bare.psnr == first.psnr and not bare.images[0].figures
    assert cropped.crop_border == 4 and cropped.psnr != first.psnr
    with torch.no_grad():
        next(copy.parameters()).add_(1e-3)  # one weight moved: a new key
    moved = evaluate_model(copy, pairs, figures=figures)
    assert len(calls) == runs + len(pairs) and moved.psnr != first.psnr
    score_memo.forget()  # outputs over the budget are not kept: the network runs each time
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(score_memo, "BUDGET", 1000)
        evaluate_model(copy, pairs, figures=None)
        evaluate_model(copy, pairs, figures=figures)
    assert len(calls) == runs + 3 * len(pairs)
    plain = []
    evaluate_model(lambda x: plain.append(1) or net(x), pairs)  # a callable has no bytes to key: always run
    evaluate_model(lambda x: plain.append(1) or net(x), pairs)
    assert len(plain) == 2 * len(pairs)


def test_baselines_and_their_figures_are_computed_once_per_images_and_settings(valset, monkeypatch):
    from engine import evaluate, score_memo
    from engine.metrics import standard_figures

    score_memo.forget()
    method, convention = evaluate.BASELINES["bicubic"]
    calls = []
    monkeypatch.setitem(evaluate.BASELINES, "bicubic", (lambda lq, s: calls.append(1) or method(lq, s), convention))
    pairs = load_pairs(*valset)
    figures = standard_figures(2, 2)
    first = evaluate_baselines(pairs, figures=figures)["bicubic"]
    assert evaluate_baselines(*valset, figures=figures)["bicubic"].images == first.images
    assert len(calls) == len(pairs)
    evaluate_baselines(pairs, figures=figures, test_y_channel=False)
    assert len(calls) == 2 * len(pairs)
    means = evaluate.baseline_figures(pairs, figures, which=("bicubic",))
    assert evaluate.baseline_figures(pairs, figures, which=("bicubic",)) == means
    assert len(calls) == 3 * len(pairs)
    assert means["bicubic"]["niqe"] == pytest.approx(first.figures["niqe"], nan_ok=True)
