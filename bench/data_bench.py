"""Data pipeline: samples per second of RealESRGANDataset.__getitem__ + the model's feed_data degradations.

Same photos, batch and recipe; one batch of each setting in turn, each with its own random streams.
"defaults" is basicsr/Real-ESRGAN as shipped (400 px window, dense 51x51 USM); the others switch on
srcockpit's settings one by one and together. The networks are not run: this is the data side of an
iteration only (in the main process, as with num_worker_per_gpu 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Profile, Row, bench_options, interleave, write_options


def _pipeline(opt: dict[str, Any]) -> Callable[[], float]:
    """A callable that runs one batch (dataset items + feed_data) with this setting's own random streams."""
    from engine.compat import load_basicsr

    load_basicsr()
    import torch
    from basicsr.data import build_dataset
    from basicsr.models import build_model
    from basicsr.utils.misc import set_random_seed

    import engine.models  # noqa: F401
    from bench.train_bench import Stream
    from engine.options import MODEL_SUBSTITUTES
    from engine.speed import apply_speed_options

    stream = Stream()
    with stream.active():
        set_random_seed(opt["manual_seed"])
        dataset = build_dataset(opt["datasets"]["train"])
        model = apply_speed_options(build_model(dict(opt, model_type=MODEL_SUBSTITUTES[opt["model_type"]])), opt)
    batch = opt["datasets"]["train"]["batch_size_per_gpu"]
    position = [0]

    def run() -> float:
        with stream.active():
            started = time.perf_counter()
            items = [dataset[(position[0] + k) % len(dataset)] for k in range(batch)]
            position[0] += batch
            data = {key: torch.stack([item[key] for item in items]) for key in ("gt", "kernel1", "kernel2",
                                                                                "sinc_kernel")}
            model.feed_data(data)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            return batch / (time.perf_counter() - started)

    return run


def data_pipeline(profile: Profile, folder: Path, photos: Path, meta: Path, sub: tuple[Path, Path] | None,
                  log: Callable[[str], None]) -> list[Row]:
    from engine.options import load_options

    batches = 4 if profile.quick else 8
    settings: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
        "defaults": (None, None),
        "usm=separable": ({"usm": "separable"}, None),
        f"crop_pad_size={profile.crop_pad_size}": ({"crop_pad_size": profile.crop_pad_size}, None),
    }
    if sub is not None:
        settings["pre-extracted sub-images"] = (None, {"dataroot_gt": str(sub[0]), "meta_info": str(sub[1])})
        settings["ours (all three)"] = ({"usm": "separable", "crop_pad_size": profile.crop_pad_size},
                                        {"dataroot_gt": str(sub[0]), "meta_info": str(sub[1])})
    runs = {}
    for name, (speed, dataset) in settings.items():
        opt = bench_options(profile, photos, meta, name="data_" + "".join(c if c.isalnum() else "_" for c in name),
                            total_iter=1, speed=speed, dataset=dataset)
        resolved = load_options(write_options(opt, folder), root=folder, num_gpu=opt["num_gpu"])
        runs[name] = _pipeline(resolved)
        runs[name]()  # warm-up: first reads, allocator
    found = interleave(runs, batches, log)
    rows = []
    for name in settings:
        if name == "defaults":
            continue
        ratio = sum(1 / v for v in found["defaults"]) / sum(1 / v for v in found[name])  # total time ratio
        rows.append(Row("3 data", name, ratio, "RealESRGANDataset defaults",
                        f"{_median(found[name]):.1f} vs {_median(found['defaults']):.1f} samples/s",
                        [v / d for v, d in zip(found[name], found["defaults"], strict=True)]))
    return rows


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
