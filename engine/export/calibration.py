"""Calibration frames for quantization: the run's validation LR images, a folder, or built-in photos.

Every frame is float32 1x3xHxW in [0, 1] at the static export size: a random crop where the image is
large enough, else the image resized to cover the size first; every other frame is the whole image
resized, so both pixel-level detail and whole-scene statistics reach the calibrator.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from engine.data.images import list_images, read_rgb
from engine.options_yaml import load_yaml
from engine.protocol import UserError

BUILTIN = "builtin"
# scikit-image's colour photos (design.md section 6); grey ones are skipped (a 3-channel model).
BUILTIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                  "retina", "cat")


def builtin_images() -> list[tuple[str, np.ndarray]]:
    from skimage import data

    found = []
    for name in BUILTIN_PHOTOS:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            image = loader()
        except Exception:  # a photo scikit-image must fetch (pooch) is not there offline
            continue
        if image.ndim == 3 and image.shape[2] >= 3:
            found.append((f"skimage:{name}", np.ascontiguousarray(image[..., :3])))
    if not found:
        raise UserError("scikit-image's sample photos are not available", "give a folder with --calib DIR")
    return found


def run_validation_folder(checkpoint: Path) -> Path | None:
    """The LR validation folder of the basicsr run that wrote checkpoint, when it can be found.

    basicsr keeps a copy of the options file in experiments/<name>/ and the weights in
    experiments/<name>/models/; dataroot_lq paths are relative to where training was started.
    """
    run = checkpoint.resolve().parent.parent if checkpoint.parent.name == "models" else None
    if run is None:
        return None
    for options in sorted(run.glob("*.yml")) + sorted(run.glob("*.yaml")):
        try:
            loaded = load_yaml(options.read_text())
        except (OSError, yaml.YAMLError):
            continue
        datasets = loaded.get("datasets", {}) if isinstance(loaded, dict) else {}
        for key, dataset in sorted(datasets.items()):
            if not key.startswith("val") or not isinstance(dataset, dict) or not dataset.get("dataroot_lq"):
                continue
            root = Path(str(dataset["dataroot_lq"])).expanduser()
            for base in (Path.cwd(), run.parent.parent, options.parent):
                folder = root if root.is_absolute() else base / root
                if folder.is_dir():
                    return folder
    return None


def load_sources(calib: Path | str | None, checkpoint: Path) -> tuple[str, list[tuple[str, np.ndarray]]]:
    """(description, [(name, uint8 RGB image)]) for a folder, "builtin", or None (the run's val LR)."""
    if calib is None:
        folder = run_validation_folder(checkpoint)
        if folder is None:
            raise UserError(f"no calibration images: {checkpoint} is not inside a basicsr run with a "
                            "validation set (experiments/<name>/models/ beside the options .yml)",
                            "give a folder of typical frames with --calib DIR (or --calib builtin for "
                            "scikit-image's sample photos)")
        calib = folder
    if str(calib) == BUILTIN:
        return "scikit-image sample photos", builtin_images()
    folder = Path(calib).expanduser()
    images = [(path.name, read_rgb(path)) for path in list_images(folder)]
    return str(folder), images


def make_frames(images: list[tuple[str, np.ndarray]], size: tuple[int, int], count: int,
                seed: int = 0) -> list[np.ndarray]:
    """count float32 1x3xHxW frames in [0, 1]: crops and whole-image resizes, cycling over the images."""
    if count < 1:
        raise UserError(f"calibration needs at least one frame, not {count}")
    rng = np.random.default_rng(seed)
    height, width = size
    frames = []
    for index in range(count):
        _, image = images[index % len(images)]
        whole = (index // len(images)) % 2 == 1
        if whole:
            frame = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        else:
            grow = max(height / image.shape[0], width / image.shape[1], 1.0)
            if grow > 1.0:
                image = cv2.resize(image, (max(width, round(image.shape[1] * grow)),
                                           max(height, round(image.shape[0] * grow))),
                                   interpolation=cv2.INTER_CUBIC)
            top = int(rng.integers(0, image.shape[0] - height + 1))
            left = int(rng.integers(0, image.shape[1] - width + 1))
            frame = image[top:top + height, left:left + width]
        frames.append(np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0)
    return frames
