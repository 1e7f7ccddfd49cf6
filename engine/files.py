"""Files a crash must never tear, who may read them, content hashes, the data files the package ships, and a
full disk told in words."""

from __future__ import annotations

import errno
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

from engine.protocol import UserError

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


# A write that failed without an errno (cv2/libpng says only "Write Error") is put down to the disk when it
# has less than this left: the writer may already have removed its partial file.
ALMOST_FULL = 64 << 20
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def existing_folder(path: Path) -> Path:
    """path, or its nearest ancestor that exists (a folder about to be made lives on its parent's disk)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path if path.is_dir() else path.parent


def free_bytes(folder: Path) -> int:
    """Space an unprivileged writer may still use on folder's disk (os.statvfs: microseconds)."""
    try:
        stats = os.statvfs(folder)
    except FileNotFoundError:
        stats = os.statvfs(existing_folder(folder))
    return stats.f_bavail * stats.f_frsize


def mount_point(folder: Path) -> Path:
    path = existing_folder(folder)
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def size_text(count: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while count >= 1024 and index < len(units) - 1:
        count /= 1024
        index += 1
    return f"{count:.0f} B" if index == 0 else f"{count:.1f} {units[index]}"


def disk_words(folder: Path) -> str:
    """'the disk of FOLDER (mounted at M, N MiB free)', for every message about a full disk."""
    return f"the disk of {folder} (mounted at {mount_point(folder)}, {size_text(free_bytes(folder))} free)"


class DiskFull(UserError):
    """A write failed because folder's disk is full: one message naming the disk and its free space. `cause`
    is named only where the disk was inferred (a writer that gave no errno)."""

    def __init__(self, folder: Path, cause: BaseException | None = None) -> None:
        detail = f" ({cause.__class__.__name__}: {cause})" if cause is not None else ""
        super().__init__(f"no space left on {disk_words(folder)}{detail}",
                         f"free space on {mount_point(folder)} (or move the run to a larger disk); "
                         "`srcockpit resume` then continues the run from its newest checkpoint")
        self.folder = folder


def _errnos(error: BaseException) -> set[int | None]:
    """The errno of error and of every exception it wraps: torch.save's RuntimeError ("unexpected pos")
    carries the OSError(ENOSPC) of the file it wrote only as its context."""
    found: set[int | None] = set()
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found.add(getattr(error, "errno", None))
        error = error.__cause__ or error.__context__
    return found


def disk_full(error: BaseException, folder: Path) -> DiskFull | None:
    """The DiskFull that error stands for, or None when the disk of folder is not the cause."""
    if isinstance(error, DiskFull):
        return error
    try:
        if _errnos(error) & FULL_ERRNOS:
            return DiskFull(folder)
        if isinstance(error, OSError) and error.errno is None and free_bytes(folder) < ALMOST_FULL:
            return DiskFull(folder, error)
    except OSError:  # the folder itself is gone: not a disk we can speak of
        return None
    return None


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary name, fsynced, then renamed over the target (and the folder fsynced),
    so a kill leaves either the old file or the new one, never half of one. A full disk leaves no partial
    file behind and raises DiskFull."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode()), "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        full = disk_full(error, path.parent)
        if full is not None:
            raise full from error
        raise
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
