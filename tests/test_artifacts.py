"""Artifact detectors (issue 20): crafted SR outputs through basicsr's metric call and the health monitor,
and a real tiny CPU training whose val events carry the figures, their bicubic baselines and NIQE."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.evaluate import PairedImages, baseline_figures, bicubic_upscale, load_pairs
from engine.events import EventWriter
from engine.health import HealthMonitor
from engine.mitigations import suggest
from engine.protocol import RunPaths, read_events
from tests.conftest import srcockpit

REPO = Path(__file__).resolve().parent.parent
DEMO_STAGE1 = REPO / "options" / "demo_stage1_l1.yml"
TINY_OPTIONS = REPO / "options" / "tiny_cpu.yml"
ARTIFACT_CODES = ("color_shift", "chroma_shift", "checkerboard", "over_smoothing")


def shipped_metrics() -> dict[str, dict]:
    """The demo's val.metrics, as its stage-1 options file names them."""
    return yaml.safe_load(DEMO_STAGE1.read_text())["val"]["metrics"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> PairedImages:
    """Two 216 px crops of real photos with their MATLAB-bicubic x2 LR images (big enough for NIQE)."""
    import skimage.data as data

    from engine.data.valset import write_pairs

    root = tmp_path_factory.mktemp("artifact-photos")
    crops = [("astronaut", data.astronaut()[40:256, 120:336]), ("coffee", data.coffee()[100:316, 180:396])]
    written = write_pairs(iter(crops), root, scale=2, count=len(crops))
    return load_pairs(written.gt_dir, written.lq_dir)


def figures_of(outputs: list[np.ndarray], pairs: PairedImages) -> dict[str, float]:
    """The val.metrics of uint8 RGB outputs, computed and averaged as basicsr's validation does."""
    from basicsr.metrics import calculate_metric

    metrics = shipped_metrics()
    sums = dict.fromkeys(metrics, 0.0)
    for sr, gt in zip(outputs, pairs.gt, strict=True):
        data = {"img": np.ascontiguousarray(sr[..., ::-1]), "img2": np.ascontiguousarray(gt[..., ::-1])}
        for name, metric in metrics.items():
            sums[name] += float(calculate_metric(data, metric))
    return {name: total / len(outputs) for name, total in sums.items()}


def alerts_after(tmp_path: Path, pairs: PairedImages, *validations: list[np.ndarray]) -> list[dict]:
    """Feed one validation per list of outputs to a HealthMonitor; the alerts it raised."""
    opt = {"scale": 2, "path": {"experiments_root": str(tmp_path)}, "val": {"metrics": shipped_metrics()}}
    events = EventWriter(tmp_path / "events.jsonl", "test")
    health = HealthMonitor(opt, events, None)
    bicubic = baseline_figures(pairs, shipped_metrics(), which=("bicubic",))["bicubic"]
    for number, outputs in enumerate(validations, start=1):
        health.after_val(number, "photos", figures_of(outputs, pairs), bicubic)
    events.close()
    return [e for e in read_events(tmp_path / "events.jsonl") if e["type"] == "alert"]


def codes(alerts: list[dict]) -> set[str]:
    return {alert["code"].split(":")[0] for alert in alerts}


def bicubic_outputs(pairs: PairedImages) -> list[np.ndarray]:
    return [bicubic_upscale(lq, pairs.scale) for lq in pairs.lq]


def shifted(images: list[np.ndarray], offset: tuple[float, float, float]) -> list[np.ndarray]:
    return [np.clip(image + np.array(offset), 0, 255).round().astype(np.uint8) for image in images]


def blurred(images: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    from scipy.ndimage import gaussian_filter

    return [np.clip(gaussian_filter(image.astype(float), (sigma, sigma, 0)), 0, 255).round().astype(np.uint8)
            for image in images]


def test_clean_outputs_raise_no_artifact_alert(tmp_path: Path, photos: PairedImages):
    assert not alerts_after(tmp_path / "gt", photos, list(photos.gt))
    assert not alerts_after(tmp_path / "bicubic", photos, bicubic_outputs(photos), bicubic_outputs(photos))


def test_ground_truth_scores_as_perfect(photos: PairedImages):
    figures = figures_of(list(photos.gt), photos)
    assert figures["color_shift"] == figures["chroma_shift"] == figures["checkerboard"] == 0.0
    assert figures["sharpness"] == pytest.approx(1.0)
    assert 0 < figures["niqe"] < 20  # a real NIQE, not the nan of an image too small for it


def test_constant_colour_offset_raises_both_colour_alerts(tmp_path: Path, photos: PairedImages):
    outputs = shifted(bicubic_outputs(photos), (0.0, 0.0, 4.0))  # RGB: blue +4 grey levels
    figures = figures_of(outputs, photos)
    assert figures["color_shift"] == pytest.approx(4.0, abs=0.1)
    alerts = alerts_after(tmp_path, photos, outputs)
    assert codes(alerts) == {"color_shift", "chroma_shift"}
    message = next(a for a in alerts if a["code"] == "color_shift:photos")
    assert "photos" in message["message"] and "4.0" in message["message"] and "GAN loss weight" in message["hint"]


def test_colour_shift_growing_over_three_validations_alerts(tmp_path: Path, photos: PairedImages):
    base = bicubic_outputs(photos)
    alerts = alerts_after(tmp_path, photos, *(shifted(base, (red, 0.0, 0.0)) for red in (0.0, 1.0, 2.0)))
    assert codes(alerts) == {"color_shift", "chroma_shift"}  # both below their limits: the growth alerts
    assert all("grew 3 validations running" in alert["message"] for alert in alerts)


def test_two_pixel_checkerboard_raises_the_checkerboard_alert(tmp_path: Path, photos: PairedImages):
    outputs = []
    for image in bicubic_outputs(photos):
        y, x = np.indices(image.shape[:2])
        outputs.append(np.clip(image + 3.0 * (-1.0) ** (x + y)[..., None], 0, 255).round().astype(np.uint8))
    alerts = alerts_after(tmp_path, photos, outputs)
    assert codes(alerts) == {"checkerboard"}
    assert "2-pixel period" in alerts[0]["message"] and "bicubic" in alerts[0]["message"]


def test_output_growing_blurrier_while_psnr_rises_is_over_smoothing(tmp_path: Path, photos: PairedImages):
    rng = np.random.default_rng(0)
    noisy = []  # +-30 grey levels, less where that would clip: noise that shifts no colour
    for gt in photos.gt:
        room = np.minimum(np.minimum(gt, 255 - gt), 30).astype(float)
        noisy.append((gt + room * rng.choice([-1.0, 1.0], gt.shape)).astype(np.uint8))
    smooth = blurred(list(photos.gt), 1.5)
    before, after = figures_of(noisy, photos), figures_of(smooth, photos)
    assert after["psnr"] > before["psnr"] and after["sharpness"] < 0.6 < before["sharpness"]  # the crafted story
    alerts = alerts_after(tmp_path, photos, noisy, smooth)
    assert codes(alerts) == {"over_smoothing"}
    assert "over-smoothing" in alerts[0]["message"] and "perceptual loss weight" in alerts[0]["hint"]
    # the cockpit's mitigation key finds the alert's answer by its code
    offer = suggest(alerts[0]["code"], alerts[0]["message"], {"lr": 1e-4, "percep_weight": 1.0})
    assert offer is not None and str(offer.setting) == "percep_weight=2"


def test_tiny_training_val_events_carry_the_figures_niqe_and_bicubic_baselines(run_root: Path,
                                                                             photos: PairedImages):
    options = yaml.safe_load(TINY_OPTIONS.read_text())
    options["val"]["metrics"] = shipped_metrics()
    options["datasets"]["val"].update(dataroot_gt=str(photos.gt_dir), dataroot_lq=str(photos.lq_dir))
    copy = run_root / "tiny_artifacts.yml"
    copy.write_text(yaml.safe_dump(options))
    srcockpit("--no-ui", "train", str(copy), "--set", "train.total_iter=2", "--set", "val.val_freq=2",
              "--set", "logger.save_checkpoint_freq=2", cwd=run_root)
    events = list(read_events(RunPaths(run_root / "experiments" / "tiny_cpu").events))
    vals = [e for e in events if e["type"] == "val"]
    assert vals, "no validation ran"
    names = set(shipped_metrics())
    assert set(vals[-1]["metrics"]) == names
    assert all(math.isfinite(float(vals[-1]["metrics"][name])) for name in names)  # NIQE included: no nan
    bicubic = vals[-1]["baselines"]["bicubic"]
    assert names <= set(bicubic) and bicubic["checkerboard"] < 0.01 and bicubic["sharpness"] < 0.8


def test_niqe_of_an_image_too_small_for_it_is_nan_not_a_crash(photos: PairedImages):
    from basicsr.metrics import calculate_metric

    crop = np.ascontiguousarray(photos.gt[0][:96, :96, ::-1])  # the fast demo's validation crops are 96 px
    assert np.isnan(calculate_metric({"img": crop, "img2": crop}, shipped_metrics()["niqe"]))
