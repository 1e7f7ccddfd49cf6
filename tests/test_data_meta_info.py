"""meta_info files byte for byte as the Real-ESRGAN and basicsr scripts write them; the options check."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from engine.data.meta_info import check_datasets, generate_meta_info, require_datasets
from engine.protocol import UserError
from tui.cli import main

# Names whose order differs between naive sorts: case, digits, '-' vs '_' vs '.'.
NAMES = ["10.png", "9.png", "B.png", "a.png", "a-b.png", "a_b.png", "a.b.png", "0001.jpg", "zz.bmp"]


def realesrgan_script(inputs: list[str], roots: list[str], meta_info: str, check: bool = False) -> None:
    """The logic of xinntao/Real-ESRGAN scripts/generate_meta_info.py (main), from its source."""
    txt_file = open(meta_info, "w")  # noqa: SIM115 - as the script does
    for folder, root in zip(inputs, roots, strict=True):
        img_paths = sorted(glob.glob(os.path.join(folder, "*")))
        for img_path in img_paths:
            status = True
            if check:
                img = cv2.imread(img_path)
                if img is None:
                    status = False
            if status:
                img_name = os.path.relpath(img_path, root)
                txt_file.write(f"{img_name}\n")
    txt_file.close()


def basicsr_script(gt_folder: str, meta_info_txt: str) -> None:
    """The logic of basicsr scripts/data_preparation/generate_meta_info.py, from its source."""
    from basicsr.utils import scandir

    img_list = sorted(scandir(gt_folder))
    with open(meta_info_txt, "w") as f:
        for img_path in img_list:
            img = Image.open(os.path.join(gt_folder, img_path))
            width, height = img.size
            n_channel = {"RGB": 3, "L": 1}[img.mode]
            f.write("%s (%d,%d,%d)\n" % (img_path, height, width, n_channel))  # noqa: UP031


def write_photos(folder: Path, names: list[str], grey: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    photo = skdata.chelsea()[:, :, ::-1]
    for i, name in enumerate(names):
        crop = np.ascontiguousarray(photo[i * 5: i * 5 + 30 + i, i * 9: i * 9 + 40])
        if name in grey:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        assert cv2.imwrite(str(folder / name), crop)


def test_byte_identical_to_realesrgan_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as in the plan's command
    write_photos(tmp_path / "datasets/DF2K_subset/DIV2K_train_HR", NAMES)
    write_photos(tmp_path / "datasets/DF2K_subset/OST", ["sky_1.png", "Animal.png"])
    write_photos(tmp_path / "datasets/other/extra", ["e.png"])
    inputs = ["datasets/DF2K_subset/DIV2K_train_HR", "datasets/DF2K_subset/OST", "datasets/other/extra"]
    roots = ["datasets/DF2K_subset", "datasets/DF2K_subset", "datasets/DF2K_subset"]  # '../other/extra/e.png'

    realesrgan_script(inputs, roots, "expected.txt")
    ours = generate_meta_info([Path(p) for p in inputs], Path("ours.txt"), [Path(r) for r in roots])
    expected = Path("expected.txt").read_bytes()
    assert Path("ours.txt").read_bytes() == expected
    assert ours.count == len(NAMES) + 3
    assert expected.splitlines()[0] == b"DIV2K_train_HR/0001.jpg" and b"../other/extra/e.png" in expected

    # through the command line, with the script's own option spelling
    assert main(["data", "meta-info", "--input", *inputs, "--root", *roots, "--meta_info", "cli.txt", "-q"]) == 0
    assert Path("cli.txt").read_bytes() == expected


def test_check_leaves_out_unreadable_like_the_script(tmp_path):
    folder = tmp_path / "HR"
    write_photos(folder, ["a.png", "b.png", "c.png"])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing else")
    realesrgan_script([str(folder)], [str(tmp_path)], str(tmp_path / "expected.txt"), check=True)
    ours = generate_meta_info([folder], tmp_path / "ours.txt", [tmp_path], check=True)
    assert (tmp_path / "ours.txt").read_bytes() == (tmp_path / "expected.txt").read_bytes()
    assert [p.name for p, _ in ours.skipped] == ["broken.png"]
    # without --check the file is listed (the script does the same), so the check is what removes it
    unchecked = generate_meta_info([folder], tmp_path / "unchecked.txt", [tmp_path])
    assert "HR/broken.png" in unchecked.lines


def test_with_shape_byte_identical_to_basicsr_script(tmp_path):
    from engine.compat import load_basicsr

    load_basicsr()
    folder = tmp_path / "DIV2K_train_HR_sub"
    write_photos(folder, ["0001_s001.png", "0001_s002.png", "0002_s001.png", "grey.png"], grey=("grey.png",))
    basicsr_script(str(folder), str(tmp_path / "expected.txt"))
    generate_meta_info([folder], tmp_path / "ours.txt", [folder], with_shape=True)
    expected = (tmp_path / "expected.txt").read_text()
    assert (tmp_path / "ours.txt").read_text() == expected
    assert "grey.png (33,40,1)" in expected


def test_meta_info_errors(tmp_path, capsys):
    assert main(["data", "meta-info", "--input", str(tmp_path / "nope"), "--meta-info", "x.txt"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "meta-info", "--input", str(tmp_path / "empty"), "--meta-info", "x.txt"]) == 2
    assert "no images" in capsys.readouterr().err
    write_photos(tmp_path / "OST" / "animal", ["a.png"])
    assert main(["data", "meta-info", "--input", str(tmp_path / "OST"), "--meta-info", "x.txt"]) == 2
    assert "--recursive" in capsys.readouterr().err
    with pytest.raises(UserError, match="one --root per --input"):
        generate_meta_info([tmp_path / "OST"], tmp_path / "x.txt", [tmp_path, tmp_path])


def write_options(path: Path, train: str, val: str) -> Path:
    path.write_text(
        "name: t\nmodel_type: RealESRGANModel\nnetwork_g: {type: SRVGGNetCompact}\npath: {}\ntrain: {}\n"
        "logger: {}\ndatasets:\n"
        f"  train:\n    name: DF2K\n    type: RealESRGANDataset\n{train}"
        f"  val:\n    name: Set5\n    type: PairedImageDataset\n{val}"
    )
    return path


def test_check_options_resolves_every_image(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_photos(tmp_path / "datasets/sub/HR", ["a.png", "b.png", "c.png"])
    Path("datasets/sub/meta.txt").write_text("HR/a.png\nHR/b.png\nHR/c.png\n")
    write_photos(tmp_path / "datasets/Set5/GTmod12", ["x.png", "y.png"])
    write_photos(tmp_path / "datasets/Set5/LRbicx2", ["x.png", "y.png"])
    val = "    dataroot_gt: datasets/Set5/GTmod12\n    dataroot_lq: datasets/Set5/LRbicx2\n"
    good = write_options(tmp_path / "good.yml",
                         "    dataroot_gt: datasets/sub\n    meta_info: datasets/sub/meta.txt\n", val)
    assert main(["data", "check", str(good)]) == 0
    printed = capsys.readouterr().out
    assert "ok  datasets.train (DF2K, RealESRGANDataset): 3 images" in printed
    assert "ok  datasets.val (Set5, PairedImageDataset): 2 images" in printed

    # the usual mistake: dataroot_gt one level too deep, so every meta_info path misses
    wrong_root = write_options(tmp_path / "root.yml",
                               "    dataroot_gt: datasets/sub/HR\n    meta_info: datasets/sub/meta.txt\n", val)
    assert main(["data", "check", str(wrong_root)]) == 2
    err = capsys.readouterr().err
    assert "datasets.train (DF2K)" in err and "3 of 3 images" in err
    assert "first: " + str(tmp_path / "datasets/sub/HR/HR/a.png") in err and "hint:" in err

    Path("datasets/sub/empty.txt").write_text("")
    empty = write_options(tmp_path / "empty.yml",
                          "    dataroot_gt: datasets/sub\n    meta_info: datasets/sub/empty.txt\n", val)
    assert main(["data", "check", str(empty)]) == 2
    assert "ZeroDivisionError" in capsys.readouterr().err

    (tmp_path / "datasets/Set5/LRbicx2/y.png").unlink()
    opt = {"datasets": {"val": {"name": "Set5", "type": "PairedImageDataset",
                                "dataroot_gt": "datasets/Set5/GTmod12", "dataroot_lq": "datasets/Set5/LRbicx2"}}}
    with pytest.raises(UserError, match=r"y\.png has no LQ partner"):
        require_datasets(opt)
    report = check_datasets({"datasets": {"train": {"name": "DF2K", "type": "RealESRGANDataset",
                                                    "dataroot_gt": "datasets/sub",
                                                    "meta_info": "datasets/nope.txt"}}})[0]
    assert not report.ok and "meta_info" in report.problems[0] and "does not exist" in report.problems[0]

    # a paired training set whose images are smaller than gt_size would crash paired_random_crop
    small = {"datasets": {"train": {"name": "p", "type": "PairedImageDataset", "gt_size": 64,
                                    "dataroot_gt": "datasets/Set5/GTmod12", "dataroot_lq": "datasets/Set5/GTmod12"}}}
    assert "smaller than gt_size 64" in check_datasets(small)[0].problems[0]


def test_paired_crops_listed_by_meta_info_need_gt_size_of_gt_only(tmp_path):
    """PairedImageDataset crops gt_size from GT and gt_size / scale from LQ: LQ sub-images of 32 px serve
    gt_size 64 at x2, from a meta_info_file as from a folder listing; a GT under gt_size is still refused."""
    from engine.data.subimages import paired_subimages
    from engine.data.valset import write_pairs

    pairs = write_pairs(iter([("coffee", skdata.coffee()[:128, :192])]), tmp_path / "pairs", scale=2)
    for crop, problem in ((64, None), (48, "smaller than gt_size 64")):
        crops = paired_subimages(pairs.gt_dir, pairs.lq_dir, tmp_path / f"crops{crop}", scale=2, gt_crop=crop)
        train = {"name": "crops", "type": "PairedImageDataset", "gt_size": 64, "dataroot_gt": str(crops.gt_dir),
                 "dataroot_lq": str(crops.lq_dir)}
        for dataset in (train, dict(train, meta_info_file=str(crops.meta_info))):
            report = check_datasets({"scale": 2, "datasets": {"train": dataset}})[0]
            if problem is None:
                assert report.ok, report.problems
            else:
                assert problem in report.problems[0] and "/GT/" in report.problems[0]
