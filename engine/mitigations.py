"""What a running fine-tune can change without a restart, and which change each alert suggests.

Standard library only: the engine validates `set KEY=VALUE` with it, and the CLI and the cockpit
read the same table to parse the command and to offer an alert's mitigation (plan section 7.4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SET_PREFIX = "set "


@dataclass(frozen=True)
class Knob:
    """One setting basicsr's model reads afresh at every iteration."""

    key: str
    what: str
    low: float
    high: float
    integer: bool = False
    above_low: bool = False  # low itself refused (an lr of 0 trains nothing)
    needs: str = ""  # what the model must have, said when it has not


KNOBS: dict[str, Knob] = {knob.key: knob for knob in (
    Knob("lr", "the learning rate of every optimizer (the schedule continues from it)", 0.0, 1.0, above_low=True),
    Knob("gan_weight", "the GAN loss weight (train.gan_opt.loss_weight)", 0.0, 10.0,
         needs="a GAN loss (train.gan_opt): RealESRGANModel has one, RealESRNetModel not"),
    Knob("percep_weight", "the perceptual loss weight (train.perceptual_opt.perceptual_weight)", 0.0, 100.0,
         needs="a perceptual loss (train.perceptual_opt)"),
    Knob("net_d_iters", "train the generator every N-th iteration, the discriminator every one", 1, 100,
         integer=True, needs="a discriminator (network_d): RealESRGANModel has one, RealESRNetModel not"),
)}


class SettingError(ValueError):
    """A `set` the engine refuses: the message says why and what would be accepted."""


@dataclass(frozen=True)
class Setting:
    key: str
    value: float

    @property
    def command(self) -> str:
        """The queued form, "set lr=5e-05" (repr keeps every digit of the float)."""
        return f"{SET_PREFIX}{self.key}={self.value!r}"

    def __str__(self) -> str:
        return f"{self.key}={self.value:g}"


def _known(key: str) -> Knob:
    if key not in KNOBS:
        raise SettingError(f"unknown setting {key[:40]!r}; settable: {', '.join(KNOBS)}")
    return KNOBS[key]


def check_value(key: str, value: object) -> Setting:
    """key=value as a Setting, or SettingError naming the range."""
    knob = _known(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingError(f"{key} must be a number, got {value!r}")
    if knob.integer and value != int(value):
        raise SettingError(f"{key} must be a whole number, got {value!r}")
    if value < knob.low or (knob.above_low and value == knob.low) or value > knob.high:
        low = f"> {knob.low:g}" if knob.above_low else f">= {knob.low:g}"
        raise SettingError(f"{key}={value!r} is out of range: {knob.what}; it must be {low} and <= {knob.high:g}")
    return Setting(key, int(value) if knob.integer else float(value))


def parse_setting(text: str) -> Setting:
    """"lr=5e-5" (or "set lr=5e-5") as a checked Setting."""
    body = text.removeprefix(SET_PREFIX).strip()
    key, sep, raw = body.partition("=")
    if not sep or not key.strip():
        raise SettingError(f"expected KEY=VALUE, got {text!r}; e.g. set lr=5e-5 (settable: {', '.join(KNOBS)})")
    try:
        value: object = float(raw)
    except ValueError:
        value = raw.strip()
    return check_value(key.strip(), value)


def refusal(setting: Setting, available: Mapping[str, float]) -> str | None:
    """Why this run cannot take the setting (its model has no such loss), or None."""
    if setting.key in available:
        return None
    return f"this run's model has no {setting.key}: {setting.key} needs {KNOBS[setting.key].needs}"


@dataclass(frozen=True)
class Suggestion:
    setting: Setting
    question: str  # "l_g_pix diverging - halve the learning rate?"


def _scaled(key: str, factor: float, current: Mapping[str, float]) -> Setting | None:
    if key not in current:
        return None
    value = current[key] * factor
    return Setting(key, max(1, round(value)) if KNOBS[key].integer else value)


# alert code (or its prefix, for the per-dataset codes "color_shift:val") -> (key, factor, what it does), first
# that the run has wins
_SUGGESTIONS: tuple[tuple[str, tuple[tuple[str, float, str], ...]], ...] = (
    ("diverging", (("lr", 0.5, "halve the learning rate"),)),
    ("oscillating", (("lr", 0.5, "halve the learning rate"),)),
    ("nan", (("lr", 0.1, "cut the learning rate to a tenth"),)),
    ("d_collapse", (("gan_weight", 0.5, "halve the GAN weight"), ("net_d_iters", 2, "train D twice as often"))),
    ("color_shift", (("gan_weight", 0.5, "halve the GAN weight"),)),
    ("checkerboard", (("gan_weight", 0.5, "halve the GAN weight"),)),
    ("over_smoothing", (("percep_weight", 2.0, "double the perceptual weight"),
                        ("gan_weight", 2.0, "double the GAN weight"))),
)


def suggest(code: str, message: str, current: Mapping[str, float]) -> Suggestion | None:
    """The set command that answers an alert (its code and message), given the run's current settings; None when
    none applies or the run cannot take it."""
    for prefix, options in _SUGGESTIONS:
        if code == prefix or code.startswith((f"{prefix}:", f"{prefix}_")):
            for key, factor, action in options:
                setting = _scaled(key, factor, current)
                if setting is not None:
                    return Suggestion(setting, f"{message or code} - {action} ({setting})?")
    return None
