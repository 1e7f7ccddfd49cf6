"""Import basicsr and realesrgan on current torchvision.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor.rgb_to_grayscale``; torchvision 0.17
removed that private module (the function lives on in ``torchvision.transforms.functional``).
This is the project's one compatibility shim: when the old module is missing, an alias module is
registered before basicsr is imported. Nothing in site-packages is edited.
"""

from __future__ import annotations

import importlib
import sys
import types

_OLD = "torchvision.transforms.functional_tensor"


def _alias_functional_tensor() -> None:
    try:
        importlib.import_module(_OLD)
    except ModuleNotFoundError:
        from torchvision.transforms import functional

        alias = types.ModuleType(_OLD)
        alias.rgb_to_grayscale = functional.rgb_to_grayscale
        sys.modules[_OLD] = alias


def load_basicsr() -> None:
    """Import basicsr, then realesrgan so its archs, datasets and models are registered."""
    _alias_functional_tensor()
    importlib.import_module("basicsr")
    importlib.import_module("realesrgan")
