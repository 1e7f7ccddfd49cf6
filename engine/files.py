"""Files a crash must never tear, content hashes, and the data files the package ships."""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary name, fsynced, then renamed over the target (and the folder fsynced),
    so a kill leaves either the old file or the new one, never half of one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def shipped_folder(package: str, installed: str, checkout: str) -> Path:
    """A data folder of the project: `package`/`installed` in an installed wheel (setup.py maps it there),
    else, run from a source checkout, the top-level `checkout` folder the wheel is built from."""
    here = Path(str(resources.files(package)))
    return here / installed if (here / installed).is_dir() else here.parent / checkout
