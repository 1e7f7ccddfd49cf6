"""Bad inputs to the data, weights, export, rank and report commands, through the real command line (issue 17).

Every case builds its broken input in its own folder, runs `srcockpit ...` once and expects exit status 2,
no traceback, one error line that names the file and the problem, a hint, and nothing at the output path.
The cases run a few at a time in one module fixture; the tests read the results. Each is its own process, the
command line's `main` forked from a zygote (tests/zygote.py) that has imported torch, basicsr and OpenCV once:
about 70 fresh interpreters would spend minutes importing them. That bad input is refused before torch is
imported at all is tests/test_fast_refusal.py's check, through `python -m tui.cli`.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_OPTIONS, srcockpit
from tests.fixtures_weights import photos
from tests.zygote import CLI_PRELUDE, Zygote, completed

SCALE = 2


@dataclass(frozen=True)
class Bad:
    """What a case runs and what its refusal must say."""

    argv: list[str]
    names: str  # a file or folder name the message must name
    problem: str  # words the message must hold
    output: Path | None = None  # must not exist afterwards
    marker: Path | None = None  # a file a pickle would create if it ran code


@dataclass(frozen=True)
class Shared:
    """Inputs built once: good images, a good x2 network, a good validation set."""

    root: Path
    good_pth: Path
    valset: Path  # holds GTmod12/ and LRbicx2/

    @property
    def gt(self) -> Path:
        return self.valset / "GTmod12"

    @property
    def lq(self) -> Path:
        return self.valset / f"LRbicx{SCALE}"


CASES: dict[str, Callable[[Path, Shared], Bad]] = {}


def case(name: str) -> Callable:
    def register(build: Callable[[Path, Shared], Bad]) -> Callable[[Path, Shared], Bad]:
        CASES[name] = build
        return build
    return register


# ---------------------------------------------------------------------------------------------- images


def _photo(size: int, index: int = 0) -> np.ndarray:
    return np.ascontiguousarray(photos()[index][1][100:100 + size, 100:100 + size])


def _png(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3
                                                         else cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), pixels)
    return path


def _jpeg(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def corrupt_body(path: Path) -> Path:
    """A PNG whose signature and IHDR are intact and whose image data is garbage."""
    data = path.read_bytes()
    path.write_bytes(data[:33] + bytes(range(256)) * 4)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def pairs(folder: Path, gt_size: int = 48, count: int = 2, lq_size: int | None = None) -> tuple[Path, Path]:
    """folder/gt + folder/lq, `count` photo crops; LQ at gt_size / SCALE unless lq_size says otherwise."""
    import cv2

    gt, lq = folder / "gt", folder / "lq"
    for index in range(count):
        image = _photo(gt_size, index)
        side = lq_size or gt_size // SCALE
        _png(gt / f"p{index}.png", image)
        _png(lq / f"p{index}.png", cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA))
    return gt, lq


def options(folder: Path, gt: Path, lq: Path, phase: str = "val", gt_size: int = 32) -> Path:
    """options/tiny_cpu.yml with one dataset (train or val, PairedImageDataset) that reads gt and lq."""
    import yaml

    dataset = {"name": "broken", "type": "PairedImageDataset", "dataroot_gt": str(gt), "dataroot_lq": str(lq),
               "io_backend": {"type": "disk"}}
    if phase == "train":
        dataset.update(gt_size=gt_size, use_hflip=True, use_rot=True)
    opt = yaml.safe_load(TINY_OPTIONS.read_text())
    opt.update(name="broken", scale=SCALE, datasets={phase: dataset})
    path = folder / "options.yml"
    path.write_text(yaml.safe_dump(opt))
    return path


# ---------------------------------------------------------------------------------------------- weights


class _RunsCode:
    """Pickles to a call of os.makedirs(marker): loading it unsafely would run that code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (str(self.marker),)


def _srvgg(num_feat: int = 8, num_conv: int = 2, upscale: int = SCALE) -> dict:
    import torch

    from engine.srvgg import SRVGGArch

    torch.manual_seed(0)
    return SRVGGArch(num_feat=num_feat, num_conv=num_conv, upscale=upscale).build().state_dict()


