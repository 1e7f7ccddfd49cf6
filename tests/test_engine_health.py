"""The health detectors watch every loss of any model: a real RealESRNet run (it logs l_pix) that diverges, and
crafted series for each loss class of engine.losses (pixel, perceptual, style, GAN, discriminator real/fake)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from engine.events import EventWriter
from engine.health import HealthMonitor
from engine.protocol import AlertEvent, IterEvent, RunPaths, load_events
from tests.conftest import TINY_OPTIONS, srcockpit


def realesrnet_options(folder: Path) -> Path:
    """tiny_cpu.yml as Real-ESRGAN's L1 warm-up (RealESRNetModel: l_pix, no discriminator), a very small
    network, and a learning rate multiplied by 10 at iterations 101, 111, 121 and 131 (1e-4 -> 1: at 0.1 this
    network still settles, at 1 its l_pix rises by orders of magnitude)."""
    opt = yaml.safe_load(TINY_OPTIONS.read_text())
    opt.update(name="tiny_esrnet_diverging", model_type="RealESRNetModel", gt_size=64, queue_size=2, l1_gt_usm=False)
    for key in ("network_d", "gan_opt", "net_d_iters", "net_d_init_iters"):
        opt.pop(key, None)
        opt["train"].pop(key, None)
    opt["train"].pop("optim_d")
    opt["path"] = {k: v for k, v in opt["path"].items() if not k.endswith("_d")}
    opt["network_g"].update(num_feat=4, num_conv=1)
    opt["datasets"]["train"].update(gt_size=64, batch_size_per_gpu=1)
    opt["train"].update(total_iter=200, scheduler={"type": "MultiStepLR", "milestones": [101, 111, 121, 131],
                                                   "gamma": 10})
    opt["val"]["val_freq"] = 1000
    opt["logger"].update(print_freq=10, save_checkpoint_freq=1000)
    path = folder / "tiny_esrnet_diverging.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


@pytest.mark.slow
def test_a_diverging_realesrnet_run_raises_the_diverging_alert(run_root: Path):
    srcockpit("--no-ui", "train", str(realesrnet_options(run_root)), cwd=run_root, timeout=1200)
    events = load_events(RunPaths(run_root / "experiments" / "tiny_esrnet_diverging").events).events
    iters = [e for e in events if isinstance(e, IterEvent)]
    assert iters and set(iters[-1].losses) == {"l_pix"}  # RealESRNet's own key, not l_g_pix
    alerts = {e.code: e for e in events if isinstance(e, AlertEvent)}
    assert "diverging:l_pix" in alerts, [e.message for e in alerts.values()]
    assert alerts["diverging:l_pix"].message.startswith("l_pix rose")


def _monitor(tmp_path: Path) -> tuple[HealthMonitor, EventWriter]:
    writer = EventWriter(tmp_path / "cockpit" / "events.jsonl", source="engine")
    return HealthMonitor({"num_gpu": 0, "path": {"experiments_root": str(tmp_path)}}, writer, None), writer


@pytest.mark.parametrize("name", ["l_pix", "l_g_pix", "l_g_l1"])
def test_the_pixel_loss_of_any_model_is_watched_for_divergence(tmp_path: Path, name: str):
    """A loss that settles for 100 iterations, then rises 3x over the next 100: the window sees it."""
    health, writer = _monitor(tmp_path)
    series = [0.1 + 0.01 * math.sin(k) for k in range(100)] + [0.1 + 0.006 * k for k in range(100)]
    for k, value in enumerate(series, start=1):
        assert health.after_iter(k, {name: value, "l_d_real": 0.5}, 1.0) is None
    writer.close()
    alerts = [e for e in load_events(writer.path).events if isinstance(e, AlertEvent)]
    assert [a.code for a in alerts] == [f"diverging:{name}"] and alerts[0].message.startswith(f"{name} rose")


def test_an_oscillating_l_pix_is_seen(tmp_path: Path):
    """Spikes 40x the loss's usual size every tenth iteration: no net rise, but a spread wider than the mean."""
    health, writer = _monitor(tmp_path)
    for k in range(1, 201):
        health.after_iter(k, {"l_pix": 0.2 if k <= 100 else (2.0 if k % 10 == 0 else 0.05)}, 1.0)
    writer.close()
    assert [e.code for e in load_events(writer.path).events if isinstance(e, AlertEvent)] == ["oscillating:l_pix"]


def test_a_registered_detector_runs_after_every_iteration(tmp_path: Path):
    """A throwaway detector (one function, one register_detector call) raises its alert once per episode."""
    from engine.health import register_detector, unregister_detector
    from engine.protocol import LossKind, classify_loss

    def pixel_above_one(monitor: HealthMonitor, current_iter: int) -> None:
        for name, values in monitor.history.items():
            if classify_loss(name) is LossKind.PIXEL and values[-1] > 1.0:
                monitor.alert("pixel_above_one", "warning", f"{name} is {values[-1]:g} at iteration {current_iter}",
                              "lower the learning rate")

    register_detector(pixel_above_one)
    try:
        health, writer = _monitor(tmp_path)
        for k in range(1, 21):
            health.after_iter(k, {"l_pix": 2.0 if k > 10 else 0.5}, 1.0)
        writer.close()
    finally:
        unregister_detector(pixel_above_one)
    alerts = [e for e in load_events(writer.path).events if isinstance(e, AlertEvent)]
    assert [(a.code, a.message) for a in alerts] == [("pixel_above_one", "l_pix is 2 at iteration 11")]


