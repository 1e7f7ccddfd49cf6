"""Sub-images as basicsr's scripts/data_preparation/extract_subimages.py cuts and names them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from bench.data_jobs_bench import basicsr_worker
from engine.data.subimages import crop_starts, extract_subimages, subimage_name
from tui.cli import main


@pytest.mark.parametrize("length", [200, 201, 250, 399, 400, 401, 512, 1000])
@pytest.mark.parametrize(("crop", "step", "thresh"), [(400, 200, 0), (200, 100, 0), (200, 100, 50), (96, 96, 10)])
def test_crop_starts_match_basicsr(length, crop, step, thresh):
    if length < crop:
        assert crop_starts(length, crop, step, thresh) == []
        return
    space = np.arange(0, length - crop + 1, step)
    if length - (space[-1] + crop) > thresh:
        space = np.append(space, length - crop)
    assert crop_starts(length, crop, step, thresh) == space.tolist()


def test_names():
    assert subimage_name(Path("0001.png"), 1) == "0001_s001.png"
    assert subimage_name(Path("0001x2.png"), 12, strip_scale=True) == "0001_s012.png"
    assert subimage_name(Path("box2.png"), 3, strip_scale=True) == "box2_s003.png"  # basicsr would write bo_


@pytest.mark.parametrize("workers", [1, 2])
def test_same_files_and_pixels_as_basicsr(tmp_path, workers):
    src = tmp_path / "HR"
    src.mkdir()
    cv2.imwrite(str(src / "astronaut.png"), skdata.astronaut()[:330, :290, ::-1])
    cv2.imwrite(str(src / "camera.png"), skdata.camera()[:250, :410])  # grey: 2-D crops
    cv2.imwrite(str(src / "tiny.png"), skdata.camera()[:90, :90])
    cv2.imwrite(str(src / "coffee.jpg"), skdata.coffee()[:200, :260, ::-1])  # JPEG crops, as basicsr writes them
    (tmp_path / "expected").mkdir()
    for name in ("astronaut.png", "camera.png", "coffee.jpg"):
        basicsr_worker(str(src / name), {"crop_size": 128, "step": 64, "thresh_size": 20, "compression_level": 3,
                                         "save_folder": str(tmp_path / "expected")})

    result = extract_subimages(src, tmp_path / "ours", crop_size=128, step=64, thresh_size=20, workers=workers)
    expected = sorted(p.name for p in (tmp_path / "expected").iterdir())
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == expected
    assert len(expected) == result.crops == 4 * 4 + 3 * 6 + 2 * 3  # astronaut 4x4 windows, camera 3x6, coffee 2x3
    for name in expected:
        ours = cv2.imread(str(tmp_path / "ours" / name), cv2.IMREAD_UNCHANGED)
        theirs = cv2.imread(str(tmp_path / "expected" / name), cv2.IMREAD_UNCHANGED)
        assert ours.shape[:2] == (128, 128) and np.array_equal(ours, theirs)
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "expected" / name).read_bytes()
    assert result.images == 4 and [(p.name, "smaller") for p, m in result.skipped if "smaller" in m] == [
        ("tiny.png", "smaller")]
    assert result.workers == workers


def test_cli_defaults_and_errors(tmp_path, capsys):
    src = tmp_path / "HR"
    src.mkdir()
    cv2.imwrite(str(src / "0001.png"), skdata.coffee()[:, :, ::-1])  # 400x600: defaults 400/200/0
    assert main(["data", "extract-subimages", str(src), "-o", str(tmp_path / "sub"), "--workers", "1",
                 "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["0001_s001.png", "0001_s002.png"]
    assert "2 sub-images from 1 images" in capsys.readouterr().out
    assert main(["data", "extract-subimages", str(src), "-o", str(tmp_path / "sub"), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "extract-subimages", str(tmp_path / "none"), "-o", str(tmp_path / "x"), "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_paired_subimages_stay_pairs_and_list_every_photo_equally(tmp_path):
    from collections import Counter

    from engine.data.subimages import paired_subimages
    from engine.data.valset import write_pairs

    photos = [("camera", skdata.camera()[:192, :240]), ("coins", skdata.coins()[:96, :144])]
    pairs = write_pairs(((n, np.stack([p] * 3, axis=-1)) for n, p in photos), tmp_path / "pairs", scale=2)
    crops = paired_subimages(pairs.gt_dir, pairs.lq_dir, tmp_path / "crops", scale=2, gt_crop=48)
    names = sorted(p.name for p in crops.gt_dir.iterdir())
    assert names == sorted(p.name for p in crops.lq_dir.iterdir())
    assert (crops.sources, crops.crops) == (2, 7 * 9 + 3 * 5)  # 24 px steps, the last window flush with the edge
    gt = cv2.imread(str(pairs.gt_dir / "camera.png"))
    lq = cv2.imread(str(pairs.lq_dir / "camera.png"))
    top, left = 24, 192  # camera_s018: the second row's ninth and last window
    assert np.array_equal(cv2.imread(str(crops.gt_dir / "camera_s018.png")), gt[top:top + 48, left:left + 48])
    assert np.array_equal(cv2.imread(str(crops.lq_dir / "camera_s018.png")),
                          lq[top // 2:top // 2 + 24, left // 2:left // 2 + 24])
    listed = crops.meta_info.read_text().split()
    assert set(listed) == set(names)
    per_photo = Counter(name.split("_s")[0] for name in listed)
    assert per_photo == {"camera": 63, "coins": 63}  # coins' 15 crops repeated to camera's count