def _save(path: Path, blob: object) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)
    return path


def bad_weights(kind: str, folder: Path, shared: Shared) -> tuple[Path, str, Path | None]:
    """(file, words the refusal must hold, marker a pickle would create) for one wrong kind of weights."""
    import torch

    path = folder / f"{kind}.pth"
    marker = None
    if kind == "text":
        path.write_text("these are not weights\n")
        problem = "not a PyTorch checkpoint"
    elif kind == "empty":
        path.write_bytes(b"")
        problem = "empty"
    elif kind == "zip-data-pkl":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("data.pkl", pickle.dumps({"params": {}}))
        problem = "not a readable PyTorch checkpoint"
    elif kind == "pickle-code":
        marker = folder / "code-ran"
        _save(path, {"params": _RunsCode(marker)})
        problem = "not plain tensors"
    elif kind == "truncated":
        path.write_bytes(shared.good_pth.read_bytes()[:600])
        problem = "not a readable PyTorch checkpoint"
    elif kind == "rrdbnet":
        from basicsr.archs.rrdbnet_arch import RRDBNet

        net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1, num_grow_ch=4, scale=SCALE)
        _save(path, {"params_ema": net.state_dict()})
        problem = "RRDBNet"
    elif kind == "no-params":
        _save(path, {"model": _srvgg(), "epoch": 3})
        problem = "it has: model, epoch"
    elif kind == "training-state":
        path = folder / "10.state"
        params = [torch.nn.Parameter(torch.zeros(2))]
        optimizer = torch.optim.Adam(params)
        _save(path, {"epoch": 1, "iter": 10, "optimizers": [optimizer.state_dict()], "schedulers": []})
        problem = "training state"
    elif kind in ("nan", "inf"):
        state = _srvgg()
        state["body.2.weight"][0, 0, 0, 0] = float(kind)
        _save(path, {"params": state, "params_ema": state})
        problem = f"body.2.weight holds {'NaN' if kind == 'nan' else 'infinite'}"
    elif kind == "x4":
        _save(path, {"params": _srvgg(upscale=4)})
        problem = "x4"
    elif kind == "x3":
        _save(path, {"params": _srvgg(upscale=3)})
        problem = "x3"
    elif kind == "directory":
        path.mkdir()
        problem = "is a folder"
    elif kind == "missing":
        problem = "not found"
    elif kind == "unreadable":
        shutil.copy(shared.good_pth, path)
        path.chmod(0)
        problem = "cannot be read"
    else:
        raise AssertionError(kind)
    return path, problem, marker


def _weights_cases(command: str, kinds: tuple[str, ...],
                   argv: Callable[[Path, Path, Shared], tuple[list[str], Path]], named: str | None = None) -> None:
    """One case per kind: `named` is the name the message must hold when the command renames the file."""
    for kind in kinds:
        def build(folder: Path, shared: Shared, kind: str = kind) -> Bad:
            path, problem, marker = bad_weights(kind, folder, shared)
            args, output = argv(path, folder, shared)
            return Bad(args, named or path.name, problem, output, marker)

        CASES[f"{command}-{kind}"] = build


BASIC = ("text", "empty", "directory", "missing", "unreadable", "pickle-code", "nan", "rrdbnet")


def _transfer(path: Path, folder: Path, shared: Shared) -> tuple[list[str], Path]:
    out = folder / "out.pth"
    return ["weights", "transfer", str(path), "--feat", "4", "--conv", "2", "-o", str(out)], out


def _export(path: Path, folder: Path, shared: Shared) -> tuple[list[str], Path]:
    out = folder / "export"
    return ["export", str(path), "--calib", "builtin", "--no-htp", "-o", str(out)], out


def _export_no_calib(path: Path, folder: Path, shared: Shared) -> tuple[list[str], Path]:
    out = folder / "export"
    return ["export", str(path), "--no-htp", "-o", str(out)], out


