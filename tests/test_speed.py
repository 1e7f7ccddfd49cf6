"""The opt-in speed-ups (engine/speed.py) change no result beyond the stated tolerance, and are checked."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.compat import load_basicsr
from engine.options import MODEL_SUBSTITUTES, load_options
from engine.protocol import UserError
from engine.speed import SeparableUSMSharp, apply_speed_options, random_crop_batch, speed_options, usable_threads
from tests.conftest import TINY_OPTIONS

load_basicsr()
from basicsr.data import build_dataset  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils import USMSharp  # noqa: E402
from basicsr.utils.img_process_util import filter2D  # noqa: E402
from basicsr.utils.misc import set_random_seed  # noqa: E402

import engine.models  # noqa: E402,F401  (registers the cockpit models)

# Stated tolerances (absolute, on every loss of every iteration; the losses are 0.01-1).
CHANNELS_LAST_TOL = 1e-5
COMPILE_TOL = 1e-4
BF16_TOL = 5e-3  # bf16 keeps 8 mantissa bits (~0.4 % per op); measured 2.6e-4 over two GAN steps here
USM_TOL = 1e-3  # separable vs dense USM on real photos: measured 1.3e-6 here; a pixel whose |I - blur| sits
# on the sharpening threshold can flip its mask bit, which moves its neighbours by up to ~4e-4
LOSSES = ("l_g_pix", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake")


def photos(size: int = 192, names: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket")) -> torch.Tensor:
    """scikit-image photos, centre crops, as a Bx3xHxW batch in [0, 1]."""
    from skimage import data

    crops = []
    for image in (getattr(data, name)() for name in names):
        h, w = image.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(image[top:top + size, left:left + size, :3])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous().float() / 255


# ---- options ------------------------------------------------------------------------------------------

def test_speed_options_are_checked():
    assert speed_options({}).active() == []
    spec = speed_options({"gt_size": 64, "scale": 2, "srcockpit": {"usm": "separable", "crop_pad_size": 128,
                                                                    "channels_last": True, "autocast": "bf16"}})
    assert spec.active() == ["channels_last", "autocast=bf16", "usm=separable", "crop_pad_size=128"]
    bad = [({"srcockpit": {"usm": "fast"}}, "srcockpit.usm"),
           ({"srcockpit": {"autocast": "fp8"}}, "srcockpit.autocast"),
           ({"srcockpit": {"compile": "yes"}}, "srcockpit.compile"),
           ({"srcockpit": {"chanels_last": True}}, "srcockpit.chanels_last"),
           ({"gt_size": 256, "srcockpit": {"crop_pad_size": 200}}, "smaller than gt_size"),
           ({"scale": 4, "srcockpit": {"crop_pad_size": 258}}, "multiple of scale"),
           ({"srcockpit": {"crop_pad_size": 480}}, "larger than RealESRGANDataset"),
           ({"srcockpit": ["usm"]}, "must be a section")]
    for opt, message in bad:
        with pytest.raises(UserError, match=message):
            speed_options(opt)


def test_options_file_accepts_the_srcockpit_section_and_refuses_a_typo(tmp_path: Path, tiny_data: Path):
    (tmp_path / "datasets").symlink_to(tiny_data / "datasets")
    good = load_options(TINY_OPTIONS, root=tmp_path, overrides=["srcockpit={usm: separable, channels_last: true}"])
    assert speed_options(good).active() == ["channels_last", "usm=separable"]
    with pytest.raises(UserError, match=r"srcockpit\.chanels_last"):
        load_options(TINY_OPTIONS, root=tmp_path, overrides=["srcockpit={chanels_last: true}"])


# ---- separable USM ------------------------------------------------------------------------------------

def test_separable_usm_matches_dense_on_real_photos():
    images = photos()
    dense, separable = USMSharp(), SeparableUSMSharp()
    blur_gap = (filter2D(images, dense.kernel) - separable.blur(images)).abs().max().item()
    gap = (dense(images) - separable(images)).abs().max().item()
    assert blur_gap < 1e-5, blur_gap
    assert gap < USM_TOL, gap


# ---- crop_pad_size ------------------------------------------------------------------------------------

def test_crop_windows_are_real_windows_of_each_image():
    batch = torch.rand(3, 3, 40, 40)
    crops = random_crop_batch(batch, 24)
    assert crops.shape == (3, 3, 24, 24)
    for image, crop in zip(batch, crops, strict=True):
        windows = image.unfold(1, 24, 1).unfold(2, 24, 1)  # 3 x 17 x 17 x 24 x 24
        assert any(torch.equal(windows[:, i, j], crop) for i in range(17) for j in range(17))
    assert random_crop_batch(batch, 40) is batch


def test_degrading_a_window_equals_the_window_of_the_degraded_image_inside():
    """Blur, the USM and noise are local: away from the border (kernel radius) a crop_pad_size window
    degrades exactly as the same window of RealESRGANDataset's 400 px one."""
    image = photos(400, ("astronaut",))
    kernel = torch.from_numpy(np.outer(*[np.hanning(21)] * 2) / np.outer(*[np.hanning(21)] * 2).sum()).float()[None]
    window = image[..., 72:72 + 160, 120:120 + 160]
    whole, part = filter2D(image, kernel), filter2D(window, kernel)
    inner = (slice(None), slice(None), slice(10, -10), slice(10, -10))
    assert (whole[..., 72:232, 120:280][inner] - part[inner]).abs().max().item() < 1e-6


