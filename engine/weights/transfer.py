"""Carry an SRVGGNetCompact to a narrower and/or deeper (or shallower) one.

Width (the plan's rule, finetune-plan.md 2.4): for every conv except the last, keep the `num_feat`
output channels with the largest L2 norm of their weights, indices SORTED (so channel order, and with
it colour order downstream, is kept); slice that conv's weight rows and bias, the PReLU slopes after
it, and the next conv's input columns. The last conv keeps all its outputs (colour x scale^2).

Depth, when num_conv > the source's: body block i (conv + PReLU) is followed by its extra blocks,
  - duplicate: copies of block i's (pruned) weights (the plan's rule; 16 -> 32 gives b1 b1' b2 b2' ...);
  - identity: conv with an identity kernel (centre tap 1 on its own channel), zero bias, PReLU slope 1,
    so the deeper network computes exactly what the narrow one does.
The extra blocks are spread evenly: block i gets num_conv // n + (i < num_conv % n) places in all.
When num_conv < the source's, the first num_conv body blocks are kept and the others dropped (with a
refit, the last conv is refit to reproduce the original output from the shallower features).

Optional refit (engine/weights/refit.py) runs on the narrow network before identity deepening.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from engine.protocol import ProgressFn, UserError
from engine.srvgg import SRVGGArch, StateDict, count_parameters, infer_arch

DEEPEN_MODES = ("duplicate", "identity")


@dataclass
class ConvChain:
    """SRVGGNetCompact as a list of convs, each but the last followed by PReLU slopes (None: ReLU)."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    slopes: list[torch.Tensor | None]
    upscale: int

    @classmethod
    def from_state(cls, state: StateDict, source: str = "model") -> ConvChain:
        arch = infer_arch(state, source)
        convs = sorted(int(k.split(".")[1]) for k in state if k.endswith(".weight") and state[k].ndim == 4)
        weights = [state[f"body.{i}.weight"].float() for i in convs]
        biases = [state.get(f"body.{i}.bias", torch.zeros(w.shape[0])).float()
                  for i, w in zip(convs, weights, strict=True)]
        slopes = [state[f"body.{i + 1}.weight"].float() if f"body.{i + 1}.weight" in state else None
                  for i in convs[:-1]]
        return cls(weights, biases, slopes, arch.upscale)

    def to_state(self) -> StateDict:
        state: StateDict = {}
        for number, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            state[f"body.{2 * number}.weight"] = weight.contiguous()
            state[f"body.{2 * number}.bias"] = bias.contiguous()
            if number < len(self.slopes) and self.slopes[number] is not None:
                state[f"body.{2 * number + 1}.weight"] = self.slopes[number].contiguous()
        return state

    def activation(self, number: int, z: torch.Tensor) -> torch.Tensor:
        slope = self.slopes[number]
        if slope is None:
            return torch.relu(z)
        return torch.where(z >= 0, z, z * slope.view(1, -1, 1, 1))

    def conv(self, number: int, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weights[number], self.biases[number], padding=1)


@dataclass
class LayerReport:
    """One conv of the source: what of it the target keeps."""

    layer: str  # its key prefix in the source, e.g. body.4
    role: str  # first, body, last
    out_channels: int
    kept: list[int]  # output channel indices kept, sorted (all of them for the last conv)
    energy_kept: float  # share of sum ||W[o]||^2 in the kept rows
    energy_kept_sliced: float  # share left after the input columns are sliced as well
    targets: list[str] = field(default_factory=list)  # where it lands in the target (copies included)
    refit: dict[str, float] | None = None  # relative pre-activation error before/after the refit


