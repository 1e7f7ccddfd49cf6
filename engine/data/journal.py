"""A data job's record of the images it has finished, so that the job killed (SIGKILL, a closed laptop) and run
again skips them instead of starting over.

One JSON line per finished image, appended and flushed as soon as the image is done; the first line holds the
job's settings, and a journal left by a run with other settings is started afresh. An entry counts only while
its image keeps the size and modification time it had when it was recorded, so an image replaced meanwhile is
done again. A torn last line (the kill came mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

NAME = ".srcockpit-journal.jsonl"  # hidden: basicsr's scandir and Real-ESRGAN's glob('*') skip it
# A progress message for an image a killed earlier run had finished: a reader's rate and ETA leave it out.
RESUMED = "resumed: "


def _stamp(path: Path) -> list[int]:
    found = os.stat(path)
    return [found.st_size, found.st_mtime_ns]


def _normal(settings: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(settings, default=str))


class Journal:
    """The finished images of one job; `resumed` tells whether a former run's entries were kept."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.reused = 0  # entries done() handed back: work this run did not redo
        settings = _normal(settings)
        lines = self._read()
        self.resumed = bool(lines) and lines[0] == {"settings": settings}
        if self.resumed:
            for line in lines[1:]:
                if isinstance(line.get("image"), str) and isinstance(line.get("stamp"), list):
                    self.entries[line["image"]] = line
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a" if self.resumed else "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if not self.resumed:
            self._write({"settings": settings})

    def _read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return []
        lines = []
        for raw in text.splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines

    def _write(self, line: dict[str, Any]) -> None:
        self._handle.write(json.dumps(line, default=str) + "\n")
        self._handle.flush()  # in the page cache at once: a SIGKILL of this process loses nothing written

    def done(self, image: Path) -> dict[str, Any] | None:
        """What was recorded for this image, while it is the same file; None when it is still to do."""
        entry = self.entries.get(os.path.abspath(image))  # the same file whether named relative or absolute
        if entry is None:
            return None
        try:
            same = entry["stamp"] == _stamp(image)
        except OSError:
            return None
        self.reused += same
        return entry if same else None

    def record(self, image: Path, **fields: Any) -> None:
        self._write({"image": os.path.abspath(image), "stamp": _stamp(image), **fields})

    def close(self) -> None:
        self._handle.close()

    def remove(self) -> None:
        """The job is complete: its journal goes."""
        self.close()
        self.path.unlink(missing_ok=True)


def staging_folder(out: Path) -> Path:
    """Where a job builds `out` until it is complete: a hidden sibling, so a killed job leaves no half output."""
    return out.parent / f".{out.name}.partial"


def swap_in(staging: Path, out: Path) -> None:
    """The finished staging folder becomes out; a former output there (--force) is removed only after."""
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)  # links and copies only: the sources are never inside an output
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
