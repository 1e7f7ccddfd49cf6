"""engine/niqe.py gives basicsr's NIQE figures exactly: the same steps, the AGGD table built once."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from engine.compat import load_basicsr
from engine.niqe import calculate_niqe

load_basicsr()
from basicsr.metrics.niqe import calculate_niqe as basicsr_niqe  # noqa: E402


def _bgr(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])


@pytest.mark.parametrize(("name", "image", "options"), [
    ("astronaut, Y", _bgr(data.astronaut()), {"crop_border": 2}),
    ("coffee crop, grey", _bgr(data.coffee())[:250, 100:400], {"crop_border": 0, "convert_to": "gray"}),
    ("camera, HW", data.camera().astype(np.float64), {"crop_border": 4, "input_order": "HW"}),
    ("noise", np.random.default_rng(0).integers(0, 256, (200, 300, 3)).astype(np.uint8), {"crop_border": 1}),
])
def test_niqe_is_basicsrs_to_the_last_bit(name: str, image: np.ndarray, options: dict):
    ours, theirs = calculate_niqe(image, **options), basicsr_niqe(image, **options)
    assert ours == theirs and np.isfinite(ours), name
