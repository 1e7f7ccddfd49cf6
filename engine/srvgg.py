"""SRVGGNetCompact checkpoints: read any of the usual layouts, infer the architecture, build, save.

Every part of srcockpit that touches a generator file (transfer, ranking, export, report) goes
through here, so a `.pth` is understood the same way everywhere: basicsr's {"params": ...,
"params_ema": ...}, Real-ESRGAN's release files, or a bare state dict.
"""

from __future__ import annotations

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
        raise UserError(f"{source} is not an SRVGGNetCompact network (expected keys body.N.weight/bias only)",
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


def read_checkpoint(path: Path, param_key: str | None = None) -> StateDict:
    """The generator's state dict from a .pth file (params_ema preferred, then params, then bare)."""
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}", "check the path")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"{path} is not a readable PyTorch checkpoint: {error.__class__.__name__}: {error}",
                        "the file may be truncated or not a .pth") from error
    if not isinstance(blob, dict):
        raise UserError(f"{path} holds a {type(blob).__name__}, not a state dict")
    keys = (param_key,) if param_key else PARAM_KEYS
    for key in keys:
        if isinstance(blob.get(key), dict):
            return {name: tensor.float() for name, tensor in blob[key].items()}
    if param_key:
        raise UserError(f"{path} has no '{param_key}' entry", f"it has: {', '.join(map(str, blob)) or 'nothing'}")
    if all(isinstance(value, torch.Tensor) for value in blob.values()):
        return {name: tensor.float() for name, tensor in blob.items()}
    raise UserError(f"{path} holds no state dict under {' or '.join(PARAM_KEYS)}")


def load_network(path: Path, param_key: str | None = None) -> tuple[SRVGGNetCompact, SRVGGArch]:
    """A ready eval-mode SRVGGNetCompact on the CPU, loaded strictly from path."""
    state = read_checkpoint(path, param_key)
    arch = infer_arch(state, str(path))
    net = arch.build()
    net.load_state_dict(state, strict=True)
    return net.eval(), arch


def save_checkpoint(path: Path, state: StateDict, **extra: Any) -> Path:
    """Write {"params", "params_ema", **extra} atomically (temporary name, fsync, rename)."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    atomic_torch_save({"params": tensors, "params_ema": tensors, **extra}, path)
    return path


def count_parameters(state: StateDict) -> int:
    return sum(tensor.numel() for tensor in state.values())
