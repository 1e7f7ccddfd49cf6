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


@pytest.mark.parametrize(("model_type", "flags", "sharpened"), [
    ("RealESRNetModel", {}, False),  # SRModel's optimize_parameters trains on gt, never on gt_usm
    ("RealESRGANModel", {"l1_gt_usm": False, "percep_gt_usm": False, "gan_gt_usm": False}, False),
    ("RealESRGANModel", {"l1_gt_usm": False, "percep_gt_usm": False, "gan_gt_usm": True}, True),
])
def test_paired_data_is_sharpened_only_where_a_loss_reads_it(tmp_path: Path, tiny_data: Path, model_type: str,
                                                             flags: dict[str, bool], sharpened: bool):
    """Real-ESRGAN blurs every paired GT batch and validation image with a dense 51x51 Gaussian into
    gt_usm; the cockpit models skip it where nothing reads gt_usm, and otherwise make the same one."""
    (tmp_path / "datasets").symlink_to(tiny_data / "datasets")
    opt = load_options(TINY_OPTIONS, root=tmp_path, overrides=["high_order_degradation=false"])
    opt.update(flags, model_type=MODEL_SUBSTITUTES[model_type])
    model = build_model(opt)
    gt, lq = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 16, 16)
    model.feed_data({"gt": gt, "lq": lq})
    assert torch.equal(model.gt, gt) and torch.equal(model.lq, lq)
    assert hasattr(model, "gt_usm") is sharpened
    if sharpened:
        assert torch.equal(model.gt_usm, model.usm_sharpener(gt))
        del model.gt_usm
    model.is_train = False  # validation reads gt only
    model.feed_data({"gt": gt, "lq": lq})
    assert not hasattr(model, "gt_usm")


@pytest.mark.parametrize("model_type", ["RealESRGANModel", "RealESRNetModel"])
def test_the_ema_update_is_basicsrs_in_one_call(tmp_path: Path, tiny_data: Path, model_type: str):
    """basicsr's decay * EMA + (1 - decay) * net_g for every parameter, matched by name (the EMA network is
    channels-last, net_g is not)."""
    (tmp_path / "datasets").symlink_to(tiny_data / "datasets")
    opt = load_options(TINY_OPTIONS, root=tmp_path, overrides=["train.ema_decay=0.9"])
    opt["model_type"] = MODEL_SUBSTITUTES[model_type]
    model = build_model(opt)
    with torch.no_grad():
        for param in model.net_g.parameters():
            param.add_(torch.randn_like(param))
    current = dict(model.net_g.named_parameters())
    expected = {name: 0.9 * param + 0.1 * current[name] for name, param in model.net_g_ema.named_parameters()}
    model.model_ema(0.9)
    ours = dict(model.net_g_ema.named_parameters())
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(ours[name], value, rtol=0, atol=1e-6)


# ---- the perceptual loss's VGG weights come from --vgg-weights, not from basicsr's global ----------

def vgg19_start(path: Path) -> dict[str, torch.Tensor]:
    """The first two convolutions of a random torchvision VGG19, saved as its state dict's features.N keys."""
    import torchvision

    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in torchvision.models.vgg19(weights=None).features[:4].state_dict().items()}
    torch.save(state, path)
    return state


def test_vgg_weights_file_builds_the_perceptual_loss_without_basicsr_global(tmp_path: Path):
    import basicsr.archs.vgg_arch as vgg_arch
    from basicsr.losses import build_loss

    from engine.launch import vgg_weights_problem

    state = vgg19_start(tmp_path / "vgg19.pth")
    before = vgg_arch.VGG_PRETRAIN_PATH
    opt = {"train": {"perceptual_opt": {"type": "PerceptualLoss", "layer_weights": {"conv1_2": 1.0},
                                        "vgg_type": "vgg19", "use_input_norm": True, "perceptual_weight": 1.0,
                                        "style_weight": 0, "range_norm": False, "criterion": "l1"}}}
    assert vgg_weights_problem(opt, tmp_path / "vgg19.pth") is None
    assert before == vgg_arch.VGG_PRETRAIN_PATH  # basicsr's global stays as it was
    loss = build_loss(dict(opt["train"]["perceptual_opt"]))
    assert [name for name, _ in loss.vgg.vgg_net.named_children()] == ["conv1_1", "relu1_1", "conv1_2"]
    assert torch.equal(loss.vgg.vgg_net.conv1_2.weight, state["features.2.weight"])
    x = torch.rand(1, 3, 16, 16)
    normed = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    expected = torch.nn.functional.conv2d(torch.relu(torch.nn.functional.conv2d(
        normed, state["features.0.weight"], state["features.0.bias"], padding=1)),
        state["features.2.weight"], state["features.2.bias"], padding=1)
    assert torch.allclose(loss.vgg(x)["conv1_2"], expected, atol=1e-5)
    percep, style = loss(x, x)
    assert percep.item() == 0 and style is None


def test_a_file_that_is_not_vgg_weights_is_a_user_error(tmp_path: Path):
    from engine.perceptual import FileVGGPerceptualLoss
    from engine.protocol import UserError

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    (tmp_path / "text.pth").write_text("not weights")
    for name in ("other.pth", "text.pth"):
        with pytest.raises(UserError, match="state dict"):
            FileVGGPerceptualLoss({"conv1_2": 1.0}, str(tmp_path / name))


@pytest.mark.slow
def test_training_with_vgg_weights_logs_the_perceptual_loss(run_root: Path):
    from engine.protocol import RunPaths, read_events
    from tests.conftest import srcockpit

    vgg19_start(run_root / "vgg19.pth")
    perceptual = "{type: PerceptualLoss, layer_weights: {conv1_2: 1.0}, perceptual_weight: 1.0, style_weight: 0}"
    srcockpit("--no-ui", "train", str(TINY_OPTIONS), "--vgg-weights", str(run_root / "vgg19.pth"),
              "--set", f"train.perceptual_opt={perceptual}", "--set", "train.total_iter=2", "--set", "val.val_freq=2",
              "--set", "logger.save_checkpoint_freq=2", cwd=run_root)
    events = list(read_events(RunPaths(run_root / "experiments" / "tiny_cpu").events))
    iters = [e for e in events if e["type"] == "iter"]
    assert [e["iter"] for e in iters] == [1, 2] and all(e["losses"]["l_g_percep"] > 0 for e in iters)
    assert events[-1]["status"] == "finished"
