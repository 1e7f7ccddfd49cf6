"""Scores already computed in this process, found again by content.

One `srcockpit demo` validates, ranks and reports in one process, and the same weights meet the same
validation images several times there: the stage-2 start's ranking and the comparison report both score
stage 1's best, the rank step and the report both score the GAN stage's end, and every ranking, each
training stage and the report score nearest and bicubic. A score depends only on the network (its
class, layout and every tensor), the images and how they are scored, so a key made of those bytes
gives back the same figures without running the network again. A key never holds a path or a label:
a copied checkpoint (the promoted weights) hits, a retrained one with the same name does not.

The network's outputs are kept too, while they fit in BUDGET bytes: a ranking that asks for other figures
than the training's validation did (the artifact figures beside PSNR) scores those outputs again without
running the network.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

LIMIT = 64  # entries kept; a score is a few KB (per-image floats)
BUDGET = 64 << 20  # bytes of network outputs kept (the demo's five photos at x2: 4.6 MB a network)

_memo: OrderedDict[str, tuple[Any, int]] = OrderedDict()


def _hash_arrays(arrays: Iterable[np.ndarray], head: str) -> str:
    digest = hashlib.blake2b(head.encode(), digest_size=20)
    for array in arrays:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def images_key(names: Iterable[str], gt: Iterable[np.ndarray], lq: Iterable[np.ndarray], scale: int) -> str:
    """The validation images' content: names, scale and every GT and LQ pixel."""
    return _hash_arrays([*gt, *lq], f"{list(names)}|x{scale}")


def network_key(model: Any) -> str | None:
    """An nn.Module's content (its printed layout and every parameter and buffer); None for any other callable,
    whose result cannot be known from its bytes."""
    if not isinstance(model, torch.nn.Module):
        return None
    state = model.state_dict()
    raw = [t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy() for t in state.values()]
    layout = [(name, t.dtype, tuple(t.shape)) for name, t in state.items()]
    return _hash_arrays(raw, f"{type(model).__qualname__}|{model}|{layout}")


def settings_key(**settings: Any) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def recall(key: str | None) -> Any | None:
    """What keep() stored under key, or None (also for key None: a score that cannot be keyed)."""
    if key is None or key not in _memo:
        return None
    _memo.move_to_end(key)
    return _memo[key][0]


def fits(nbytes: int) -> bool:
    """Whether outputs of this size would be kept at all."""
    return nbytes <= BUDGET


def keep(key: str | None, value: Any, nbytes: int = 0) -> None:
    """Store value (of nbytes large arrays; the oldest entries go when LIMIT or BUDGET is passed)."""
    if key is None or not fits(nbytes):
        return
    _memo[key] = (value, nbytes)
    while len(_memo) > LIMIT or sum(size for _, size in _memo.values()) > BUDGET:
        _memo.popitem(last=False)


def forget() -> None:
    """Drop every entry (tests that count the work an evaluation does start from here)."""
    _memo.clear()