@dataclass
class TransferResult:
    state: StateDict
    arch: SRVGGArch
    source_arch: SRVGGArch
    deepen: str
    layers: list[LayerReport]
    blocks: list[dict[str, Any]]  # target body block -> source block and kind (kept, copy, identity)
    notes: list[str] = field(default_factory=list)
    refit: dict[str, Any] | None = None

    @property
    def parameters(self) -> int:
        return count_parameters(self.state)

    def to_dict(self) -> dict[str, Any]:
        return {"source": asdict(self.source_arch), "target": asdict(self.arch),
                "parameters": self.parameters, "deepen": self.deepen,
                "rule": "top-k output channels by L2 norm of the conv weight, indices sorted",
                "layers": [asdict(layer) for layer in self.layers], "blocks": self.blocks,
                "refit": self.refit, "notes": self.notes}


def top_k_channels(weight: torch.Tensor, k: int) -> list[int]:
    """The k output channels with the largest L2 weight norm, as sorted indices."""
    norms = weight.flatten(1).norm(dim=1)
    return sorted(torch.topk(norms, k).indices.tolist())


def energy_share(weight: torch.Tensor, rows: list[int], cols: list[int] | None = None) -> float:
    total = float(weight.double().pow(2).sum())
    part = weight[rows] if cols is None else weight[rows][:, cols]
    return float(part.double().pow(2).sum()) / total if total else 1.0


def identity_block(width: int, like: torch.Tensor, prelu: bool) -> tuple[torch.Tensor, torch.Tensor,
                                                                           torch.Tensor | None]:
    weight = torch.zeros(width, width, 3, 3, dtype=like.dtype)
    weight[torch.arange(width), torch.arange(width), 1, 1] = 1.0
    slope = torch.ones(width, dtype=like.dtype) if prelu else None
    return weight, torch.zeros(width, dtype=like.dtype), slope


def check_request(source: SRVGGArch, num_feat: int, num_conv: int, deepen: str, refit: bool) -> None:
    if num_feat < 1:
        raise UserError(f"--feat {num_feat}: a network needs at least one feature channel")
    if num_feat > source.num_feat:
        raise UserError(f"target is wider than the source: --feat {num_feat} > {source.num_feat} "
                        "source channels",
                        "transfer only narrows; use --feat <= the source's width")
    if num_conv < 1:
        raise UserError(f"--conv {num_conv}: SRVGGNetCompact needs at least 1 body conv")
    if deepen not in DEEPEN_MODES:
        raise UserError(f"unknown --deepen {deepen}", f"choose from {', '.join(DEEPEN_MODES)}")
    if refit and deepen == "duplicate" and num_conv > source.num_conv:
        raise UserError("--refit with --deepen duplicate is refused: a refit layer reproduces the original "
                        "pre-activations from the pruned features before it; a copy of it fed with its own "
                        "output computes something else, and the duplicated refit model breaks "
                        "(7.8 dB measured)",
                        "use --deepen identity with --refit")


def transfer(state: StateDict, *, num_feat: int, num_conv: int, deepen: str = "duplicate",
             refit: Any = None, source: str = "model", progress: ProgressFn | None = None) -> TransferResult:
    """The transferred state dict and its report. refit: a refit.RefitSettings (or None)."""
    source_arch = infer_arch(state, source)
    check_request(source_arch, num_feat, num_conv, deepen, refit is not None)
    original = ConvChain.from_state(state, source)
    keep_body = min(num_conv, source_arch.num_conv)
    narrow, layers, origin, kept_rows = _narrow(original, source_arch.num_in_ch, num_feat, keep_body)
    notes = []
    if num_conv < source_arch.num_conv:
        dropped = ", ".join(f"body.{2 * i}" for i in range(keep_body + 1, len(original.weights) - 1))
        notes.append(f"shallower target: body blocks {dropped} dropped (the first {num_conv} kept)")
    refit_info = None
    if refit is not None:
        from engine.weights.refit import refit_chain

        refit_info, per_layer = refit_chain(original, narrow, origin, kept_rows, refit, progress=progress)
        for layer, figures in zip(layers, per_layer, strict=True):
            layer.refit = figures
    chain, blocks = _deepen(narrow, layers, num_feat, num_conv, keep_body, deepen)
    arch = SRVGGArch(num_feat, num_conv, source_arch.upscale, source_arch.num_in_ch, source_arch.num_out_ch,
                     source_arch.act_type)
    if num_conv > keep_body:
        extra = "copies" if deepen == "duplicate" else "identity blocks"
        order = f"each source block followed by its {extra}"
        notes.append(f"deepened {keep_body} -> {num_conv} body blocks by {deepen}: {order}")
    new_state = chain.to_state()
    check = arch.build()
    check.load_state_dict(new_state, strict=True)  # shapes must be exactly basicsr's
    return TransferResult(new_state, arch, source_arch, deepen, layers, blocks, notes, refit_info)


