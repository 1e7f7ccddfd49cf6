"""Helpers for the weights/evaluate tests: the shipped original (read once), small real photo sets."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PLAN_OPTIONS = REPO / "options" / "finetune_small_realesr_animevideox2v3.yml"


@cache
def shipped_x4():
    """NcnnImport of the shipped realesr-animevideov3 x4 network (the tests must not change it)."""
    from engine.weights.ncnn_import import import_ncnn, shipped_ncnn_model

    return import_ncnn(*shipped_ncnn_model(4))


@cache
def original_x2() -> dict:
    from engine.weights.heads import downscale_head

    return downscale_head(shipped_x4().state, 2)[0]


def photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data as data

    return [("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea()),
            ("rocket", data.rocket())]


def write_small_valset(root: Path, size: int = 96) -> Path:
    """A Set5-style x2 set (GTmod12 + LRbicx2) of size x size crops of four real photos; returns root."""
    from engine.data.valset import write_pairs

    crops = [("astronaut", 30, 160), ("coffee", 60, 200), ("chelsea", 50, 120), ("rocket", 200, 290)]
    images = dict(photos())
    write_pairs(((name, images[name][top:top + size, left:left + size]) for name, top, left in crops), root)
    return root


def write_calibration(root: Path) -> Path:
    """Calibration images unlike the validation crops: grey textures and the motorcycle (as RGB)."""
    import skimage.data as data

    from engine.data.images import write_png

    write_png(root / "motorcycle.png", data.stereo_motorcycle()[0][:240, :320])
    for name in ("brick", "camera", "gravel"):
        grey = getattr(data, name)()[:256, :256]
        write_png(root / f"{name}.png", np.repeat(grey[..., None], 3, axis=2))
    return root


def build(state: dict):
    from engine.srvgg import infer_arch

    net = infer_arch(state).build()
    net.load_state_dict(state, strict=True)
    return net.eval()


def as_input(image: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255)[None]
