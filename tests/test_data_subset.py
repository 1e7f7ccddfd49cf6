"""`srcockpit data subset` on real photo crops, corrupt, truncated and undersized files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from engine.data.subset import SourceSpec, build_subset, parse_source, plan_subset
from engine.protocol import UserError, read_events
from tui.cli import main

GT = 32  # gt_size for these tests: the good crops are 40x48, the small ones 24x40


def photo_crop(index: int, height: int = 40, width: int = 48) -> np.ndarray:
    """A different real-photo crop (BGR) for each index."""
    photo = skdata.astronaut()[:, :, ::-1] if index % 2 else skdata.coffee()[:, :, ::-1]
    top, left = (index * 7) % (photo.shape[0] - height), (index * 13) % (photo.shape[1] - width)
    return np.ascontiguousarray(photo[top: top + height, left: left + width])


def write_good(folder: Path, names: list[str], start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, name in enumerate(names):
        path = folder / name
        assert cv2.imwrite(str(path), photo_crop(start + offset))
        paths.append(path)
    return paths


def write_bad(folder: Path) -> dict[str, str]:
    """One file of each problem; returns name -> the word the report must use."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garbage.png").write_bytes(b"this is not a PNG at all" * 10)
    _, encoded = cv2.imencode(".png", photo_crop(99))
    (folder / "truncated.png").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    _, encoded = cv2.imencode(".jpg", photo_crop(98))
    (folder / "truncated.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    assert cv2.imwrite(str(folder / "small.png"), photo_crop(97, 24, 40))
    return {"garbage.png": "unreadable", "truncated.png": "truncated", "truncated.jpg": "truncated",
            "small.png": "too small"}


def chosen_names(out: Path, label: str) -> list[str]:
    return sorted(p.relative_to(out / label).as_posix() for p in (out / label).rglob("*") if not p.is_dir())


def test_parse_source():
    assert parse_source("datasets/DF2K/OST=1000") == SourceSpec(Path("datasets/DF2K/OST"), 1000)
    assert parse_source("a/b=all") == SourceSpec(Path("a/b"), None)
    assert parse_source("a/b") == SourceSpec(Path("a/b"), None)
    assert parse_source("odd=name=ALL") == SourceSpec(Path("odd=name"), None)
    for bad in ("a=x", "a=0", "a=-3"):
        with pytest.raises(UserError, match="must be 'all' or a positive number"):
            parse_source(bad)


def test_counts_seed_and_left_out_report(tmp_path):
    div2k = tmp_path / "DIV2K_train_HR"
    flickr = tmp_path / "Flickr2K_HR"
    good_div = write_good(div2k, [f"{i:04d}.png" for i in range(1, 7)])
    problems = write_bad(div2k)
    write_good(flickr, [f"{i:06d}.png" for i in range(1, 21)], start=20)
    sources = [SourceSpec(div2k, None), SourceSpec(flickr, 5)]

    result = build_subset(sources, tmp_path / "s1", seed=7, gt_size=GT)
    again = build_subset(sources, tmp_path / "s2", seed=7, gt_size=GT)
    other = build_subset(sources, tmp_path / "s3", seed=8, gt_size=GT)

    # all of DIV2K that is usable, exactly 5 of Flickr2K
    assert chosen_names(tmp_path / "s1", "DIV2K_train_HR") == [p.name for p in good_div]
    assert len(chosen_names(tmp_path / "s1", "Flickr2K_HR")) == 5
    assert result.count == 11
    # same seed, same files; another seed, another sample (deterministic for these seeds)
    assert chosen_names(tmp_path / "s2", "Flickr2K_HR") == chosen_names(tmp_path / "s1", "Flickr2K_HR")
    assert chosen_names(tmp_path / "s3", "Flickr2K_HR") != chosen_names(tmp_path / "s1", "Flickr2K_HR")
    assert [p.name for p in again.sources[1].chosen] == [p.name for p in result.sources[1].chosen]
    assert len(other.sources[1].chosen) == 5

    # the left-out report, in the result and as a file, names each bad file and why
    report = (tmp_path / "s1" / "left_out.tsv").read_text().splitlines()
    assert report[0].startswith("# 4 images left out")
    reasons = dict(line.split("\t") for line in report[1:])
    assert {Path(p).name for p in reasons} == set(problems)
    for path, reason in reasons.items():
        assert reason.startswith(problems[Path(path).name]), (path, reason)
    assert {c.path.name for c in result.left_out} == set(problems)

    # meta_info lists exactly the chosen files, relative to the subset root, and they resolve to the sources
    meta = (tmp_path / "s1" / "meta_info" / "meta_info_s1.txt").read_text().splitlines()
    assert meta[:6] == [f"DIV2K_train_HR/{p.name}" for p in good_div]
    assert len(meta) == 11 and all(not name.endswith(tuple(problems)) for name in meta)
    for name in meta:
        link = tmp_path / "s1" / name
        assert link.is_symlink() and link.resolve().parent.name in ("DIV2K_train_HR", "Flickr2K_HR")
        assert cv2.imread(str(link)) is not None
    manifest = json.loads((tmp_path / "s1" / "subset.json").read_text())
    assert manifest["seed"] == 7 and manifest["images"] == 11
    assert [s["chosen"] for s in manifest["sources"]] == [6, 5]


def test_bad_images_are_replaced_from_the_same_source(tmp_path):
    source = tmp_path / "Flickr2K_HR"
    good = write_good(source, ["a.png", "b.png", "c.png", "d.png"])
    write_bad(source)
    for seed in range(4):
        result = build_subset([SourceSpec(source, 4)], tmp_path / f"out{seed}", seed=seed, gt_size=GT)
        # 8 files, 4 bad: asking for 4 must end with exactly the 4 good ones, whatever the order drawn
        assert [p.name for p in result.sources[0].chosen] == [p.name for p in good]
        assert result.sources[0].short == 0


def test_not_enough_usable_images_is_reported_not_hidden(tmp_path):
    source = tmp_path / "src"
    write_good(source, ["a.png", "b.png"])
    write_bad(source)
    result = build_subset([SourceSpec(source, 4)], tmp_path / "out", gt_size=GT)
    assert len(result.sources[0].chosen) == 2
    assert result.sources[0].short == 2
    with pytest.raises(UserError, match="fewer than 7"):
        build_subset([SourceSpec(source, 7)], tmp_path / "out2", gt_size=GT)


def test_ost_categories_recursion_and_balance(tmp_path):
    ost = tmp_path / "OST"
    write_good(ost / "animal", [f"animal_{i:03d}.png" for i in range(30)])
    write_good(ost / "building", [f"building_{i:03d}.png" for i in range(4)], start=30)
    write_good(ost / "sky", [f"sky_{i:03d}.png" for i in range(10)], start=40)

    def per_category(out: Path) -> dict[str, int]:
        names = chosen_names(out, "OST")
        return {cat: sum(n.startswith(cat + "/") for n in names) for cat in ("animal", "building", "sky")}

    build_subset([SourceSpec(ost, 12)], tmp_path / "balanced", seed=3, gt_size=GT, balance=True)
    assert per_category(tmp_path / "balanced") == {"animal": 4, "building": 4, "sky": 4}
    # a small category gives its unused share to the others
    build_subset([SourceSpec(ost, 15)], tmp_path / "fill", seed=3, gt_size=GT, balance=True)
    counts = per_category(tmp_path / "fill")
    assert counts["building"] == 4 and sorted([counts["animal"], counts["sky"]]) == [5, 6]
    meta = (tmp_path / "fill" / "meta_info" / "meta_info_fill.txt").read_text().splitlines()
    assert len(meta) == 15 and all(line.startswith("OST/") and line.count("/") == 2 for line in meta)
    # without balance the draw follows the folder sizes: animal (30 of 44 images) dominates
    build_subset([SourceSpec(ost, 22)], tmp_path / "plain", seed=3, gt_size=GT)
    plain = per_category(tmp_path / "plain")
    assert sum(plain.values()) == 22 and plain["animal"] > plain["sky"] > 0


def test_link_modes_and_spaces(tmp_path):
    source = tmp_path / "src"
    write_good(source, ["one image.png", "two.png"])
    build_subset([SourceSpec(source, None)], tmp_path / "hard", mode="hardlink", gt_size=GT)
    build_subset([SourceSpec(source, None)], tmp_path / "copy", mode="copy", gt_size=GT)
    for name_in, name_out in (("one image.png", "one_image.png"), ("two.png", "two.png")):
        hard, copy = tmp_path / "hard" / "src" / name_out, tmp_path / "copy" / "src" / name_out
        assert os.stat(hard).st_ino == os.stat(source / name_in).st_ino
        assert not copy.is_symlink() and os.stat(copy).st_ino != os.stat(source / name_in).st_ino
        assert copy.read_bytes() == (source / name_in).read_bytes()
    assert "src/one_image.png" in (tmp_path / "copy" / "meta_info" / "meta_info_copy.txt").read_text()


def test_plan_refuses_overlap_and_duplicate_names(tmp_path):
    a = tmp_path / "x" / "HR"
    b = tmp_path / "y" / "HR"
    write_good(a, ["a.png"])
    write_good(b, ["b.png"])
    with pytest.raises(UserError, match="same folder name"):
        plan_subset([SourceSpec(a), SourceSpec(b)], tmp_path / "out")
    with pytest.raises(UserError, match="overlap"):
        plan_subset([SourceSpec(a)], a / "subset")


def test_cli_errors_exit_2_with_a_message(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["data", "subset", "--source", f"{tmp_path / 'missing'}=all", "-o", out, "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err

    (tmp_path / "empty").mkdir()
    assert main(["data", "subset", "--source", f"{tmp_path / 'empty'}=3", "-o", out, "-q"]) == 2
    assert "no images in source folder" in capsys.readouterr().err

    source = tmp_path / "src"
    write_good(source, ["a.png", "b.png", "c.png"])
    assert main(["data", "subset", "--source", f"{source}=2", "-o", out, "--gt-size", str(GT), "-q"]) == 0
    first = chosen_names(Path(out), "src")
    assert main(["data", "subset", "--source", f"{source}=all", "-o", out, "--gt-size", str(GT), "-q"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert chosen_names(Path(out), "src") == first  # untouched
    assert main(["data", "subset", "--source", f"{source}=all", "-o", out, "--gt-size", str(GT), "-q",
                 "--force"]) == 0
    assert chosen_names(Path(out), "src") == ["a.png", "b.png", "c.png"]

    foreign = tmp_path / "foreign"
    write_good(foreign, ["keep.png"])
    assert main(["data", "subset", "--source", f"{source}=all", "-o", str(foreign), "--force", "-q"]) == 2
    assert "not a subset made by srcockpit" in capsys.readouterr().err
    assert (foreign / "keep.png").is_file()


def test_cli_dry_run_writes_nothing(tmp_path, capsys):
    source = tmp_path / "Flickr2K_HR"
    write_good(source, [f"{i}.png" for i in range(6)])
    out = tmp_path / "out"
    assert main(["data", "subset", "--source", f"{source}=4", "-o", str(out), "--mode", "copy",
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "Flickr2K_HR" in printed and "copying them needs about" in printed
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_cli_job_writes_progress_and_result_events(tmp_path):
    source = tmp_path / "src"
    write_good(source, [f"{i}.png" for i in range(5)])
    job = tmp_path / "job"
    assert main(["data", "subset", "--source", f"{source}=3", "-o", str(tmp_path / "out"), "--gt-size",
                 str(GT), "--job", str(job), "-q"]) == 0
    events = list(read_events(job / "cockpit" / "events.jsonl"))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "header" and kinds[-1] == "status" and events[-1]["status"] == "finished"
    progress = [e for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 3
    result = next(e for e in events if e["type"] == "result")
    assert result["job"] == "subset" and result["images"] == 3