def run_folder(folder: Path, shared: Shared, checkpoint: Path) -> Path:
    """experiments/r: models/net_g_10.pth (the given file) and its options naming the shared valset."""
    import yaml

    run = folder / "experiments" / "r"
    (run / "models").mkdir(parents=True)
    if checkpoint.exists() or checkpoint.is_symlink():
        checkpoint.rename(run / "models" / "net_g_10.pth")
    opt = {"name": "r", "scale": SCALE, "network_g": {"type": "SRVGGNetCompact", "upscale": SCALE},
           "datasets": {"val": {"name": "val", "type": "PairedImageDataset", "dataroot_gt": str(shared.gt),
                                "dataroot_lq": str(shared.lq), "io_backend": {"type": "disk"}}},
           "val": {"metrics": {"psnr": {"type": "calculate_psnr", "crop_border": SCALE}}}}
    (run / "r.yml").write_text(yaml.safe_dump(opt))
    return run


def _rank(path: Path, folder: Path, shared: Shared) -> tuple[list[str], Path]:
    run = run_folder(folder, shared, path)
    out = folder / "promoted.pth"
    return ["rank", str(run), "--original", "none", "--promote", "--to", str(out)], out


def _report(path: Path, folder: Path, shared: Shared) -> tuple[list[str], Path]:
    out = folder / "report"
    return ["report", "--original", "none", "--transferred", str(path), "--finetuned", "none",
            "--valset", f"{shared.gt}:{shared.lq}", "--timing-runs", "0", "-o", str(out)], out


_weights_cases("transfer", (*BASIC, "zip-data-pkl", "truncated", "no-params", "training-state", "inf"), _transfer)
_weights_cases("export", (*BASIC, "training-state", "zip-data-pkl"), _export)
_weights_cases("export-no-calib", ("text", "rrdbnet"), _export_no_calib)
_weights_cases("rank", ("text", "empty", "pickle-code", "nan", "rrdbnet", "x4"), _rank, named="net_g_10.pth")
_weights_cases("report", ("text", "directory", "pickle-code", "nan", "rrdbnet", "x3"), _report)


@case("rank-original-nan")
def _rank_bad_original(folder: Path, shared: Shared) -> Bad:
    good = folder / "good.pth"
    shutil.copy(shared.good_pth, good)
    run = run_folder(folder, shared, good)
    path, problem, _ = bad_weights("nan", folder, shared)
    out = folder / "promoted.pth"
    return Bad(["rank", str(run), "--original", str(path), "--promote", "--to", str(out)], path.name, problem, out)


@case("transfer-wider-than-source")
def _transfer_wider(folder: Path, shared: Shared) -> Bad:
    out = folder / "out.pth"
    return Bad(["weights", "transfer", str(shared.good_pth), "--feat", "16", "-o", str(out)], "--feat 16",
               "wider than the source", out)


# ---------------------------------------------------------------------------------------------- ncnn


@case("import-ncnn-text")
def _ncnn_text(folder: Path, shared: Shared) -> Bad:
    param = folder / "model.param"
    param.write_text("hello\nworld\n")
    out = folder / "out.pth"
    return Bad(["weights", "import-ncnn", "--model", str(param), "-o", str(out)], "model.param",
               "not an ncnn .param file", out)


@case("import-ncnn-pth-as-param")
def _ncnn_pth(folder: Path, shared: Shared) -> Bad:
    param = folder / "model.param"
    shutil.copy(shared.good_pth, param)
    out = folder / "out.pth"
    return Bad(["weights", "import-ncnn", "--model", str(param), "-o", str(out)], "model.param",
               "not a text ncnn .param file", out)


@case("import-ncnn-no-bin")
def _ncnn_no_bin(folder: Path, shared: Shared) -> Bad:
    from engine.weights.ncnn_import import shipped_ncnn_model

    param = folder / "model.param"
    shutil.copy(shipped_ncnn_model(4)[0], param)
    out = folder / "out.pth"
    return Bad(["weights", "import-ncnn", "--model", str(param), "-o", str(out)], "model.bin", "not found", out)


