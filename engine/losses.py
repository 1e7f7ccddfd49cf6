"""Which loss is which, from the model's own log keys (standard library only; engine.protocol re-exports it).

basicsr's models name their losses by habit, not by a registry: RealESRGANModel logs l_g_pix,
l_g_percep, l_g_gan, l_d_real, l_d_fake and the discriminator's outputs out_d_real, out_d_fake;
RealESRNetModel and SRModel log l_pix, l_percep, l_style. The rule below reads the habit (prefix
for the side, a word in the rest for the kind), so a new model or loss name is sorted without a list.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class LossKind(str, enum.Enum):
    __str__ = str.__str__

    PIXEL = "pixel"
    PERCEPTUAL = "perceptual"
    STYLE = "style"
    GAN = "gan"
    GENERATOR_OTHER = "generator"
    D_REAL = "d_real"
    D_FAKE = "d_fake"
    D_OTHER = "discriminator"
    D_OUTPUT = "d_output"  # not a loss: the discriminator's mean output, logged beside them


GENERATOR_KINDS = (LossKind.PIXEL, LossKind.PERCEPTUAL, LossKind.STYLE, LossKind.GAN, LossKind.GENERATOR_OTHER)
DISCRIMINATOR_KINDS = (LossKind.D_REAL, LossKind.D_FAKE, LossKind.D_OTHER)
_WORDS = (("pix", LossKind.PIXEL), ("l1", LossKind.PIXEL), ("mse", LossKind.PIXEL), ("charbonnier", LossKind.PIXEL),
          ("percep", LossKind.PERCEPTUAL), ("style", LossKind.STYLE), ("gan", LossKind.GAN))


def classify_loss(name: str) -> LossKind:
    """l_g_pix / l_pix -> PIXEL, l_g_percep / l_percep -> PERCEPTUAL, l_d_real -> D_REAL, out_d_fake -> D_OUTPUT."""
    key = name.lower()
    if key.startswith("out_d"):
        return LossKind.D_OUTPUT
    if key.startswith("l_d_") or key == "l_d":
        rest = key[4:]
        if "real" in rest:
            return LossKind.D_REAL
        if "fake" in rest:
            return LossKind.D_FAKE
        return LossKind.D_OTHER
    rest = key.removeprefix("l_g_").removeprefix("l_")
    for word, kind in _WORDS:
        if word in rest:
            return kind
    return LossKind.GENERATOR_OTHER


def losses_of_kind(names: Iterable[str], kinds: Iterable[LossKind]) -> tuple[str, ...]:
    """The names of those kinds, in the order of `kinds` (the plan's: pixel, perceptual, GAN; real, fake)."""
    order = {kind: rank for rank, kind in enumerate(kinds)}
    chosen = [name for name in names if classify_loss(name) in order]
    return tuple(sorted(chosen, key=lambda name: (order[classify_loss(name)], name)))
