"""The perceptual loss with its VGG weights read from a file the user gives (--vgg-weights).

basicsr 1.4.2 has no parameter for that file: VGGFeatureExtractor loads its module global
VGG_PRETRAIN_PATH if that path exists, else downloads torchvision's weights (and its torch.load
does not say weights_only). FileVGGPerceptualLoss is basicsr's PerceptualLoss with the same layers
built from the given file; the engine selects it through basicsr's loss registry (`type:`), as it
selects the cockpit models, so every model type that builds `train.perceptual_opt` gets it.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from engine.compat import load_basicsr
from engine.protocol import UserError

load_basicsr()
from basicsr.archs.vgg_arch import NAMES, VGGFeatureExtractor, insert_bn  # noqa: E402
from basicsr.losses.basic_loss import PerceptualLoss  # noqa: E402
from basicsr.utils.registry import LOSS_REGISTRY  # noqa: E402

WEIGHTS_HINT = "pass torchvision's vgg19-dcbb9e9d.pth (the ImageNet VGG19 state dict)"


def with_weights_file(perceptual_opt: dict[str, Any], weights: Path) -> dict[str, Any]:
    """train.perceptual_opt for basicsr's loss registry: PerceptualLoss, with its VGG weights from `weights`."""
    kind = perceptual_opt.get("type")
    if kind != "PerceptualLoss":
        raise UserError(f"--vgg-weights is for train.perceptual_opt type PerceptualLoss, not {kind}",
                        "drop --vgg-weights, or use type: PerceptualLoss")
    return dict(perceptual_opt, type=FileVGGPerceptualLoss.__name__, vgg_weights=str(weights))


def vgg_features(weights: str, vgg_type: str, last: int) -> nn.Sequential:
    """torchvision's `vgg_type` features up to index `last`, loaded from the state dict in `weights`."""
    features = getattr(torchvision.models, vgg_type)(weights=None).features[:last + 1]
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as error:
        raise UserError(f"{weights}: cannot read it as a torch state dict ({error})", WEIGHTS_HINT) from None
    if not isinstance(state, dict):
        raise UserError(f"{weights} holds a {type(state).__name__}, not a state dict", WEIGHTS_HINT)
    wanted = {key.removeprefix("features."): value for key, value in state.items()
              if key.startswith("features.") and int(key.split(".")[1]) <= last}
    missing = features.load_state_dict(wanted, strict=False).missing_keys
    if missing:
        raise UserError(f"{weights} is not torchvision's {vgg_type} state dict (no features.{missing[0]})",
                        WEIGHTS_HINT)
    return features


class FileVGGFeatureExtractor(VGGFeatureExtractor):
    """basicsr's VGGFeatureExtractor (same layers, same forward), its weights read from `weights`."""

    def __init__(self, weights: str, layer_name_list: list[str], vgg_type: str = "vgg19", use_input_norm: bool = True,
                 range_norm: bool = False, requires_grad: bool = False, remove_pooling: bool = False,
                 pooling_stride: int = 2) -> None:
        nn.Module.__init__(self)
        self.layer_name_list = layer_name_list
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        names = NAMES[vgg_type.replace("_bn", "")]
        self.names = insert_bn(names) if "bn" in vgg_type else names
        features = vgg_features(weights, vgg_type, max(self.names.index(name) for name in layer_name_list))
        layers = OrderedDict()
        for name, layer in zip(self.names, features, strict=False):
            if "pool" in name:
                if remove_pooling:
                    continue
                layer = nn.MaxPool2d(kernel_size=2, stride=pooling_stride)
            layers[name] = layer
        self.vgg_net = nn.Sequential(layers)
        self.vgg_net.train(requires_grad)
        for param in self.parameters():
            param.requires_grad = requires_grad
        if use_input_norm:  # ImageNet's mean and std, for images in [0, 1]
            self.register_buffer("mean", torch.Tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.Tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))


@LOSS_REGISTRY.register()
class FileVGGPerceptualLoss(PerceptualLoss):
    """basicsr's PerceptualLoss (same options and forward) plus `vgg_weights`, the VGG state dict's file."""

    def __init__(self, layer_weights: dict[str, float], vgg_weights: str, vgg_type: str = "vgg19",
                 use_input_norm: bool = True, range_norm: bool = False, perceptual_weight: float = 1.0,
                 style_weight: float = 0.0, criterion: str = "l1") -> None:
        nn.Module.__init__(self)  # PerceptualLoss.__init__ would build (and download) basicsr's extractor
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight
        self.layer_weights = layer_weights
        self.vgg = FileVGGFeatureExtractor(vgg_weights, list(layer_weights), vgg_type=vgg_type,
                                           use_input_norm=use_input_norm, range_norm=range_norm)
        criteria = {"l1": nn.L1Loss, "l2": nn.MSELoss, "fro": lambda: None}
        if criterion not in criteria:
            raise UserError(f"train.perceptual_opt.criterion {criterion!r} is not one of {sorted(criteria)}",
                            "use l1, as Real-ESRGAN does")
        self.criterion_type = criterion
        self.criterion = criteria[criterion]()