@case("import-ncnn-truncated-bin")
def _ncnn_short_bin(folder: Path, shared: Shared) -> Bad:
    from engine.weights.ncnn_import import shipped_ncnn_model

    source, binary = shipped_ncnn_model(4)
    param = folder / "model.param"
    shutil.copy(source, param)
    (folder / "model.bin").write_bytes(binary.read_bytes()[:5000])
    out = folder / "out.pth"
    return Bad(["weights", "import-ncnn", "--model", str(param), "-o", str(out)], "model.bin",
               "truncated", out)


# ---------------------------------------------------------------------------------------------- data check


def _check_case(name: str, phase: str, spoil: Callable[[Path, Path], Path], problem: str,
                gt_size: int = 48, lq_size: int | None = None) -> None:
    def build(folder: Path, shared: Shared) -> Bad:
        gt, lq = pairs(folder, gt_size=gt_size, lq_size=lq_size)
        spoiled = spoil(gt, lq)
        return Bad(["data", "check", str(options(folder, gt, lq, phase))], spoiled.name, problem)

    CASES[f"check-{name}"] = build


_check_case("corrupt-png-body", "val", lambda gt, lq: corrupt_body(gt / "p1.png"), "not a readable image")
_check_case("zero-byte-val-image", "val", lambda gt, lq: truncate(gt / "p0.png", 0), "not a readable image")
_check_case("truncated-jpeg", "val", lambda gt, lq: jpeg_pair(gt, lq), "not a readable image")
_check_case("corrupt-lq-train", "train", lambda gt, lq: corrupt_body(lq / "p0.png"), "not a readable image")
_check_case("lq-same-size-as-gt", "val", lambda gt, lq: lq / "p0.png", "is not x2", lq_size=48)
_check_case("lq-x4-not-x2", "train", lambda gt, lq: lq / "p0.png", "is not x2", lq_size=12)
_check_case("one-lq-wrong-scale", "val", lambda gt, lq: _png(lq / "p1.png", _photo(16, 1)), "is not x2")
_check_case("gt-smaller-than-gt-size", "train", lambda gt, lq: gt / "p0.png", "smaller than gt_size", gt_size=24)
_check_case("one-by-one-image", "train",
            lambda gt, lq: (_png(gt / "p1.png", _photo(2)), _png(lq / "p1.png", _photo(1)))[0], "smaller than gt_size")
_check_case("non-image-in-folder", "val", lambda gt, lq: _text(gt / "notes.txt"), "not an image")
_check_case("mismatched-names", "val", lambda gt, lq: rename_lq(gt, lq), "no LQ partner")


def rename_lq(gt: Path, lq: Path) -> Path:
    (lq / "p1.png").rename(lq / "q1.png")
    return gt / "p1.png"


def jpeg_pair(gt: Path, lq: Path) -> Path:
    """gt/p1 and lq/p1 as JPEG, the GT one cut off halfway (as an interrupted download leaves it)."""
    import cv2

    for folder in (gt, lq):
        image = cv2.cvtColor(cv2.imread(str(folder / "p1.png")), cv2.COLOR_BGR2RGB)
        (folder / "p1.png").unlink()
        _jpeg(folder / "p1.jpg", image)
    return truncate(gt / "p1.jpg", 0.6)


def _text(path: Path) -> Path:
    path.write_text("a note, not an image\n")
    return path


# ---------------------------------------------------------------------------------------------- data commands


@case("meta-info-non-images")
def _meta_non_images(folder: Path, shared: Shared) -> Bad:
    source = folder / "texts"
    source.mkdir()
    for index in range(3):
        _text(source / f"file{index}.txt")
    out = folder / "meta.txt"
    return Bad(["data", "meta-info", "--input", str(source), "--meta-info", str(out)], "texts", "no images", out)


@case("meta-info-all-corrupt")
def _meta_corrupt(folder: Path, shared: Shared) -> Bad:
    source = folder / "imgs"
    corrupt_body(_png(source / "a.png", _photo(32)))
    truncate(_png(source / "b.png", _photo(32)), 0)
    out = folder / "meta.txt"
    return Bad(["data", "meta-info", "--input", str(source), "--meta-info", str(out), "--check"], "a.png",
               "failed the check", out)


