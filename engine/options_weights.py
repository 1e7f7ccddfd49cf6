"""The engine-side check of path.pretrain_network_*: the file loads (weights only) and fits the network.

engine.options.check_pretrained looks at the bytes without torch (the CLI runs it before launch);
here, in the engine, where torch is loaded anyway, the checkpoint is read with weights_only=True and
its state dict compared with the network the options build, as basicsr's load_network would: the
same param_key fallback, and with strict_load every key and shape must match.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any


def _state_dict(path: Path, param_key: str | None) -> tuple[dict[str, Any] | None, str | None]:
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike for a non-checkpoint
        return None, f"{path} is not a torch checkpoint ({error.__class__.__name__}: {str(error)[:120]})"
    if param_key is not None:  # basicsr falls back from a missing param_key to 'params', then fails
        key = param_key if isinstance(blob, dict) and param_key in blob else "params"
        if not isinstance(blob, dict) or key not in blob:
            found = ", ".join(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
            fallback = "" if param_key == "params" else " (nor 'params')"
            return None, f"{path} has no {param_key!r} entry{fallback}: it holds {found[:120] or 'nothing'}"
        blob = blob[key]
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        return None, f"{path} holds no state dict of tensors under {param_key!r}"
    return {str(k).removeprefix("module."): v for k, v in blob.items()}, None


def _network(net_opt: dict[str, Any]) -> Any:
    from engine.compat import load_basicsr

    load_basicsr()
    import realesrgan.archs  # noqa: F401 (registers realesrgan's own networks)
    from basicsr.utils.registry import ARCH_REGISTRY

    params = copy.deepcopy(net_opt)
    return ARCH_REGISTRY.get(params.pop("type"))(**params)


def network_problem(path: Path, net_opt: dict[str, Any], *, section: str, param_key: str | None,
                    strict: bool) -> str | None:
    """Why basicsr could not load path into the network net_opt (options section `section`) describes, or None."""
    state, problem = _state_dict(path, param_key)
    if problem:
        return problem
    try:
        expected = _network(net_opt).state_dict()
    except Exception as error:  # a constructor's own assert or a shape it cannot build
        return f"{section} does not build ({error.__class__.__name__}: {str(error)[:120]})"
    fits = [k for k in expected if k in state and tuple(state[k].shape) == tuple(expected[k].shape)]
    detail = _mismatch(state, expected)
    if detail is None or (not strict and fits):
        return None  # without strict_load basicsr loads what fits and skips the rest, as its log says
    kind = net_opt["type"]
    article = "an" if kind[:1].upper() in "AEFHILMNORSX" else "a"  # the letter's sound: an SRVGG..., an RRDB...
    return f"{path} is not {article} {kind} checkpoint of the {section} shape: {detail}"


def _mismatch(state: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """The first difference between a checkpoint's state dict and the network's, or None."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing:
        return f"{len(missing)} of its keys missing (e.g. {missing[0]})"
    if unexpected:
        return f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})"
    if wrong:
        return f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, the network needs {tuple(expected[wrong[0]].shape)}"
    return None