def _narrow(original: ConvChain, num_in_ch: int, num_feat: int,
            keep_body: int) -> tuple[ConvChain, list[LayerReport], list[int], list[list[int]]]:
    """Width: the top-k rows of the first keep_body + 1 convs and the last; input columns follow the previous
    conv's kept rows. Returns (the narrow chain, a report per conv, its source conv index, its kept rows)."""
    last = len(original.weights) - 1  # first + num_conv body + last
    layers, narrow_w, narrow_b, narrow_s, kept_rows = [], [], [], [], []
    previous = list(range(num_in_ch))
    origin = [*range(keep_body + 1), last]  # source conv index of every narrow conv
    for number in origin:
        weight = original.weights[number]
        role = "first" if number == 0 else "last" if number == last else "body"
        rows = list(range(weight.shape[0])) if number == last else top_k_channels(weight, num_feat)
        narrow_w.append(weight[rows][:, previous].clone())
        narrow_b.append(original.biases[number][rows].clone())
        if number != last:
            slope = original.slopes[number]
            narrow_s.append(None if slope is None else slope[rows].clone())
        layers.append(LayerReport(f"body.{2 * number}", role, weight.shape[0], rows,
                                  energy_share(weight, rows), energy_share(weight, rows, previous)))
        kept_rows.append(rows)
        previous = rows
    return ConvChain(narrow_w, narrow_b, narrow_s, original.upscale), layers, origin, kept_rows


def _deepen(narrow: ConvChain, layers: list[LayerReport], num_feat: int, num_conv: int, keep_body: int,
            deepen: str) -> tuple[ConvChain, list[dict[str, Any]]]:
    """Depth: block i (narrow conv i + 1) followed by its extra blocks (copies or identities); each layer
    report learns its targets. Returns the chain and a line per block."""
    weights, biases, slopes = [narrow.weights[0]], [narrow.biases[0]], [narrow.slopes[0]]
    blocks: list[dict[str, Any]] = []
    layers[0].targets.append("body.0")
    prelu = narrow.slopes[0] is not None
    for block in range(keep_body):
        places = 1 if num_conv <= keep_body else num_conv // keep_body + (block < num_conv % keep_body)
        for copy in range(places):
            target = f"body.{2 * (len(weights))}"
            conv = block + 1
            if copy == 0 or deepen == "duplicate":
                weights.append(narrow.weights[conv].clone())
                biases.append(narrow.biases[conv].clone())
                slopes.append(None if narrow.slopes[conv] is None else narrow.slopes[conv].clone())
                layers[conv].targets.append(target)
                kind = "kept" if copy == 0 else "copy"
            else:
                w, b, s = identity_block(num_feat, narrow.weights[conv], prelu)
                weights.append(w)
                biases.append(b)
                slopes.append(s)
                kind = "identity"
            blocks.append({"target": target, "source": layers[conv].layer, "kind": kind})
    weights.append(narrow.weights[-1])
    biases.append(narrow.biases[-1])
    layers[-1].targets.append(f"body.{2 * (len(weights) - 1)}")
    return ConvChain(weights, biases, slopes, narrow.upscale), blocks
