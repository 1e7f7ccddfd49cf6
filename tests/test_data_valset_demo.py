"""Set5-style validation sets (basicsr's MATLAB bicubic) and the demo data from scikit-image photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

from engine.data.demo import TRAIN_NAMES, VAL_NAMES, build_demo_data, demo_dataset_options, demo_paths
from engine.data.meta_info import check_datasets
from tui.cli import main


def rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_valset_cli_shapes_and_lr_equal_basicsr_imresize(tmp_path, capsys):
    from engine.compat import load_basicsr

    load_basicsr()
    from basicsr.utils.matlab_functions import imresize

    hr = tmp_path / "hr"
    hr.mkdir()
    photos = {"coffee": skdata.coffee()[:101, :143], "chelsea": skdata.chelsea()[13:90, 20:157],
              "moon": np.repeat(skdata.moon()[:60, :75, None], 3, axis=2)}
    for name, image in photos.items():
        cv2.imwrite(str(hr / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    assert main(["data", "valset", str(hr), "-o", str(tmp_path / "Set3"), "-q"]) == 0
    assert "3 pairs" in capsys.readouterr().out
    for name, image in photos.items():
        gt = rgb(tmp_path / "Set3" / "GTmod12" / f"{name}.png")
        lr = rgb(tmp_path / "Set3" / "LRbicx2" / f"{name}.png")
        h, w = (image.shape[0] // 12) * 12, (image.shape[1] // 12) * 12
        assert gt.shape == (h, w, 3) and lr.shape == (h // 2, w // 2, 3)
        assert np.array_equal(gt, image[:h, :w])  # GTmod12: crop to a multiple of 12, top-left kept
        reference = imresize(gt.astype(np.float64) / 255.0, 0.5)  # basicsr's MATLAB-style bicubic
        expected = np.clip(np.round(reference * 255.0), 0, 255).astype(np.uint8)
        assert np.array_equal(lr, expected)
        # not OpenCV's bicubic (no antialiasing): the two differ visibly on real photos
        assert np.abs(lr.astype(int) - cv2.resize(gt, (w // 2, h // 2), interpolation=cv2.INTER_CUBIC)).max() > 2

    assert main(["data", "valset", str(hr), "-o", str(tmp_path / "Set3"), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    (hr / "coffee.png").unlink()
    assert main(["data", "valset", str(hr), "-o", str(tmp_path / "Set3"), "-q", "--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "Set3" / "LRbicx2").iterdir()) == ["chelsea.png", "moon.png"]
    assert main(["data", "valset", str(tmp_path / "missing"), "-o", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_demo_data_layout_reuse_and_options(tmp_path):
    root = tmp_path / "demo"
    steps: list[tuple[int, int, str]] = []
    demo = build_demo_data(root, progress=lambda done, total, message: steps.append((done, total, message)))
    # a real build walks every photo (how long it takes is a benchmark figure, not a test assertion)
    # every training photo twice (the folder + meta_info, then the GTmod12/LRbicx2 pairs), every validation photo
    total = 2 * len(TRAIN_NAMES) + len(VAL_NAMES)
    assert [done for done, _, _ in steps] == list(range(1, total + 1))

    assert demo == demo_paths(root)
    assert sorted(p.stem for p in demo.train_dir.glob("*.png")) == sorted(TRAIN_NAMES)
    assert demo.meta_info.read_text() == "".join(f"{n}.png\n" for n in sorted(TRAIN_NAMES))
    assert not set(TRAIN_NAMES) & set(VAL_NAMES) and len(VAL_NAMES) == 5
    for name in TRAIN_NAMES:
        image = rgb(demo.train_dir / f"{name}.png")
        assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 256
    assert np.array_equal(rgb(demo.train_dir / "retina.png"), skdata.retina())
    brick = rgb(demo.train_dir / "brick.png")
    assert np.array_equal(brick[:, :, 0], skdata.brick()) and np.array_equal(brick[:, :, 2], skdata.brick())
    for name in VAL_NAMES:
        gt, lq = rgb(demo.val_gt / f"{name}.png"), rgb(demo.val_lq / f"{name}.png")
        assert gt.shape[0] % 12 == 0 and gt.shape[1] % 12 == 0
        assert lq.shape == (gt.shape[0] // 2, gt.shape[1] // 2, 3)
        assert gt.std() > 20  # a photo, not a blank

    options = demo_dataset_options(root)
    assert options == {"train": {"dataroot_gt": str(root / "train"), "meta_info": str(demo.meta_info)},
                       "val": {"dataroot_gt": str(root / "val" / "GTmod12"),
                               "dataroot_lq": str(root / "val" / "LRbicx2")}}
    opt = {"datasets": {"train": {"name": "demo", "type": "RealESRGANDataset", **options["train"]},
                        "val": {"name": "demo_val", "type": "PairedImageDataset", **options["val"]}}}
    reports = check_datasets(opt)
    assert [(r.ok, r.count) for r in reports] == [(True, 10), (True, 5)]

    # idempotent: a second call finds the finished build, builds nothing and writes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in demo.files()}
    steps.clear()
    assert build_demo_data(root, progress=lambda done, total, message: steps.append((done, total, message))) == demo
    assert steps == [(1, 1, "demo data already built")]
    assert {p: p.stat().st_mtime_ns for p in demo.files()} == mtimes
    # an unfinished build (a file lost) is completed, not trusted
    (demo.val_lq / "rocket.png").unlink()
    assert not demo.is_built()
    build_demo_data(root)
    assert demo.is_built() and (demo.val_lq / "rocket.png").is_file()


def test_an_unfinished_demo_of_an_older_srcockpit_is_refused(tmp_path, capsys):
    """demo.json before version 2 trained stage 1 on whole photos: its data step lacks the crops stage 1 reads
    now, so an unfinished one is refused with a way out; a finished one is still shown as it is."""
    import json

    from engine.demo import Demo

    root = tmp_path / "old-demo"
    root.mkdir()
    (root / "demo.json").write_text(json.dumps({"fast": True, "steps": {"data": {"train_images": 10}}}))
    assert main(["--no-ui", "demo", "--fast", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "unfinished demo of an older srcockpit" in err and "delete that folder" in err
    finished = {name: {"seconds": 1.0} for name, _, _ in Demo(tmp_path / "new", fast=True).steps()}
    (root / "demo.json").write_text(json.dumps({"fast": True, "steps": finished}))
    assert Demo(root, fast=True).record["steps"] == finished
