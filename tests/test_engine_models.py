"""The cockpit models (engine/models.py) change Real-ESRGAN by subclassing only, never by rebinding its modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.compat import load_basicsr
from engine.options import MODEL_SUBSTITUTES, load_options
from tests.conftest import TINY_OPTIONS

load_basicsr()
import basicsr.utils.img_process_util as img_process_util  # noqa: E402
import realesrgan.models.realesrgan_model as realesrgan_model  # noqa: E402
import realesrgan.models.realesrnet_model as realesrnet_model  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils.misc import set_random_seed  # noqa: E402

import engine.models  # noqa: E402,F401  (registers the cockpit models)

# Real-ESRGAN's finetune_realesrgan_x4plus.yml degradation settings
DEGRADATIONS = {"resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5], "gaussian_noise_prob": 0.5,
                "noise_range": [1, 30], "poisson_scale_range": [0.05, 3], "gray_noise_prob": 0.4,
                "jpeg_range": [30, 95], "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3],
                "resize_range2": [0.3, 1.2], "gaussian_noise_prob2": 0.5, "noise_range2": [1, 25],
                "poisson_scale_range2": [0.05, 2.5], "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95]}


def test_realesrgan_modules_keep_basicsr_filter2d():
    assert realesrgan_model.filter2D is img_process_util.filter2D
    assert realesrnet_model.filter2D is img_process_util.filter2D


@pytest.mark.parametrize("model_type", ["RealESRGANModel", "RealESRNetModel"])
def test_second_order_degradations_run_on_cpu(tmp_path: Path, tiny_data: Path, model_type: str):
    """Each step of the two-stage degradation on a CPU: DiffJPEG's output is channels-last strided, and
    filter2D's .view() after it used to fail ("view size is not compatible with input tensor's size and stride")."""
    (tmp_path / "datasets").symlink_to(tiny_data / "datasets")
    opt = load_options(TINY_OPTIONS, root=tmp_path, overrides=["high_order_degradation=true"])
    opt.update(DEGRADATIONS, gt_size=32, gt_usm=True, model_type=MODEL_SUBSTITUTES[model_type])
    set_random_seed(0)
    model = build_model(opt)
    kernel = torch.zeros(2, 21, 21)
    kernel[:, 10, 10] = 1
    for _ in range(6):  # both orders of the final [resize + sinc] and JPEG steps
        model.feed_data({"gt": torch.rand(2, 3, 128, 128), "kernel1": kernel, "kernel2": kernel,
                         "sinc_kernel": kernel})
        assert tuple(model.lq.shape) == (2, 3, 16, 16) and tuple(model.gt.shape) == (2, 3, 32, 32)
