"""Finding, checking, reading and writing images the way basicsr's data pipeline will read them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.protocol import UserError
from engine.units import IMAGE_SUFFIXES

# Pillow refuses images above ~179 Mpx as a decompression-bomb guard; satellite or panorama
# sources can be that large, and they are the user's own files.
Image.MAX_IMAGE_PIXELS = None


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def iter_images(folder: Path, *, recursive: bool = False) -> Iterator[Path]:
    """Image files under folder, sorted by relative path (hidden files and folders skipped)."""
    if recursive:
        found = []
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(Path(root, name) for name in files if is_image_name(name))
        yield from sorted(found, key=lambda p: p.relative_to(folder).as_posix())
    else:
        yield from sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p.name))


def require_folder(folder: Path, what: str = "image folder") -> Path:
    """The folder itself, or a UserError that says what is wrong with it."""
    if not folder.exists():
        raise UserError(f"{what} {folder} does not exist", "check the path (relative paths start from "
                        f"{Path.cwd()})")
    if not folder.is_dir():
        raise UserError(f"{what} {folder} is a file, not a folder", "give the folder that holds the images")
    return folder


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    """iter_images of an existing folder; a UserError when it holds no image at all."""
    images = list(iter_images(require_folder(folder), recursive=recursive))
    if not images:
        nested = not recursive and any(iter_images(folder, recursive=True))
        hint = ("its images are in sub-folders: recurse into them" if nested
                else f"put images ({', '.join(IMAGE_SUFFIXES)}) there or pick another folder")
        raise UserError(f"no images in {folder}", hint)
    return images


@dataclass(frozen=True)
class ImageCheck:
    """What reading one file found: size when readable, else why not."""

    path: Path
    width: int = 0
    height: int = 0
    channels: int = 0
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def _load_problem(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "unreadable: not an image file Pillow or OpenCV can decode"
    return f"{'truncated' if 'truncated' in str(error).lower() else 'unreadable'}: {error}"


def check_image(path: Path, *, min_size: int = 0) -> ImageCheck:
    """Decode the whole file (a header alone hides truncation) and compare its short side to min_size.

    A JPEG is decoded at 1/8 scale: libjpeg still reads every entropy-coded byte, so a torn or corrupt file
    fails as in a full decode, at about a third of its cost.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = len(image.getbands())
            if image.format == "JPEG":
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except (OSError, SyntaxError, ValueError) as error:  # UnidentifiedImageError is an OSError
        return ImageCheck(path, problem=_load_problem(error))
    if min(width, height) < min_size:
        return ImageCheck(path, width, height, channels,
                          problem=f"too small: {width}x{height}, short side below {min_size}")
    return ImageCheck(path, width, height, channels)


def decodes_to_the_end(path: Path) -> str:
    """'' when OpenCV will read the whole file, else why not; the check of a file about to be read by OpenCV.

    libpng stops OpenCV on a torn PNG (imread returns None), so a PNG needs no decode here. libjpeg only
    warns and pads a torn JPEG with grey; a JPEG that ends in its EOI marker is whole (0xFF in scan data
    is always stuffed, so FF D9 ends only the image), else (data after EOI, or cut short) check_image
    decodes it. Anything else gets check_image too.
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 2))
            tail = handle.read(2)
    except OSError as error:
        return f"unreadable: {error}"
    if magic == b"\x89PNG\r\n\x1a\n":  # by content, not by name: a JPEG called .png is a JPEG to OpenCV
        return ""
    if magic.startswith(b"\xff\xd8") and tail == b"\xff\xd9":
        return ""
    return check_image(path).problem


def read_rgb(path: Path) -> np.ndarray:
    """uint8 HxWx3 RGB; grey images are repeated into three channels, alpha is dropped, 16 bits become 8.

    The file is decoded in full by Pillow first: OpenCV fills a truncated JPEG with grey and says nothing.
    """
    found = check_image(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if found.ok else None
    if image is None:
        raise UserError(f"{path} is not a readable image ({found.problem or 'OpenCV cannot decode it'})",
                        "replace it with a complete PNG/JPEG image, or remove it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write uint8 RGB (or grey) as PNG, through a temporary name so a kill leaves no torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(encoded.tobytes())
    partial.replace(path)
