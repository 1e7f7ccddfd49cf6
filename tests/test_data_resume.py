"""The data jobs killed halfway (SIGKILL, through the real command line) and run again: the images the killed run
had finished are not done again, and the output is the same as an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

from engine.protocol import read_events
from tests.conftest import REPO, srcockpit, wait_for

COUNT = 60


def write_copies(folder: Path, count: int, suffix: str, size: int) -> list[Path]:
    """count files of one smooth photo (size x size), as separate images: a data job does each in turn."""
    folder.mkdir(parents=True)
    photo = cv2.resize(skdata.astronaut()[:, :, ::-1], (size, size), interpolation=cv2.INTER_CUBIC)
    encoded = cv2.imencode(suffix, photo)[1].tobytes()
    paths = [folder / f"{index:04d}{suffix}" for index in range(count)]
    for path in paths:
        path.write_bytes(encoded)
    return paths


def progress(job: Path) -> list[dict]:
    events = job / "cockpit" / "events.jsonl"
    return [e for e in read_events(events) if e["type"] == "progress"] if events.is_file() else []


def result(job: Path) -> dict:
    return next(e for e in read_events(job / "cockpit" / "events.jsonl") if e["type"] == "result")


def kill_halfway(args: list[str], job: Path, cwd: Path, phase: str = "") -> int:
    """Run `srcockpit data ARGS --job JOB`, SIGKILL it once its progress passes half of its images; the
    number of images it had reported done."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "tui.cli", "data", *args, "--job", str(job), "-q"], cwd=cwd,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def halfway() -> bool:
        assert process.poll() is None, process.stderr.read().decode()  # finished before half: no kill to test
        return any(e["done"] >= COUNT // 2 and e["message"].startswith(phase) for e in progress(job))

    try:
        wait_for(halfway, timeout=120, what="half of the images done")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    done = max(e["done"] for e in progress(job) if e["message"].startswith(phase))
    assert COUNT // 2 <= done < COUNT
    return done


def files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if not p.name.startswith(".")}


def test_extract_subimages_resumes_after_sigkill(tmp_path):
    write_copies(tmp_path / "HR", COUNT, ".png", 192)
    args = ["extract-subimages", "HR", "-o", "sub", "--crop-size", "32", "--step", "16", "--workers", "1"]
    done = kill_halfway(args, tmp_path / "job1", tmp_path)
    assert not (tmp_path / "sub").exists()  # a half output never has the output's name
    before = files(tmp_path / ".sub.partial")

    printed = srcockpit("data", *args, "--job", str(tmp_path / "job2"), "-q", cwd=tmp_path).stdout
    record = result(tmp_path / "job2")
    assert done <= record["resumed"] < COUNT and record["images"] == COUNT
    assert f"{record['resumed']} images done by a killed earlier run" in printed
    after = files(tmp_path / "sub")
    assert len(after) == record["crops"] == COUNT * 11 * 11
    per_image = {}
    for name, mtime in after.items():
        image = name.split("_s")[0]
        per_image[image] = per_image.get(image, True) and before.get(name) == mtime
    assert sum(per_image.values()) == record["resumed"]  # exactly the resumed images' crops are untouched
    resumed = [e["message"].startswith("resumed: ") for e in progress(tmp_path / "job2") if e["done"]]
    assert resumed[0] and not resumed[-1]
    assert not (tmp_path / ".sub.partial").exists() and not list((tmp_path / "sub").glob(".*"))
    image = cv2.imread(str(tmp_path / "HR" / "0000.png"))
    for name, (top, left) in (("0000_s001.png", (0, 0)), (f"{COUNT - 1:04d}_s121.png", (160, 160))):
        crop = np.ascontiguousarray(image[top: top + 32, left: left + 32])
        assert (tmp_path / "sub" / name).read_bytes() == cv2.imencode(".png", crop, [cv2.IMWRITE_PNG_COMPRESSION,
                                                                                     3])[1].tobytes()


def test_subset_resumes_its_checks_after_sigkill(tmp_path):
    write_copies(tmp_path / "DIV2K", COUNT, ".jpg", 1400)
    args = ["subset", "--source", "DIV2K=all", "-o", "subset", "--workers", "1", "--mode", "copy"]
    done = kill_halfway(args, tmp_path / "job1", tmp_path, phase="checking")
    assert not (tmp_path / "subset").exists()

    srcockpit("data", *args, "--job", str(tmp_path / "job2"), "-q", cwd=tmp_path)
    record = result(tmp_path / "job2")
    assert record["images"] == COUNT and done <= record["resumed"] < COUNT
    checks = [e for e in progress(tmp_path / "job2") if "checking" in e["message"]]
    assert checks[0]["message"].startswith("resumed: ") and checks[-1]["message"] == "checking DIV2K"
    meta = (tmp_path / "subset" / "meta_info" / "meta_info_subset.txt").read_text().splitlines()
    assert meta == [f"DIV2K/{index:04d}.jpg" for index in range(COUNT)]
    assert sorted(p.name for p in (tmp_path / "subset" / "DIV2K").iterdir()) == [f"{i:04d}.jpg" for i in range(COUNT)]
    assert not list((tmp_path / "subset").glob(".*")) and not (tmp_path / ".subset.partial").exists()


def test_meta_info_check_resumes_after_sigkill(tmp_path):
    write_copies(tmp_path / "HR", COUNT, ".jpg", 1400)
    args = ["meta-info", "--input", "HR", "--meta-info", "meta/meta_info.txt", "--check"]
    done = kill_halfway(args, tmp_path / "job1", tmp_path)
    assert not (tmp_path / "meta" / "meta_info.txt").exists()

    args[2] = str(tmp_path / "HR")  # the same folder named absolutely: the same images
    printed = srcockpit("data", *args, "--job", str(tmp_path / "job2"), "-q", cwd=tmp_path).stdout
    record = result(tmp_path / "job2")
    assert record["images"] == COUNT and done <= record["resumed"] < COUNT
    assert f"({record['resumed']} read by a killed earlier run, not read again)" in printed
    assert (tmp_path / "meta" / "meta_info.txt").read_text() == "".join(f"HR/{i:04d}.jpg\n" for i in range(COUNT))
    assert os.listdir(tmp_path / "meta") == ["meta_info.txt"]


def test_a_torn_image_is_reported_not_cropped(tmp_path):
    """The sub-image check: OpenCV refuses a torn PNG itself; a JPEG not ending in its EOI marker is decoded."""
    folder = tmp_path / "HR"
    good = write_copies(folder, 2, ".png", 128)
    photo = np.ascontiguousarray(skdata.coffee()[:128, :128, ::-1])
    for suffix in (".png", ".jpg"):
        encoded = cv2.imencode(suffix, photo)[1].tobytes()
        (folder / f"torn{suffix}").write_bytes(encoded[: len(encoded) // 2])
    (folder / "trailer.jpg").write_bytes(encoded + b"MotionPhoto_Data")  # bytes after EOI: still whole
    (folder / "empty.jpg").write_bytes(b"")
    done = srcockpit("data", "extract-subimages", "HR", "-o", "sub", "--crop-size", "64", "--step", "64",
                     cwd=tmp_path)
    printed = done.stdout
    assert f"12 sub-images from {len(good) + 4} images" in printed and (tmp_path / "sub" / "trailer_s004.jpg").is_file()
    assert "empty.jpg: unreadable" in printed
    assert "6/6" in done.stderr and "eta 0:00:00" in done.stderr  # the bar, as it stands at the end
    assert "torn.png: truncated" in printed and "torn.jpg: truncated" in printed
