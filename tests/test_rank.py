"""Checkpoint ranking (engine/rank.py, `srcockpit rank`): metrics, order, cache, promote, errors.

Metric tolerances measured here against scikit-image 0.26 on real photos (GT 240x240 crops of
astronaut/coffee/chelsea/rocket, LR by MATLAB bicubic x2, SR by bicubic and nearest upscaling, crop 2):
- PSNR, Y (same BT.601 Y formula) or RGB: |basicsr - skimage.peak_signal_noise_ratio| < 1e-6 dB (asserted 0.01).
- SSIM with skimage's Wang et al. settings (gaussian_weights, sigma 1.5, population covariance): < 1e-6
  (asserted 1e-4). With skimage's defaults (7x7 uniform window, sample covariance) they differ by up to
  0.017 on these images (asserted 0.03): a window difference, not an error.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_RUN as RUN


def _bt601_y(rgb: np.ndarray) -> np.ndarray:
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def test_metrics_are_basicsr_and_agree_with_scikit_image() -> None:
    import skimage.data as data
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from engine.data.valset import bicubic_downscale, gt_mod_crop

    # basicsr.metrics.psnr_ssim's own functions, imported after engine.compat's torchvision shim
    from engine.evaluate import bicubic_upscale, calculate_psnr, calculate_ssim, nearest_upscale, score

    assert calculate_psnr.__module__ == calculate_ssim.__module__ == "basicsr.metrics.psnr_ssim"
    worst = {"psnr_y": 0.0, "psnr_rgb": 0.0, "ssim_gauss": 0.0, "ssim_default": 0.0}
    crop = 2
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        gt = gt_mod_crop(getattr(data, name)()[:240, :240])
        lq = bicubic_downscale(gt, 2)
        for upscale in (bicubic_upscale, nearest_upscale):
            sr = upscale(lq, 2)
            psnr, ssim = score(sr, gt, crop_border=crop, test_y_channel=True)
            # the very functions of basicsr, on BGR as basicsr reads images
            assert psnr == calculate_psnr(sr[..., ::-1], gt[..., ::-1], crop, test_y_channel=True)
            assert ssim == calculate_ssim(sr[..., ::-1], gt[..., ::-1], crop, test_y_channel=True)
            a = _bt601_y(sr.astype(np.float64))[crop:-crop, crop:-crop]
            b = _bt601_y(gt.astype(np.float64))[crop:-crop, crop:-crop]
            worst["psnr_y"] = max(worst["psnr_y"], abs(psnr - peak_signal_noise_ratio(b, a, data_range=255)))
            gauss = structural_similarity(b, a, data_range=255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
            worst["ssim_gauss"] = max(worst["ssim_gauss"], abs(ssim - gauss))
            worst["ssim_default"] = max(worst["ssim_default"], abs(ssim - structural_similarity(b, a, data_range=255)))
            psnr_rgb, _ = score(sr, gt, crop_border=crop, test_y_channel=False)
            inner = (slice(crop, -crop), slice(crop, -crop))
            worst["psnr_rgb"] = max(worst["psnr_rgb"], abs(psnr_rgb - peak_signal_noise_ratio(
                gt[inner], sr[inner], data_range=255)))
    print(f"max |basicsr - skimage|: {worst}")
    assert worst["psnr_y"] < 0.01 and worst["psnr_rgb"] < 0.01
    assert worst["ssim_gauss"] < 1e-4
    assert 1e-4 < worst["ssim_default"] < 0.03  # the window really differs; both are SSIM


def test_rank_scores_match_the_engine_validation(tiny_run: Path, run_copy: Path) -> None:
    """params_ema is what basicsr validates during training: the ranking must give the same numbers."""
    from engine.protocol import read_events
    from engine.rank import rank_run

    result = rank_run(run_copy, original=None)
    logged = {e["iter"]: e["metrics"] for e in read_events(run_copy / "cockpit" / "events.jsonl") if e["type"] == "val"}
    ema = {c.iter: c for c in result.candidates if c.entry == "params_ema"}
    assert set(ema) == set(logged) == {4, 8}
    for iteration, metrics in logged.items():
        assert ema[iteration].psnr == pytest.approx(metrics["psnr"], abs=1e-6)
        assert ema[iteration].ssim == pytest.approx(metrics["ssim"], abs=1e-6)
    assert result.settings.crop_border == 2 and result.settings.test_y_channel
    assert "options val.metrics.psnr" in result.settings_text and "crop_border 2" in result.settings_text
    assert {c.entry for c in result.candidates} == {"params", "params_ema"} and len(result.candidates) == 4
    # net_g_latest.pth is the same file as net_g_8.pth: not a candidate of its own
    assert all(c.file.name != "net_g_latest.pth" for c in result.candidates)
    assert [r.label for r in result.references] == ["nearest", "bicubic"]


def _noisy_checkpoints(run_dir: Path) -> dict[tuple[str, str], float]:
    """Replace the run's checkpoints by copies of its trained weights with noise of known strength.

    The base is net_g_8's params with the last conv zeroed (the network then returns exactly the nearest
    upscale); every copy adds `level` x one fixed Gaussian direction (scaled per tensor by its std), so more
    noise means a larger, wronger residual. Iterations are deliberately not in quality order.
    """
    from engine.srvgg import read_checkpoint, save_checkpoint

    models = run_dir / "models"
    state = read_checkpoint(models / "net_g_8.pth", "params")
    last = max(int(key.split(".")[1]) for key in state)
    generator = torch.Generator().manual_seed(0)
    direction = {k: torch.randn(v.shape, generator=generator) * v.std() for k, v in state.items()}
    base = {k: torch.zeros_like(v) if k.startswith(f"body.{last}.") else v for k, v in state.items()}

    def noisy(level: float) -> dict[str, torch.Tensor]:
        return {k: v + level * direction[k] for k, v in base.items()}

    for path in models.glob("net_g_*.pth"):
        path.unlink()
    torch.save({"params": noisy(0.4), "params_ema": noisy(0.05)}, models / "net_g_100.pth")
    torch.save({"params": noisy(0.1), "params_ema": noisy(0.8)}, models / "net_g_200.pth")
    save_checkpoint(models / "net_g_300.pth", noisy(0.2))  # params == params_ema: one candidate
    return {("net_g_100.pth", "params"): 0.4, ("net_g_100.pth", "params_ema"): 0.05,
            ("net_g_200.pth", "params"): 0.1, ("net_g_200.pth", "params_ema"): 0.8,
            ("net_g_300.pth", "params"): 0.2}


def test_ranking_follows_the_noise(run_copy: Path) -> None:
    from engine.rank import rank_run

    levels = _noisy_checkpoints(run_copy)
    result = rank_run(run_copy, original=None)
    order = [(c.file.name, c.entry) for c in result.ranked]
    assert order == sorted(levels, key=levels.get), [(c.label, c.psnr) for c in result.ranked]
    assert [c.rank for c in result.ranked] == [1, 2, 3, 4, 5]
    psnrs = [c.psnr for c in result.ranked]
    assert psnrs == sorted(psnrs, reverse=True) and psnrs[0] - psnrs[-1] > 3
    assert result.best.label == "net_g_100.pth [params_ema]"
    merged = next(c for c in result.candidates if c.file.name == "net_g_300.pth")
    assert merged.note == "params == params_ema"
    # without EMA entries only params compete
    no_ema = rank_run(run_copy, original=None, include_ema=False)
    assert [(c.file.name, c.entry) for c in no_ema.ranked] == [
        ("net_g_200.pth", "params"), ("net_g_300.pth", "params"), ("net_g_100.pth", "params")]


def test_cache_is_used_and_invalidated(run_copy: Path) -> None:
    import engine.rank as rank
    from engine.srvgg import read_checkpoint

    calls: list[str] = []  # the models evaluated, as rank_run reports each evaluation ("LABEL on VALSET")

    def record(done: int, _total: int, message: str) -> None:
        if done and not message.startswith("baselines on "):
            calls.append(message.rsplit(" on ", 1)[0])

    first = rank.rank_run(run_copy, original=None, progress=record)
    assert sorted(calls) == sorted(c.label for c in first.candidates) and len(calls) == 4
    assert first.evaluated == 5 and first.reused == 0  # 4 checkpoints + the baselines
    cache = json.loads((run_copy / "cockpit" / "rank_cache.json").read_text())
    assert sum(1 for v in cache["scores"].values() if v.get("kind") == "checkpoint") == 4

    calls.clear()
    second = rank.rank_run(run_copy, original=None, progress=record)
    assert calls == [] and second.evaluated == 0 and second.reused == 4
    assert all(c.cached for c in second.candidates)
    assert [(c.label, c.psnr, c.ssim) for c in second.ranked] == [(c.label, c.psnr, c.ssim) for c in first.ranked]

    # a rewritten file has a new hash: only its two entries are evaluated again
    path = run_copy / "models" / "net_g_4.pth"
    blob = {key: {k: v * 1.5 for k, v in read_checkpoint(path, key).items()} for key in ("params", "params_ema")}
    torch.save(blob, path)
    calls.clear()
    third = rank.rank_run(run_copy, original=None, progress=record)
    assert sorted(calls) == ["net_g_4.pth [params]", "net_g_4.pth [params_ema]"]
    changed = {c.label: c for c in third.candidates}
    before = {c.label: c for c in first.candidates}
    assert changed["net_g_4.pth [params]"].psnr != before["net_g_4.pth [params]"].psnr
    assert changed["net_g_8.pth [params]"].cached and not changed["net_g_4.pth [params]"].cached

    # other metric settings or another validation set are other cache entries
    calls.clear()
    rank.rank_run(run_copy, original=None, crop_border=0, progress=record)
    assert len(calls) == 4
    val = Path(json.loads((run_copy / "cockpit" / "engine.json").read_text())["root"]) / "datasets/demo/val"
    one = run_copy.parent.parent / "one_image"
    for folder in ("GTmod12", "LRbicx2"):
        (one / folder).mkdir(parents=True)
        shutil.copy(val / folder / "astronaut.png", one / folder / "astronaut.png")
    calls.clear()
    other = rank.rank_run(run_copy, [f"{one}/GTmod12:{one}/LRbicx2"], original=None, progress=record)
    assert len(calls) == 4 and other.valsets[0].name == "one_image"
    assert [s[0] for s in other.best.scores["one_image"].images] == ["astronaut"]


def test_promote_writes_the_best_weights_and_a_sidecar(run_copy: Path, tmp_path: Path) -> None:
    from engine.protocol import UserError
    from engine.rank import promote, rank_run
    from engine.srvgg import load_network, read_checkpoint

    _noisy_checkpoints(run_copy)
    result = rank_run(run_copy, original=None)
    target = promote(result, tmp_path / "weights" / "best.pth")
    best = result.best
    expected = read_checkpoint(best.file, best.entry)
    blob = torch.load(target, map_location="cpu", weights_only=True)
    for key in ("params", "params_ema"):
        assert blob[key].keys() == expected.keys()
        assert all(torch.equal(blob[key][k], expected[k]) for k in expected)
    _net, arch = load_network(target)
    assert arch.num_feat == 32 and arch.num_conv == 32 and arch.upscale == 2
    side = json.loads(target.with_suffix(".json").read_text())
    assert side["source"] == str(best.file) and side["entry"] == "params_ema" and side["iter"] == 100
    assert side["psnr"] == best.psnr and side["ssim"] == best.ssim and side["rank"] == 1 and side["of"] == 5
    assert side["valsets"][0]["name"] == "demo_val" and side["settings"]["crop_border"] == 2
    assert side["settings"]["test_y_channel"] is True and side["parameters"] == 301_356
    assert {"nearest", "bicubic"} <= set(side["references"])
    # a checkpoint rewritten after ranking is refused
    torch.save({"params": expected}, best.file)
    with pytest.raises(UserError, match="changed or vanished"):
        promote(result, tmp_path / "weights" / "again.pth")


def test_rank_job_writes_progress_and_result(run_copy: Path, tmp_path: Path) -> None:
    from engine.job_runner import run_job
    from engine.protocol import read_events

    run_job(tmp_path / "job", "rank", {"run": str(run_copy), "original": "none"})
    events = list(read_events(tmp_path / "job" / "cockpit" / "events.jsonl"))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "header" and "progress" in kinds and kinds[-1] == "status"
    assert events[-1]["status"] == "finished"
    result = next(e for e in events if e["type"] == "result")
    assert result["job"] == "rank" and result["best"]["rank"] == 1 and len(result["candidates"]) == 4
    last = [e for e in events if e["type"] == "progress"][-1]
    assert last["done"] == last["total"] == 5


def test_cli_rank_table_promote_and_original(run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    target = tmp_path / "w" / "finetuned.pth"
    assert main(["rank", str(run_copy), "--promote", "--to", str(target)]) == 0
    out = capsys.readouterr().out
    assert "net_g_8.pth [params_ema]" in out and "net_g_4.pth [params]" in out and "best" in out
    assert "nearest" in out and "bicubic" in out and "original" in out and "600,652 params" in out
    assert "crop_border 2" in out and "Y," in out
    assert target.is_file() and target.with_suffix(".json").is_file()
    assert main(["rank", RUN, "--json", "--no-ema", "--original", "none"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {c["entry"] for c in data["candidates"]} == {"params"} and data["best"]["rank"] == 1
    assert data["settings"] == {"crop_border": 2, "test_y_channel": True, "source": "options val.metrics.psnr",
                                "metrics": data["settings"]["metrics"]}


def test_cli_rank_bad_input_exits_2(run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    assert main(["rank", "no_such_run"]) == 2
    assert "no run called 'no_such_run'" in capsys.readouterr().err

    empty = tmp_path / "experiments" / "empty_run"
    (empty / "cockpit").mkdir(parents=True)
    shutil.copy(run_copy / "cockpit" / "events.jsonl", empty / "cockpit" / "events.jsonl")
    assert main(["rank", "empty_run"]) == 2
    assert "has no checkpoints" in capsys.readouterr().err

    assert main(["rank", RUN, "--valset", "missing/GT:missing/LQ"]) == 2
    err = capsys.readouterr().err
    assert "validation GT folder" in err and "does not exist" in err

    (run_copy / "cockpit" / "options.yml").write_text("name: x\nscale: 2\n")
    assert main(["rank", RUN]) == 2
    assert "names no validation set" in capsys.readouterr().err


def _crafted_checkpoints(run_dir: Path) -> None:
    """Three checkpoints whose outputs are nearest upscaling plus a known pattern, set by the last conv's biases (12
    channels: colour x 4 output phases; its weights zeroed so the residual is the biases alone):
    net_g_100: blue +8 grey levels (Y moves 0.8 of a level: PSNR falls 1 dB); net_g_200: a +-1 grey-level 2x2
    checkerboard (-1.2 dB); net_g_300: every channel +2 (-3 dB, but under the colour limit: clean)."""
    from engine.srvgg import read_checkpoint, save_checkpoint

    models = run_dir / "models"
    state = read_checkpoint(models / "net_g_8.pth", "params_ema")
    last = max(int(key.split(".")[1]) for key in state)
    base = {k: torch.zeros_like(v) if k.startswith(f"body.{last}.") else v for k, v in state.items()}
    for path in models.glob("net_g_*.pth"):
        path.unlink()
    biases = {100: [0.0] * 8 + [8.0] * 4, 200: [1.0, -1.0, -1.0, 1.0] * 3, 300: [2.0] * 12}
    for iteration, levels in biases.items():
        save_checkpoint(models / f"net_g_{iteration}.pth", {**base, f"body.{last}.bias": torch.tensor(levels) / 255})


def test_a_checkpoint_with_artifacts_is_marked_and_ranked_after_the_clean_ones(run_copy: Path) -> None:
    from engine.health import CHECKERBOARD_MAX, COLOR_SHIFT_MAX
    from engine.rank import rank_run

    _crafted_checkpoints(run_copy)
    result = rank_run(run_copy, original=None)
    by_iter = {c.iter: c for c in result.candidates}
    assert by_iter[100].psnr > by_iter[200].psnr > by_iter[300].psnr  # PSNR alone would pick the blue one
    assert by_iter[100].figures["color_shift"] == pytest.approx(8.0, abs=0.1)
    assert by_iter[100].figures["color_shift"] > COLOR_SHIFT_MAX
    assert by_iter[200].figures["checkerboard"] > 10 * CHECKERBOARD_MAX
    assert by_iter[300].figures["color_shift"] == pytest.approx(2.0, abs=0.1)
    assert by_iter[300].figures["color_shift"] < COLOR_SHIFT_MAX
    assert [c.iter for c in result.ranked] == [300, 100, 200] and [c.rank for c in result.ranked] == [1, 2, 3]
    assert result.best.iter == 300 and result.best.flags == []
    assert by_iter[100].flags[0] == "colour shift 8.01 > 3.0 grey levels"
    assert by_iter[100].flags[1].startswith("chroma shift 3.")
    assert by_iter[200].flags == [f"checkerboard {by_iter[200].figures['checkerboard']:.2%} > 1% "
                                  f"(bicubic {result.references[1].figures['checkerboard']:.2%})"]
    assert set(by_iter[300].figures) == {"color_shift", "chroma_shift", "checkerboard", "sharpness", "niqe"}
    assert math.isnan(by_iter[300].figures["niqe"])  # 48 px validation images: too small for NIQE
    # the figures and marks reach the job's result (the cockpit) and the cache
    data = result.to_dict()
    assert data["best"]["iter"] == 300 and data["candidates"][1]["flags"] == by_iter[100].flags
    assert data["candidates"][0]["figures"]["niqe"] is None
    again = rank_run(run_copy, original=None)
    assert again.evaluated == 0 and [c.flags for c in again.ranked] == [c.flags for c in result.ranked]


def test_cli_rank_shows_the_figures_and_ranks_the_marked_after(run_copy: Path, tmp_path: Path) -> None:
    from tests.conftest import srcockpit

    _crafted_checkpoints(run_copy)
    out = srcockpit("rank", str(run_copy), "--original", "none", cwd=tmp_path).stdout
    for heading in ("NIQE", "colour", "chroma", "checker", "sharp"):
        assert heading in out
    assert "best: net_g_300.pth [params]" in out and "2 of 3 ranked after the clean ones" in out
    rows = [line for line in out.splitlines() if "net_g_" in line and "[params]" in line and "best:" not in line]
    assert [row.split("net_g_")[1].split(".pth")[0] for row in rows] == ["300", "100", "200"]
    assert "! colour shift 8.01" in rows[1] and "! checkerboard" in rows[2] and "!" not in rows[0]
    data = json.loads(srcockpit("rank", str(run_copy), "--original", "none", "--json", cwd=tmp_path).stdout)
    assert [c["iter"] for c in data["candidates"]] == [300, 100, 200] and data["best"]["flags"] == []
    assert data["candidates"][2]["flags"][0].startswith("checkerboard ")
    assert data["references"][1]["label"] == "bicubic" and data["references"][1]["figures"]["checkerboard"] < 0.1


def test_best_over_stages_passes_over_a_marked_checkpoint(run_copy: Path) -> None:
    """The demo's pick over both stages (engine.stages.best_checkpoint) follows the ranking: the blue-shifted
    checkpoint of one run has the higher PSNR, the clean one of the other run is chosen."""
    from engine.stages import best_checkpoint

    _crafted_checkpoints(run_copy)
    other = run_copy.parent / "tiny_other"
    shutil.copytree(run_copy, other)
    for iteration in (200, 300):
        (run_copy / "models" / f"net_g_{iteration}.pth").unlink()
    (other / "models" / "net_g_100.pth").unlink()
    (other / "models" / "net_g_200.pth").unlink()
    result, best = best_checkpoint(run_copy, other)
    assert best.iter == 300 and best.flags == [] and result.run_dir == other
    blue = best_checkpoint(run_copy)[1]  # alone, it is its run's best all the same (from the cache)
    assert blue.iter == 100 and blue.psnr > best.psnr and blue.flags