# One loss of each class, at the size a Real-ESRGAN run logs it (loss weights included).
CLASSES = {"l_g_percep": 1.2, "l_style": 0.3, "l_g_gan": 0.07, "l_d_real": 0.45, "l_d_fake": 0.45, "l_g_pix": 0.05}


def alert_codes(tmp_path: Path, series: dict[str, list[float]]) -> list[str]:
    """The alerts a monitor raises when fed these loss series, one value of each per iteration."""
    health, writer = _monitor(tmp_path)
    for k, values in enumerate(zip(*series.values(), strict=True), start=1):
        assert health.after_iter(k, dict(zip(series, values, strict=True)), 1.0) is None
    writer.close()
    return [e.code for e in load_events(writer.path).events if isinstance(e, AlertEvent)]


def noisy(size: float, count: int = 200, seed: int = 0, trend: float = 0.0) -> list[float]:
    """A loss of this size with +-20 % noise (and a relative trend over the series): what a healthy run logs."""
    import random

    rng = random.Random(seed)
    return [size * (1 + trend * k / count) * (1 + 0.2 * (2 * rng.random() - 1)) for k in range(count)]


def test_every_loss_class_has_detectors():
    from engine.health import LOSS_DETECTORS
    from engine.losses import LossKind

    assert set(LOSS_DETECTORS) == set(LossKind) - {LossKind.D_OUTPUT}  # the discriminator's output is no loss


def test_clean_series_of_every_class_raise_nothing(tmp_path: Path):
    """Each loss noisy, the generator's falling by a third, the discriminator's drifting up by 30 %: no alert."""
    series = {name: noisy(size, seed=n, trend=0.3 if name.startswith("l_d_") else -0.33)
              for n, (name, size) in enumerate(CLASSES.items())}
    series["out_d_real"] = [0.0] * 200  # not a loss: never watched, however flat
    assert alert_codes(tmp_path, series) == []


@pytest.mark.parametrize("name", [n for n in CLASSES if n != "l_g_pix"])
def test_a_rising_loss_of_each_class_is_diverging(tmp_path: Path, name: str):
    """Steady for 100 iterations, then 4x higher: past each class's threshold (1.5x, 2x for the GAN game)."""
    size = CLASSES[name]
    codes = alert_codes(tmp_path, {name: noisy(size, 100) + noisy(4 * size, 100, seed=1)})
    assert codes == [f"diverging:{name}"]


@pytest.mark.parametrize("name", [n for n in CLASSES if n != "l_g_pix"])
def test_an_oscillating_loss_of_each_class_is_seen(tmp_path: Path, name: str):
    """Settled, then a spike 7x its size every tenth iteration and a third of it otherwise: the same mean,
    a spread wider than the mean."""
    size = CLASSES[name]
    second = [7 * size if k % 10 == 0 else size / 3 for k in range(100)]
    assert alert_codes(tmp_path, {name: noisy(size, 100) + second}) == [f"oscillating:{name}"]


def test_a_rising_gan_loss_below_the_game_threshold_is_not_diverging(tmp_path: Path):
    """1.8x: a pixel loss would be diverging, a GAN or discriminator loss is still in its game."""
    series = {name: noisy(CLASSES[name], 100) + noisy(1.8 * CLASSES[name], 100, seed=1)
              for name in ("l_g_gan", "l_d_real", "l_g_pix")}
    assert alert_codes(tmp_path, series) == ["diverging:l_g_pix"]


def test_a_discriminator_loss_at_zero_is_a_collapse(tmp_path: Path):
    series = {"l_d_fake": noisy(0.45, 100) + [1e-5] * 60, "l_d_real": noisy(0.45, 160, seed=1)}
    assert alert_codes(tmp_path, series) == ["d_collapse"]


def test_a_detector_is_added_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """LOSS_DETECTORS is the only table the monitor reads: an entry added there is watched on every model."""
    from engine.health import LOSS_DETECTORS, Finding
    from engine.losses import LossKind

    def above_one(name: str, values) -> Finding | None:
        return Finding(f"above_one:{name}", f"{name} above 1", "") if values[-1] > 1 else None

    monkeypatch.setitem(LOSS_DETECTORS, LossKind.PERCEPTUAL, (*LOSS_DETECTORS[LossKind.PERCEPTUAL], above_one))
    assert alert_codes(tmp_path, {"l_percep": [0.5, 0.8, 1.2, 0.9]}) == ["above_one:l_percep"]
