"""Width/depth transfer and the least-squares refit, on the real original and real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data as data
import torch
import yaml

from engine.protocol import UserError
from engine.weights.refit import RefitSettings
from engine.weights.transfer import transfer
from tests.fixtures_weights import (
    PLAN_OPTIONS,
    as_input,
    build,
    original_x2,
    write_calibration,
    write_small_valset,
)


def independent_top_k(weight: np.ndarray, k: int) -> list[int]:
    norms = np.sqrt((weight.reshape(weight.shape[0], -1).astype(np.float64) ** 2).sum(axis=1))
    return sorted(np.argsort(-norms, kind="stable")[:k].tolist())


def test_plan_transfer_32_32_loads_into_the_plans_network_with_the_top_k_channels():
    source = original_x2()
    result = transfer(source, num_feat=32, num_conv=32, deepen="duplicate")
    assert result.parameters == 301_356
    options = yaml.safe_load(PLAN_OPTIONS.read_text())["network_g"]
    assert options.pop("type") == "SRVGGNetCompact"
    from engine.compat import load_basicsr

    load_basicsr()
    from basicsr.archs.srvgg_arch import SRVGGNetCompact

    net = SRVGGNetCompact(**options)
    net.load_state_dict(result.state, strict=True)
    # kept channels: an independent top-k of every source conv but the last; the last keeps all 12
    previous = [0, 1, 2]
    for number, layer in enumerate(result.layers):
        weight = source[f"body.{2 * number}.weight"].numpy()
        expected = list(range(12)) if number == 17 else independent_top_k(weight, 32)
        assert layer.kept == expected, layer.layer
        assert layer.kept == sorted(layer.kept)
        if number < 17:
            total = (weight.astype(np.float64) ** 2).sum()
            kept = (weight[expected].astype(np.float64) ** 2).sum()
            assert layer.energy_kept == pytest.approx(kept / total)
        # the sliced weights sit where the report says: rows kept, columns = previous conv's rows
        sliced = source[f"body.{2 * number}.weight"][expected][:, previous]
        for target in layer.targets:
            assert torch.equal(result.state[f"{target}.weight"], sliced), (layer.layer, target)
        if number < 17:
            slope = source[f"body.{2 * number + 1}.weight"][expected]
            for target in layer.targets:
                index = int(target.split(".")[1]) + 1
                assert torch.equal(result.state[f"body.{index}.weight"], slope)
        previous = expected
    # order: each block followed by its copy (body.2 -> body.2 and body.4, body.4 -> body.6 and body.8, ...)
    assert result.layers[1].targets == ["body.2", "body.4"]
    assert result.layers[2].targets == ["body.6", "body.8"]
    assert result.layers[17].targets == ["body.66"]
    assert [block["kind"] for block in result.blocks[:4]] == ["kept", "copy", "kept", "copy"]


def test_identity_deepening_computes_exactly_the_narrow_network():
    source = original_x2()
    narrow = transfer(source, num_feat=32, num_conv=16)  # no extra blocks
    deep = transfer(source, num_feat=32, num_conv=32, deepen="identity")
    assert narrow.parameters < deep.parameters == 301_356
    x = as_input(data.rocket()[200:240, 300:340])
    with torch.inference_mode():
        a, b = build(narrow.state)(x), build(deep.state)(x)
    assert float((a - b).abs().max()) < 1e-5
    assert [block["kind"] for block in deep.blocks[:4]] == ["kept", "identity", "kept", "identity"]
    # odd depth: extra blocks spread evenly, still exact
    odd = transfer(source, num_feat=24, num_conv=21, deepen="identity")
    narrow24 = transfer(source, num_feat=24, num_conv=16)
    with torch.inference_mode():
        assert float((build(odd.state)(x) - build(narrow24.state)(x)).abs().max()) < 1e-5


def test_same_width_and_depth_is_the_source_and_shallower_drops_blocks():
    source = original_x2()
    same = transfer(source, num_feat=64, num_conv=16)
    assert all(torch.equal(same.state[key], source[key]) for key in source)
    shallow = transfer(source, num_feat=16, num_conv=4)
    assert shallow.arch.num_conv == 4 and len(shallow.layers) == 6
    assert any("dropped" in note for note in shallow.notes)
    build(shallow.state)


def test_bad_requests_are_user_errors():
    source = original_x2()
    with pytest.raises(UserError, match="wider"):
        transfer(source, num_feat=65, num_conv=16)
    with pytest.raises(UserError, match="at least 1 body conv"):
        transfer(source, num_feat=32, num_conv=0)
    with pytest.raises(UserError, match="duplicate is refused"):
        transfer(source, num_feat=32, num_conv=32, deepen="duplicate", refit=RefitSettings())
    with pytest.raises(UserError, match="not an SRVGGNetCompact"):
        transfer({"conv.weight": torch.zeros(3, 3, 3, 3)}, num_feat=8, num_conv=2)


def test_refit_raises_psnr_over_plain_pruning_on_real_photos(tmp_path: Path):
    from engine.evaluate import evaluate_model, find_valset

    gt_dir, lq_dir = find_valset(write_small_valset(tmp_path / "val"), 2)
    calibration = write_calibration(tmp_path / "calib")
    source = original_x2()
    plain = transfer(source, num_feat=32, num_conv=32, deepen="identity")
    settings = RefitSettings(calibration, patches=16, patch=32, seed=1)
    refit = transfer(source, num_feat=32, num_conv=32, deepen="identity", refit=settings)
    assert refit.refit["calibration_images"] == 4 and refit.refit["patches"] == 16
    refit_layers = [layer.refit for layer in refit.layers if layer.refit]
    assert len(refit_layers) == 17  # every conv after the first
    assert all(figures["error_after"] <= figures["error_before"] + 1e-9 for figures in refit_layers)
    scores = {label: evaluate_model(build(state), gt_dir, lq_dir).psnr
              for label, state in (("plain", plain.state), ("refit", refit.state), ("original", source))}
    print({label: round(value, 2) for label, value in scores.items()})
    assert scores["refit"] > scores["plain"] + 0.3
    # refit touches only the layers after a pruned one: the first conv is the plain pruned one
    assert torch.equal(refit.state["body.0.weight"], plain.state["body.0.weight"])