@case("subset-all-corrupt")
def _subset_corrupt(folder: Path, shared: Shared) -> Bad:
    source = folder / "src"
    corrupt_body(_png(source / "a.png", _photo(64)))
    truncate(_jpeg(source / "b.jpg", _photo(64)), 0.5)
    out = folder / "subset"
    return Bad(["data", "subset", "--source", f"{source}=all", "--gt-size", "16", "-o", str(out), "-q"],
               f"{source}{os.sep}", "no usable image", out)  # the first bad file of the seeded order


@case("subset-non-images")
def _subset_non_images(folder: Path, shared: Shared) -> Bad:
    source = folder / "src"
    source.mkdir()
    _text(source / "a.txt")
    out = folder / "subset"
    return Bad(["data", "subset", "--source", f"{source}=all", "-o", str(out), "-q"], "src", "no images", out)


def _valset_case(name: str, spoil: Callable[[Path], Path], problem: str) -> None:
    def build(folder: Path, shared: Shared) -> Bad:
        hr = folder / "hr"
        _png(hr / "a.png", _photo(48))
        spoiled = spoil(hr)
        out = folder / "set"
        return Bad(["data", "valset", str(hr), "-o", str(out), "-q"], spoiled.name, problem, out)

    CASES[f"valset-{name}"] = build


_valset_case("corrupt-png-body", lambda hr: corrupt_body(_png(hr / "z.png", _photo(48))), "not a readable image")
_valset_case("zero-byte", lambda hr: truncate(_png(hr / "z.png", _photo(48)), 0), "not a readable image")
_valset_case("one-by-one", lambda hr: _png(hr / "z.png", _photo(1)), "too small")


@case("extract-subimages-all-unreadable")
def _extract_unreadable(folder: Path, shared: Shared) -> Bad:
    source = folder / "big"
    corrupt_body(_png(source / "a.png", _photo(96)))
    truncate(_jpeg(source / "b.jpg", _photo(96)), 0.5)
    out = folder / "crops"
    return Bad(["data", "extract-subimages", str(source), "-o", str(out), "--crop-size", "32", "--step", "16",
                "--workers", "1", "-q"], "a.png", "no sub-image", out)


@case("extract-subimages-too-small")
def _extract_small(folder: Path, shared: Shared) -> Bad:
    source = folder / "big"
    _png(source / "tiny.png", _photo(8))
    out = folder / "crops"
    return Bad(["data", "extract-subimages", str(source), "-o", str(out), "--crop-size", "32", "--workers", "1",
                "-q"], "tiny.png", "no sub-image", out)


@case("extract-subimages-non-images")
def _extract_non_images(folder: Path, shared: Shared) -> Bad:
    source = folder / "big"
    source.mkdir()
    _text(source / "a.txt")
    out = folder / "crops"
    return Bad(["data", "extract-subimages", str(source), "-o", str(out), "-q"], "big", "no images", out)


# ---------------------------------------------------------------------------------------------- valsets


def _valset_for(name: str, spoil: Callable[[Path, Path], Path], problem: str, lq_size: int | None = None) -> None:
    """The same broken validation set given to rank (--valset) and to report."""
    def rank(folder: Path, shared: Shared) -> Bad:
        gt, lq = pairs(folder, lq_size=lq_size)
        spoiled = spoil(gt, lq)
        good = folder / "good.pth"
        shutil.copy(shared.good_pth, good)
        run = run_folder(folder, shared, good)
        out = folder / "promoted.pth"
        return Bad(["rank", str(run), "--valset", f"{gt}:{lq}", "--original", "none", "--promote", "--to",
                    str(out)], spoiled.name, problem, out)

    def report(folder: Path, shared: Shared) -> Bad:
        gt, lq = pairs(folder, lq_size=lq_size)
        spoiled = spoil(gt, lq)
        out = folder / "report"
        return Bad(["report", "--original", "none", "--transferred", str(shared.good_pth), "--valset", f"{gt}:{lq}",
                    "--timing-runs", "0", "-o", str(out)], spoiled.name, problem, out)

    CASES[f"rank-valset-{name}"] = rank
    CASES[f"report-valset-{name}"] = report


