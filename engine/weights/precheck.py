"""Is this file a PyTorch checkpoint at all? Answered from the file system and its first bytes, without torch.

The command handlers call it before they import torch (seconds on a loaded machine), so a typo, a folder,
an empty or a text file is refused at once; engine/srvgg.read_checkpoint calls it too, so every reader
refuses them with the same words.
"""

from __future__ import annotations

from pathlib import Path

from engine.protocol import UserError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
PICKLE_PROTO = 0x80  # the legacy format: a pickle (protocol 2 or later) comes first


def require_checkpoint_file(path: Path, what: str = "checkpoint") -> None:
    """A UserError naming path and what is wrong, unless it is a readable file that starts like a .pth."""
    if not path.exists():
        raise UserError(f"{what} not found: {path}", f"check the path (relative paths start from {Path.cwd()})")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a .pth file",
                        "give the file inside it, e.g. experiments/<run>/models/net_g_latest.pth")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise UserError(f"{what} {path} cannot be read: {error.strerror}",
                        "check its permissions (ls -l) or copy it somewhere you can read") from error
    if not head:
        raise UserError(f"{what} {path} is empty (0 bytes)",
                        "the copy or download did not finish; fetch the file again")
    if head != ZIP_MAGIC and head[0] != PICKLE_PROTO:
        kind = "a text file" if _looks_like_text(head) else "some other kind of file"
        raise UserError(f"{what} {path} is not a PyTorch checkpoint (it is {kind})",
                        "give a .pth written by torch.save, e.g. experiments/<run>/models/net_g_<iter>.pth")


def _looks_like_text(head: bytes) -> bool:
    return all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head)
