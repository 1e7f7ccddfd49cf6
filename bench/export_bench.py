"""Export: onnxruntime CPU latency per 270x480 frame, float and a8w8 QDQ, and torch with channels-last
weights (how srcockpit scores checkpoints), against torch eager.

The ONNX files come from engine/export's own functions (export_onnx, quantize_qdq calibrated on the
built-in photos) for a 32-feature / 32-conv x2 SRVGGNetCompact with seeded random weights (latency
does not depend on the weights' values). Each engine runs the same frames, interleaved.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Row, interleave, paired_ratio

SIZE = (270, 480)


def export_latency(folder: Path, *, quick: bool, log: Callable[[str], None]) -> list[Row]:
    import onnxruntime as ort
    import torch

    from engine.export.calibration import builtin_images, make_frames
    from engine.export.onnx_export import INPUT_NAME, export_onnx
    from engine.export.quantize import psnr, quantize_qdq
    from engine.srvgg import SRVGGArch

    torch.manual_seed(0)
    net = SRVGGArch(num_feat=32, num_conv=32, upscale=2).build().eval()
    started = time.perf_counter()
    float_model = export_onnx(net, folder / "srvgg_32_32_x2.onnx", SIZE)
    frames = make_frames(builtin_images(), SIZE, 4 if quick else 8)
    qdq_model = quantize_qdq(float_model, folder / "srvgg_32_32_x2_a8w8.onnx", frames, "a8w8")
    log(f"  export + a8w8 quantization: {time.perf_counter() - started:.1f} s")
    sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                for name, path in (("float", float_model), ("a8w8", qdq_model))}
    frame = frames[0]
    reference = net(torch.from_numpy(frame)).detach().numpy()
    quality = {name: psnr(reference, session.run(None, {INPUT_NAME: frame})[0]) for name, session in sessions.items()}
    repeats = 1 if quick else 2

    def timed(fn: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            fn()  # warm (first run allocates)
            started = time.perf_counter()
            for _ in range(repeats):
                fn()
            return (time.perf_counter() - started) / repeats

        return run

    tensor = torch.from_numpy(frame)

    def eager() -> object:
        with torch.inference_mode():
            return net(tensor)

    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)  # how rank, report and validation score

    def eager_channels_last() -> object:
        with torch.inference_mode():
            return net_cl(tensor)

    variants = {"torch eager": timed(eager), "torch channels-last": timed(eager_channels_last)}
    for name, session in sessions.items():
        variants[f"onnxruntime {name}"] = timed(lambda s=session: s.run(None, {INPUT_NAME: frame}))
    found = interleave(variants, 2 if quick else 3, log)
    cl = found["torch channels-last"]
    rows = [Row("5 export", "torch with channels-last weights (how rank, report and validation score)",
                paired_ratio(cl, found["torch eager"], higher_is_faster=False), "torch eager (float32)",
                f"{_median(cl) * 1000:.0f} vs {_median(found['torch eager']) * 1000:.0f} ms per "
                f"{SIZE[0]}x{SIZE[1]} frame", [e / v for v, e in zip(cl, found["torch eager"], strict=True)],
                "ratio = default-layout time / channels-last time (> 1: channels-last faster)")]
    for name, label in (("onnxruntime float", "float"), ("onnxruntime a8w8", "a8w8")):
        ratio = paired_ratio(found[name], found["torch eager"], higher_is_faster=False)
        rows.append(Row("5 export", f"{name} QDQ" if label == "a8w8" else name, ratio, "torch eager (float32)",
                        f"{_median(found[name]) * 1000:.0f} vs {_median(found['torch eager']) * 1000:.0f} "
                        f"ms per {SIZE[0]}x{SIZE[1]} frame; PSNR vs torch {quality[label]:.1f} dB",
                        [e / v for v, e in zip(found[name], found["torch eager"], strict=True)],
                        "ratio = torch time / onnxruntime time (> 1: onnxruntime faster)"))
    return rows


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
