"""torch -> ONNX (opset 17, static or dynamic H/W), checked against onnxruntime; MACs from conv shapes."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch

from engine.protocol import UserError

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
# ORT CPU and torch agree to ~3e-7 on this network (design.md section 8); 1e-5 leaves room for
# other CPUs' summation order, and still catches a wrong op, layout or scale.
MAX_ONNX_ERROR = 1e-5


def export_onnx(net: torch.nn.Module, path: Path, size: tuple[int, int] | None, *,
                example_size: tuple[int, int] = (32, 48), opset: int = OPSET) -> Path:
    """Write net as one self-contained ONNX file: input 1x3xHxW at `size`, or dynamic H and W when None.

    The dynamo exporter is used (no Constant-node Resize scales); any Constant node left is made an
    initializer anyway, because the QDQ quantizer would quantize it (design.md section 8).
    """
    height, width = size or example_size
    channels = _input_channels(net)
    example = torch.rand(1, channels, height, width, generator=torch.Generator().manual_seed(0))
    dynamic_shapes = None
    if size is None:
        dynamic_shapes = {"x": {2: torch.export.Dim("height", min=2), 3: torch.export.Dim("width", min=2)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    chatter = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter), \
            _quiet_loggers("onnxscript", "torch.onnx", "torch.export"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net.eval(), (example,), None, opset_version=opset, dynamo=True,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=dynamic_shapes, verbose=False)
    model = program.model_proto
    constants_to_initializers(model)
    if size is None:
        _name_dynamic_dims(model)
    onnx.checker.check_model(model)
    _save(model, path)
    return path


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """The exporter logs advice (opset conversion fallback) through loggers that may print anywhere."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _input_channels(net: torch.nn.Module) -> int:
    first = next(module for module in net.modules() if isinstance(module, torch.nn.Conv2d))
    return first.in_channels


def _name_dynamic_dims(model: onnx.ModelProto) -> None:
    """Give the dynamic dims stable, readable names (the exporter picks 's0', 's1'...)."""
    names = {}
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for index, label in ((2, "height"), (3, "width")):
            param = dims[index].dim_param
            if param and value.name == INPUT_NAME:
                names[param] = label
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
            elif dim.dim_param and value.name == OUTPUT_NAME:
                dim.dim_param = f"out_{dim.dim_param}"


def _save(model: onnx.ModelProto, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    onnx.save_model(model, str(partial), save_as_external_data=False)
    partial.replace(path)


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Move every tensor-valued Constant node into graph.initializer; the number moved."""
    kept, moved = [], 0
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
            moved += 1
        else:
            kept.append(node)
    if moved:
        del model.graph.node[:]
        model.graph.node.extend(kept)
    return moved


def op_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def reshape_static_model(source: Path, target: Path, size: tuple[int, int], upscale: int) -> Path:
    """A copy of a static model (float or QDQ) with another input size: same weights, same scales.

    Valid for SRVGGNetCompact, whose ops (Conv with same padding, PRelu, DepthToSpace, Resize by
    scales, Add) are all size-agnostic; shapes are re-inferred and checked.
    """
    model = onnx.load(str(source))
    height, width = size
    for value, (h, w) in ((model.graph.input[0], (height, width)),
                          (model.graph.output[0], (height * upscale, width * upscale))):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = h, w
    for node in model.graph.node:
        if node.op_type == "Resize" and len(node.input) > 3 and node.input[3]:
            raise UserError(f"{source.name}: Resize uses fixed output sizes; cannot re-size this model")
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    _save(model, target)
    return target


def torch_outputs(net: torch.nn.Module, batch: list[np.ndarray]) -> list[np.ndarray]:
    with torch.inference_mode():
        return [net(torch.from_numpy(x)).numpy() for x in batch]


def max_abs_error(net: torch.nn.Module, path: Path, batch: list[np.ndarray]) -> float:
    """Largest |torch - onnxruntime CPU| over every output element of every input in batch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x, expected in zip(batch, torch_outputs(net, batch), strict=True):
        got = session.run(None, {INPUT_NAME: x})[0]
        if got.shape != expected.shape:
            raise UserError(f"{path.name}: onnxruntime output shape {got.shape} differs from torch "
                            f"{expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def verify_onnx(net: torch.nn.Module, path: Path, batch: list[np.ndarray],
                limit: float = MAX_ONNX_ERROR) -> float:
    """max_abs_error, or a UserError when it is above limit (or not a number)."""
    error = max_abs_error(net, path, batch)
    if not error <= limit:
        raise UserError(f"{path.name} disagrees with torch: max abs error {error:.3g} > {limit:g}",
                        "the export is wrong for this torch/onnx version; report it with the versions")
    return error


def conv_macs(net: torch.nn.Module, size: tuple[int, int]) -> int:
    """Multiply-accumulates of every Conv2d for one frame at size (HxW of the input).

    Spatial sizes follow the conv arithmetic (every conv of SRVGGNetCompact works at the input
    size); PReLU, DepthToSpace, the nearest upsample and the Add are not counted (no MACs).
    """
    height, width = size
    total = 0
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (module.kernel_size, module.stride, module.padding,
                                                      module.dilation)
            if isinstance(module.padding, str):
                raise UserError("convs with string padding are not supported by the MAC counter")
            out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
            out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            total += out_h * out_w * module.out_channels * (module.in_channels // module.groups) * kh * kw
            height, width = out_h, out_w
    return total

