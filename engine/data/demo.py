"""The demo's data, from the photos inside the scikit-image wheel (offline, nothing downloaded).

    root/train/<name>.png          10 images (design.md section 7): the colour photos retina,
                                   immunohistochemistry, hubble_deep_field and the grey textures brick,
                                   grass, gravel, camera, moon, clock, coins repeated into RGB
    root/train/meta_info.txt       Real-ESRGAN format, paths relative to root/train
    root/train/GTmod12/<name>.png  the same 10 photos as pairs for a PairedImageDataset
    root/train/LRbicx<scale>/...   (options/tiny_cpu.yml trains on them)
    root/val/GTmod12/<name>.png    5 colour photos not in train: astronaut, coffee, chelsea, rocket,
    root/val/LRbicx<scale>/...     motorcycle (left view of stereo_motorcycle); basicsr's MATLAB bicubic

Only images that scikit-image ships in its wheel are used (eagle, kidney, lily, skin need pooch and a
download: not used). A build ends by writing demo_x<scale>.json; a later call that finds it, and
every file it lists, returns at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.images import write_png
from engine.data.meta_info import write_meta_info, write_text_atomic
from engine.protocol import ProgressFn, UserError

VERSION = 2  # 2: the training pairs of options/tiny_cpu.yml
TRAIN_COLOUR = ("retina", "immunohistochemistry", "hubble_deep_field")
TRAIN_GREY = ("brick", "grass", "gravel", "camera", "moon", "clock", "coins")
TRAIN_NAMES = TRAIN_COLOUR + TRAIN_GREY
VAL_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")


def load_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as uint8 HxWx3 RGB (grey repeated, alpha dropped)."""
    from skimage import data

    loaders: dict[str, Callable[[], np.ndarray]] = {"motorcycle": lambda: data.stereo_motorcycle()[0]}
    loader = loaders.get(name) or getattr(data, name, None)
    if loader is None:
        raise UserError(f"scikit-image has no sample image {name!r}")
    image = np.asarray(loader())
    if image.dtype != np.uint8:
        raise UserError(f"sample image {name!r} is {image.dtype}, not 8-bit")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


@dataclass(frozen=True)
class DemoData:
    root: Path
    scale: int
    train_dir: Path
    meta_info: Path
    val_gt: Path
    val_lq: Path
    train_gt: Path
    train_lq: Path
    train_names: tuple[str, ...] = TRAIN_NAMES
    val_names: tuple[str, ...] = VAL_NAMES

    @property
    def marker(self) -> Path:
        return self.root / f"demo_x{self.scale}.json"

    def files(self) -> list[Path]:
        return ([self.train_dir / f"{n}.png" for n in self.train_names] + [self.meta_info]
                + [d / f"{n}.png" for d in (self.train_gt, self.train_lq) for n in self.train_names]
                + [d / f"{n}.png" for d in (self.val_gt, self.val_lq) for n in self.val_names])

    def options(self) -> dict[str, dict[str, str]]:
        """The dataset paths for an options file's datasets.train and datasets.val."""
        return {"train": {"dataroot_gt": str(self.train_dir), "meta_info": str(self.meta_info)},
                "val": {"dataroot_gt": str(self.val_gt), "dataroot_lq": str(self.val_lq)}}

    def is_built(self) -> bool:
        try:
            marker = json.loads(self.marker.read_text())
        except (FileNotFoundError, ValueError):
            return False
        return marker.get("version") == VERSION and all(p.is_file() for p in self.files())


def demo_paths(root: Path, scale: int = 2) -> DemoData:
    """Where build_demo_data puts (or put) everything; builds nothing."""
    root = Path(root)
    return DemoData(root, scale, root / "train", root / "train" / "meta_info.txt",
                    root / "val" / "GTmod12", root / "val" / f"LRbicx{scale}",
                    root / "train" / "GTmod12", root / "train" / f"LRbicx{scale}")


def demo_dataset_options(root: Path, scale: int = 2) -> dict[str, dict[str, str]]:
    """{'train': {dataroot_gt, meta_info}, 'val': {dataroot_gt, dataroot_lq}} for the demo data."""
    return demo_paths(root, scale).options()


def build_demo_data(root: Path, *, scale: int = 2, force: bool = False,
                    progress: ProgressFn | None = None) -> DemoData:
    """Write the demo's train folder, meta_info, training pairs and validation pairs under root (idempotent)."""
    demo = demo_paths(root, scale)
    if demo.is_built() and not force:
        if progress:
            progress(1, 1, "demo data already built")
        return demo
    from engine.data.valset import write_pairs  # imports basicsr (torch): only when building

    total = 2 * len(TRAIN_NAMES) + len(VAL_NAMES)
    for done, name in enumerate(TRAIN_NAMES, 1):
        target = demo.train_dir / f"{name}.png"
        if force or not target.is_file():
            write_png(target, load_photo(name))
        if progress:
            progress(done, total, f"train {name}")
    write_meta_info(demo.meta_info, sorted(f"{name}.png" for name in TRAIN_NAMES))

    def step(offset: int, label: str) -> ProgressFn:
        def report(done: int, _total: int, message: str) -> None:
            if progress:
                progress(offset + done, total, f"{label} {message}")
        return report

    write_pairs(((name, load_photo(name)) for name in TRAIN_NAMES), demo.train_dir, scale=scale,
                count=len(TRAIN_NAMES), progress=step(len(TRAIN_NAMES), "train pairs"))
    write_pairs(((name, load_photo(name)) for name in VAL_NAMES), demo.root / "val", scale=scale,
                count=len(VAL_NAMES), progress=step(2 * len(TRAIN_NAMES), "val"))
    write_text_atomic(demo.marker, json.dumps({"version": VERSION, "scale": scale, "train": list(TRAIN_NAMES),
                                               "val": list(VAL_NAMES)}, indent=2) + "\n")
    return demo
