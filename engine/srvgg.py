"""SRVGGNetCompact checkpoints: read any of the usual layouts, infer the architecture, build, save.

Every part of srcockpit that touches a generator file (transfer, ranking, export, report) goes
through here, so a `.pth` is understood the same way everywhere: basicsr's {"params": ...,
"params_ema": ...}, Real-ESRGAN's release files, or a bare state dict.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from engine.compat import load_basicsr
from engine.files import atomic_torch_save
from engine.protocol import UserError

load_basicsr()
from basicsr.archs.srvgg_arch import SRVGGNetCompact  # noqa: E402

# basicsr's keys, in the order it prefers them when param_key is not given.
PARAM_KEYS = ("params_ema", "params")

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SRVGGArch:
    """The constructor arguments of SRVGGNetCompact, as found in (or meant for) a state dict."""

    num_feat: int
    num_conv: int
    upscale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    act_type: str = "prelu"

    def build(self) -> SRVGGNetCompact:
        return SRVGGNetCompact(**asdict(self))

    @property
    def label(self) -> str:
        return f"{self.num_feat} feat / {self.num_conv} conv / x{self.upscale} / {self.act_type}"


def infer_arch(state: StateDict, source: str = "state dict") -> SRVGGArch:
    """Read the architecture off the shapes of body.N weights; UserError for anything else."""
    convs = sorted(int(key.split(".")[1]) for key in state if key.startswith("body.") and key.endswith(".weight")
                   and state[key].ndim == 4)
    if len(convs) < 2 or any(not key.startswith("body.") for key in state):
        raise UserError(f"{source} is {_other_network(state)}, not an SRVGGNetCompact network (expected keys "
                        "body.N.weight/bias only)",
                        "give a basicsr SRVGGNetCompact checkpoint, e.g. realesr-animevideov3")
    first, last = state[f"body.{convs[0]}.weight"], state[f"body.{convs[-1]}.weight"]
    num_feat, num_in = first.shape[0], first.shape[1]
    out_channels = last.shape[0]
    act_keys = [key for key in state if key.endswith(".weight") and state[key].ndim == 1]
    act_type = "prelu" if act_keys else "relu"
    for num_out in (3, 1, num_in):
        upscale = round((out_channels / num_out) ** 0.5)
        if upscale * upscale * num_out == out_channels:
            break
    else:
        raise UserError(f"{source}: last conv has {out_channels} outputs, not out_ch x scale^2")
    return SRVGGArch(num_feat=num_feat, num_conv=len(convs) - 2, upscale=upscale, num_in_ch=num_in,
                     num_out_ch=num_out, act_type=act_type)


def _other_network(state: StateDict) -> str:
    """What a state dict that is not SRVGGNetCompact looks like, for the refusal."""
    if not state:
        return "an empty state dict"
    if "conv_first.weight" in state and any(".rdb1." in key for key in state):
        return "an RRDBNet (RealESRGAN_x4plus-style) network"
    return f"a network with keys like {next(iter(state))!r}"


def require_finite(state: StateDict, source: str) -> None:
    """A UserError naming the first tensor that holds NaN or infinite values (a diverged run saves those)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            nan = int(torch.isnan(tensor).sum())
            what = f"NaN ({nan} of {tensor.numel()} values)" if nan else (
                f"infinite values ({int(torch.isinf(tensor).sum())} of {tensor.numel()})")
            raise UserError(f"{source}: {name} holds {what}",
                            "the run had diverged when this was saved: use an earlier checkpoint "
                            "(`srcockpit rank RUN` scores them all)")


def load_checkpoint_blob(path: Path) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, so no pickle runs code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" not in str(error).lower() and "weights only" not in str(error).lower():
            raise UserError(f"{path} is not a readable PyTorch checkpoint: {error}",
                            "the file may be truncated or not a .pth") from error
        if path.suffix == ".state":
            raise UserError(f"{path} is a training state (.state), not network weights", _STATE_HINT) from error
        raise UserError(f"{path} holds Python objects, not plain tensors: refused, because loading it could "
                        "run code", "srcockpit loads checkpoints with weights_only=True; if you trust the file, "
                        "save just its tensors (torch.save({'params': state_dict}, ...)) and give that") from error
    except Exception as error:  # torch raises many types for a torn or foreign file
        raise UserError(f"{path} is not a readable PyTorch checkpoint: {error.__class__.__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''}",
                        "the file may be truncated (an interrupted copy) or not a .pth") from error


_STATE_HINT = ("a .state file resumes training (`srcockpit resume RUN`); give the weights from models/, "
               "e.g. models/net_g_<iter>.pth")


def read_checkpoint(path: Path, param_key: str | None = None) -> StateDict:
    """The generator's state dict from a .pth file (params_ema preferred, then params, then bare); UserError for
    a file that is not one, holds code, or holds NaN/inf weights."""
    from engine.weights.precheck import require_checkpoint_file

    require_checkpoint_file(path)
    blob = load_checkpoint_blob(path)
    if not isinstance(blob, dict):
        raise UserError(f"{path} holds a {type(blob).__name__}, not a state dict",
                        "give a checkpoint saved as {'params': state_dict} or a bare state dict")
    if {"optimizers", "schedulers"} & set(blob):
        raise UserError(f"{path} is a training state (optimizers, schedulers), not network weights", _STATE_HINT)
    keys = (param_key,) if param_key else PARAM_KEYS
    state = next((blob[key] for key in keys if isinstance(blob.get(key), dict)), None)
    if state is None and param_key:
        raise UserError(f"{path} has no '{param_key}' entry", f"it has: {', '.join(map(str, blob)) or 'nothing'}")
    if state is None and blob and all(isinstance(value, torch.Tensor) for value in blob.values()):
        state = blob
    if state is None or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UserError(f"{path} holds no state dict under {' or '.join(PARAM_KEYS)} "
                        f"(it has: {', '.join(map(str, blob)) or 'nothing'})",
                        "basicsr keeps the generator under 'params' / 'params_ema': re-save it as "
                        "{'params': state_dict}")
    state = {name: tensor.float() for name, tensor in state.items()}
    require_finite(state, str(path))
    return state


def load_network(path: Path, param_key: str | None = None) -> tuple[SRVGGNetCompact, SRVGGArch]:
    """A ready eval-mode SRVGGNetCompact on the CPU, loaded strictly from path."""
    state = read_checkpoint(path, param_key)
    arch = infer_arch(state, str(path))
    return build_network(state, str(path)), arch


def build_network(state: StateDict, source: str = "state dict") -> SRVGGNetCompact:
    """An eval-mode SRVGGNetCompact loaded strictly from state; a UserError when the shapes do not fit."""
    net = infer_arch(state, source).build()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise UserError(f"{source} does not load as SRVGGNetCompact: {str(error).splitlines()[0]}",
                        "its tensors do not fit one network (keys or shapes); give a checkpoint saved by "
                        "basicsr or srcockpit") from error
    return net.eval()


def save_checkpoint(path: Path, state: StateDict, **extra: Any) -> Path:
    """Write {"params", "params_ema", **extra} atomically (temporary name, fsync, rename)."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    require_finite(tensors, f"the network to be written to {path}")  # never write a diverged network
    atomic_torch_save({"params": tensors, "params_ema": tensors, **extra}, path)
    return path


def count_parameters(state: StateDict) -> int:
    return sum(tensor.numel() for tensor in state.values())