_valset_for("corrupt-png", lambda gt, lq: corrupt_body(gt / "p1.png"), "not a readable image")
_valset_for("zero-byte-lq", lambda gt, lq: truncate(lq / "p0.png", 0), "not a readable image")
_valset_for("lq-same-size", lambda gt, lq: gt / "p0.png", "is not x2", lq_size=48)


# ---------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Outcome:
    bad: Bad
    result: subprocess.CompletedProcess


AT_ONCE = 3


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    from engine.data.valset import write_pairs
    from engine.srvgg import save_checkpoint

    root = tmp_path_factory.mktemp("bad-inputs")
    good = save_checkpoint(root / "good.pth", _srvgg())
    valset = root / "valset"
    write_pairs(((f"v{index}", _photo(48, index)) for index in range(2)), valset, scale=SCALE)
    return Shared(root, good, valset)


def run_forked(built: dict[str, Bad], root: Path) -> dict[str, subprocess.CompletedProcess]:
    """Every case's `srcockpit ARGV` in its folder, AT_ONCE at a time."""
    zygote, running, results = Zygote(CLI_PRELUDE), {}, {}
    captured = root / "captured"  # outside the cases' folders, which some commands read as inputs
    captured.mkdir()

    def streams(name: str) -> tuple[Path, Path]:
        return captured / f"{name}.out", captured / f"{name}.err"

    try:
        for name in [*sorted(built), *[None] * AT_ONCE]:
            if len(running) == AT_ONCE or (name is None and running):
                pid, status = zygote.wait_any()
                done = running.pop(pid)
                results[done] = completed(built[done].argv, status, *streams(done))
            if name is not None:
                out, err = streams(name)
                running[zygote.start_srcockpit(built[name].argv, cwd=root / name, stdout=out, stderr=err)] = name
    finally:
        zygote.close()
    return results


@pytest.fixture(scope="module")
def outcomes(shared: Shared) -> dict[str, Outcome]:
    built = {}
    for name, build in CASES.items():
        folder = shared.root / name
        folder.mkdir()
        built[name] = build(folder, shared)
    results = run_forked(built, shared.root)
    return {name: Outcome(bad, results[name]) for name, bad in built.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_clearly(name: str, outcomes: dict[str, Outcome]) -> None:
    if name.endswith("-unreadable") and os.getuid() == 0:
        pytest.skip("running as root: a file without read permission is still readable")
    bad, result = outcomes[name].bad, outcomes[name].result
    shown = f"srcockpit {' '.join(bad.argv)}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert result.returncode == 2, shown
    errors = [line for line in result.stderr.splitlines() if line.startswith("srcockpit: error:")]
    assert len(errors) == 1, shown
    assert bad.names in result.stderr and bad.problem in result.stderr, shown
    assert "hint:" in result.stderr, shown
    if bad.output is not None:
        assert not bad.output.exists(), shown
    if bad.marker is not None:
        assert not bad.marker.exists(), "a pickle ran code on load"


def test_the_corpus_is_large(outcomes: dict[str, Outcome]) -> None:
    assert len(CASES) >= 55


def test_odd_but_valid_images_are_accepted(shared: Shared) -> None:
    """16-bit, grey and RGBA images are ones basicsr reads (as 8-bit RGB): data valset takes them, and the set
    it writes passes data check."""
    import cv2

    folder = shared.root / "odd-formats"
    hr = folder / "hr"
    image = _photo(48)
    assert cv2.imwrite(str(_dir(hr) / "deep.png"), image.astype(np.uint16) * 257)
    _png(hr / "grey.png", cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    _png(hr / "alpha.png", np.dstack([image, np.full(image.shape[:2], 128, np.uint8)]))
    srcockpit("data", "valset", str(hr), "-o", str(folder / "set"), "-q", cwd=folder)
    lr = cv2.imread(str(folder / "set" / f"LRbicx{SCALE}" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert lr.shape == (24, 24, 3) and lr.dtype == np.uint8
    result = srcockpit("data", "check", str(options(folder, folder / "set" / "GTmod12", folder / "set" / "LRbicx2")),
                       cwd=folder)
    assert "ok  datasets.val" in result.stdout


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
