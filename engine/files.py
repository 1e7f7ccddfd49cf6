"""Files a crash must never tear, who may read them, content hashes, and the data files the package ships."""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

# A run is private to its user (folders 0700, files 0600) whatever the umask, since a world-writable
# training_states/ lets another local user plant what the next resume reads. SRCOCKPIT_SHARE=group opts in
# to letting the group read it (0750 / 0640); nobody else ever gets access.
SHARE_ENV = "SRCOCKPIT_SHARE"


def run_umask() -> int:
    return 0o027 if os.environ.get(SHARE_ENV, "").strip().lower() == "group" else 0o077


def dir_mode() -> int:
    return 0o777 & ~run_umask()


def file_mode() -> int:
    return 0o666 & ~run_umask()


def restrict_new_files() -> None:
    """Set the process umask to the run's: what basicsr, torch, TensorBoard and OpenCV create gets it too."""
    os.umask(run_umask())


def private_dir(path: Path) -> Path:
    """Create a folder (and its missing parents) with the run's mode, and narrow it if it was wider."""
    path.mkdir(parents=True, exist_ok=True, mode=dir_mode())
    if os.stat(path).st_mode & 0o777 != dir_mode():
        os.chmod(path, dir_mode())
    return path


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
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode()), "wb") as handle:
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
