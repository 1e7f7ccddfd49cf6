"""The exact x4 -> x2 head (more generally x r -> x r/f) of an SRVGGNetCompact.

basicsr's output is PixelShuffle(r)(last_conv(features)) + nearest_r(input). PixelShuffle (CRD order)
sends channel c*r*r + i*r + j to pixel (h*r + i, w*r + j) of colour c. Average-pooling that output by
f (r = s*f) gives at sub-pixel (a, b) of the x s image the mean of the f*f sub-pixels
(a*f + u, b*f + v), u, v < f. The last conv is linear, so that mean is one conv whose filter and bias
are the means of those f*f filters and biases, placed at channel c*s*s + a*s + b. The base term
agrees too: nearest_r(x) is constant on every r x r block, so its f x f average is x itself, which is
nearest_s(x). Hence new_net(x) == avg_pool2d(old_net(x), f) up to float rounding.
"""

from __future__ import annotations

import torch

from engine.protocol import UserError
from engine.srvgg import SRVGGArch, StateDict, infer_arch


def last_conv_index(state: StateDict) -> int:
    return max(int(key.split(".")[1]) for key in state if key.startswith("body.") and state[key].ndim == 4)


def downscale_head(state: StateDict, scale: int, source: str = "model") -> tuple[StateDict, SRVGGArch]:
    """A copy of state whose network upscales by `scale` and equals avg_pool2d(original output, r/scale)."""
    arch = infer_arch(state, source)
    if scale == arch.upscale:
        return dict(state), arch
    if scale < 1 or arch.upscale % scale:
        raise UserError(f"{source} upscales x{arch.upscale}; an exact x{scale} head needs x{arch.upscale} "
                        f"to be a multiple of x{scale}",
                        "pick a scale that divides the model's (x4 -> x2 or x1)")
    factor = arch.upscale // scale
    index = last_conv_index(state)
    weight, bias = state[f"body.{index}.weight"], state[f"body.{index}.bias"]
    s, f, colours = scale, factor, arch.num_out_ch
    # channel c*r*r + (a*f + u)*r + (b*f + v) -> axes [c][a][u][b][v]; mean over u and v.
    w = weight.reshape(colours, s, f, s, f, *weight.shape[1:]).mean(dim=(2, 4))
    b = bias.reshape(colours, s, f, s, f).mean(dim=(2, 4))
    new = dict(state)
    new[f"body.{index}.weight"] = w.reshape(colours * s * s, *weight.shape[1:]).contiguous()
    new[f"body.{index}.bias"] = b.reshape(colours * s * s).contiguous()
    return new, SRVGGArch(arch.num_feat, arch.num_conv, s, arch.num_in_ch, arch.num_out_ch, arch.act_type)


def x2_head(state: StateDict, source: str = "model") -> StateDict:
    """The x2 state dict of an x4 (or x2) SRVGGNetCompact; see the module docstring for why it is exact."""
    return downscale_head(state, 2, source)[0]


def head_check(state: StateDict, new_state: StateDict, size: int = 16, seed: int = 0) -> float:
    """max |new(x) - avg_pool(old(x))| on a random input: a cheap self-check of downscale_head."""
    old_arch, new_arch = infer_arch(state), infer_arch(new_state)
    old, new = old_arch.build().eval(), new_arch.build().eval()
    old.load_state_dict(state, strict=True)
    new.load_state_dict(new_state, strict=True)
    x = torch.rand(1, old_arch.num_in_ch, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        pooled = torch.nn.functional.avg_pool2d(old(x), old_arch.upscale // new_arch.upscale)
        return float((new(x) - pooled).abs().max())