def _model_from(opt: dict) -> object:
    return build_model(dict(opt, model_type=MODEL_SUBSTITUTES.get(opt["model_type"], opt["model_type"])))


def test_crop_pad_size_degrades_smaller_windows_and_keeps_the_pairs_shape(tmp_path: Path, tiny_data: Path):
    (tmp_path / "datasets").symlink_to(tiny_data / "datasets")
    opt = load_options(TINY_OPTIONS, root=tmp_path, overrides=["high_order_degradation=true"])
    opt.update(gt_size=32, srcockpit={"crop_pad_size": 64, "usm": "separable"})
    for key, value in {"resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5], "gaussian_noise_prob": 0.5,
                       "noise_range": [1, 30], "poisson_scale_range": [0.05, 3], "gray_noise_prob": 0.4,
                       "jpeg_range": [30, 95], "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3],
                       "resize_range2": [0.3, 1.2], "gaussian_noise_prob2": 0.5, "noise_range2": [1, 25],
                       "poisson_scale_range2": [0.05, 2.5], "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95]}.items():
        opt[key] = value
    set_random_seed(0)
    model = _model_from(opt)
    seen = []
    stock_feed = model.feed_data
    model.feed_data = lambda data: (seen.append(tuple(data["gt"].shape)), stock_feed(data))
    apply_speed_options(model, opt)
    kernel = torch.zeros(2, 21, 21)
    kernel[:, 10, 10] = 1
    model.feed_data({"gt": torch.rand(2, 3, 400, 400), "kernel1": kernel, "kernel2": kernel,
                     "sinc_kernel": kernel})
    assert seen == [(2, 3, 64, 64)]
    assert tuple(model.gt.shape) == (2, 3, 32, 32) and tuple(model.lq.shape) == (2, 3, 16, 16)


# ---- channels_last, autocast, compile: losses of the real GAN step ---------------------------------

def _losses(opt: dict, batches: list[dict], speed: dict | None) -> list[dict[str, float]]:
    opt = copy.deepcopy(opt)
    if speed:
        opt["srcockpit"] = speed
    set_random_seed(0)
    model = apply_speed_options(_model_from(opt), opt)
    found = []
    for step, batch in enumerate(batches, start=1):
        model.feed_data(batch)
        model.optimize_parameters(step)
        found.append(model.get_current_log())
    return found


@pytest.fixture(scope="module")
def gan_case(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> tuple[dict, list[dict]]:
    root = tmp_path_factory.mktemp("speed")
    (root / "datasets").symlink_to(tiny_data / "datasets")
    opt = load_options(TINY_OPTIONS, root=root)
    opt["network_g"]["num_conv"] = 8  # the plan's layer types, fewer of them: seconds, not a minute
    train = opt["datasets"]["train"]
    for key in ("dataroot_gt", "dataroot_lq"):
        train[key] = str(root / train[key])
    set_random_seed(0)
    dataset = build_dataset(opt["datasets"]["train"])
    batches = []
    for step in range(2):
        items = [dataset[(2 * step + k) % len(dataset)] for k in range(2)]
        batches.append({"lq": torch.stack([i["lq"] for i in items]), "gt": torch.stack([i["gt"] for i in items])})
    return opt, batches


def _worst(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    assert len(a) == len(b) and all(set(LOSSES) <= set(x) for x in a)
    return max(abs(x[name] - y[name]) for x, y in zip(a, b, strict=True) for name in LOSSES)


def test_channels_last_keeps_the_losses(gan_case):
    opt, batches = gan_case
    worst = _worst(_losses(opt, batches, None), _losses(opt, batches, {"channels_last": True}))
    assert worst < CHANNELS_LAST_TOL, worst


def test_bf16_autocast_keeps_the_losses_within_bf16_precision(gan_case):
    opt, batches = gan_case
    plain, bf16 = _losses(opt, batches, None), _losses(opt, batches, {"autocast": "bf16"})
    worst = _worst(plain, bf16)
    assert 0 < worst < BF16_TOL, worst  # > 0: the networks did run in bf16


def test_fp16_autocast_is_refused_on_cpu(gan_case):
    opt, _ = gan_case
    opt = dict(opt, srcockpit={"autocast": "fp16"})
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        apply_speed_options(_model_from(opt), opt)


def compile_problem() -> str | None:
    if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        return "no C++ compiler: torch.compile's CPU backend (inductor) cannot build kernels here"
    try:
        torch.compile(lambda x: x * 2)(torch.ones(2))
    except Exception as error:  # any backend failure means torch.compile cannot work on this machine
        return f"torch.compile does not work here: {error.__class__.__name__}: {error}"
    return None


@pytest.mark.slow
def test_compile_keeps_the_losses(gan_case):
    problem = compile_problem()
    if problem:
        pytest.skip(problem)
    opt, batches = gan_case
    opt = copy.deepcopy(opt)  # small networks: the compile time (not the check) grows with their size
    opt["network_g"].update(num_feat=8, num_conv=2)
    opt["network_d"].update(num_feat=8)
    worst = _worst(_losses(opt, batches[:2], None), _losses(opt, batches[:2], {"compile": True}))
    assert worst < COMPILE_TOL, worst


def test_the_engine_applies_the_section(run_root: Path):
    """engine/loop.py builds the model through apply_speed_options: a run with the section trains, and an
    impossible setting stops the run with its message instead of being ignored."""
    from engine.launch import run_engine

    assert run_engine(TINY_OPTIONS, root=run_root, overrides=[
        "train.total_iter=2", "val.val_freq=1000", "srcockpit={usm: separable, channels_last: true}"]) == "finished"
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        run_engine(TINY_OPTIONS, root=run_root, overrides=["train.total_iter=2", "srcockpit={autocast: fp16}"])


def test_threads_follow_the_cores_this_process_may_use():
    """One core in the affinity mask: one thread, whatever the machine has (a container's or taskset's limit)."""
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from engine.speed import usable_threads; print(usable_threads(busy=0.0, environ={})[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    assert out.stdout.strip() == "1"


def test_threads_leave_busy_cores_to_other_processes():
    cores = len(os.sched_getaffinity(0))
    assert usable_threads(busy=0.0, environ={})[0] == cores
    assert usable_threads(busy=float(os.cpu_count()), environ={})[0] == 1  # every core taken: still one thread
    assert usable_threads(busy=0.0, environ={"LOCAL_WORLD_SIZE": "2"})[0] == max(1, cores // 2)
    threads, why = usable_threads(busy=0.0, environ={"OMP_NUM_THREADS": "3"})
    assert threads == 3 and "OMP_NUM_THREADS" in why
