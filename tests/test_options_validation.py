"""Options are checked before launch (design.md section 5): a corpus of broken inputs, each with its message.

Every case edits options/tiny_cpu.yml as text (so comments and line numbers stay), breaks a data
folder or a weight file, and states the message the user must see: file, line, key, fix. A
representative subset goes through the real CLI (`srcockpit train BROKEN.yml`: exit 2, the message
on stderr, no traceback, no engine started); the rest through engine.options.load_options, which is
what the CLI and the engine both call.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.options import check_pretrained, key_lines, load_options
from engine.protocol import UserError
from tests.conftest import REPO, TINY_OPTIONS, srcockpit

BROKEN = REPO / "tests" / "fixtures" / "broken"
BASE_LINES = key_lines(TINY_OPTIONS)


@dataclass
class Case:
    """One broken input: edits to the options text, an optional set-up of files, the expected message."""

    id: str
    expect: list[str]
    edits: list[tuple[str, str, str]] = field(default_factory=list)  # (op, dotted key, text)
    setup: Callable[[Path], None] | None = None
    overrides: list[str] = field(default_factory=list)
    options: Path | None = None  # a fixture file instead of the edited template
    line_of: str | None = None  # the dotted key whose line the message must name
    cli: bool = False


def _indent(dotted: str) -> str:
    return "  " * dotted.count(".")


def edited_options(edits: list[tuple[str, str, str]]) -> tuple[str, dict[str, int]]:
    """tiny_cpu.yml with edits: ("set", key, value), ("rename", key, new name), ("add", section, "k: v")."""
    lines = TINY_OPTIONS.read_text().splitlines()
    added: dict[str, int] = {}
    for op, dotted, text in sorted(edits, key=lambda e: -BASE_LINES.get(e[1], 10**6)):
        if op == "add" and dotted == "":
            lines.append(text)
            added[text.split(":")[0]] = len(lines)
            continue
        index = BASE_LINES[dotted] - 1
        name = dotted.rsplit(".", 1)[-1]
        if op == "set":
            lines[index] = f"{_indent(dotted)}{name}: {text}"
        elif op == "rename":
            lines[index] = lines[index].replace(f"{name}:", f"{text}:", 1)
        elif op == "add":
            lines.insert(index + 1, f"{_indent(dotted)}  {text}")
            added[f"{dotted}.{text.split(':')[0]}"] = index + 2
    return "\n".join(lines) + "\n", added


# ---- data set-ups (each makes its own copy of the tiny dataset under ./broken_data) -----------------

def own_data(root: Path) -> Path:
    target = root / "broken_data"
    shutil.copytree(root / "datasets" / "demo", target, symlinks=False)
    return target


def empty_folders(root: Path) -> None:
    for name in ("GT", "LQ"):
        (root / "broken_data" / name).mkdir(parents=True)


def lq_missing(root: Path) -> None:
    data = own_data(root)
    next((data / "train" / "LRbicx2").glob("*.png")).unlink()


def non_image(root: Path) -> None:
    data = own_data(root)
    shutil.copy(BROKEN / "notes.txt", data / "train" / "GTmod12" / "notes.txt")
    shutil.copy(BROKEN / "notes.txt", data / "train" / "LRbicx2" / "notes.txt")


def meta_info_blank_line(root: Path) -> None:
    own_data(root)
    names = sorted(p.name for p in (root / "broken_data/train/GTmod12").glob("*.png"))
    (root / "meta.txt").write_text(names[0] + "\n\n" + "\n".join(names[1:]) + "\n")


def meta_info_missing_image(root: Path) -> None:
    own_data(root)
    (root / "meta.txt").write_text("astronaut.png\nnot_there.png\n")


def weights(kind: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / "weights").mkdir()
        target = root / "weights" / "net.pth"
        if kind in ("empty", "html"):
            shutil.copy(BROKEN / {"empty": "empty.pth", "html": "html_instead_of_weights.pth"}[kind], target)
            return
        import torch

        torch.save({"params_ema": {"w": torch.zeros(64, 64)}}, target)
        data = target.read_bytes()
        if kind == "torn":
            target.write_bytes(data[:len(data) // 2])
        elif kind == "flipped":  # same length, a flipped byte inside the tensor data: fails its CRC
            at = data.index(b"\x00" * 64)
            target.write_bytes(data[:at] + b"\x01" + data[at + 1:])
    return make


WEIGHTS = ("set", "path.pretrain_network_g", "weights/net.pth")
OWN_TRAIN = [("set", "datasets.train.dataroot_gt", "broken_data/train/GTmod12"),
             ("set", "datasets.train.dataroot_lq", "broken_data/train/LRbicx2")]

CASES = [
    # types
    Case("total_iter_zero", ["train.total_iter: must be a positive number of iterations, got 0"],
         [("set", "train.total_iter", "0")], line_of="train.total_iter", cli=True),
    Case("total_iter_text", ["train.total_iter: must be a whole number", "'eight'"],
         [("set", "train.total_iter", "eight")], line_of="train.total_iter"),
    Case("lr_as_text", ["train.optim_g.lr", "read as text", "1.0e-4"], [("set", "train.optim_g.lr", "1e-4")],
         line_of="train.optim_g.lr", cli=True),
    Case("batch_text", ["datasets.train.batch_size_per_gpu: must be a whole number"],
         [("set", "datasets.train.batch_size_per_gpu", "'2'")], line_of="datasets.train.batch_size_per_gpu"),
    Case("batch_zero", ["batch_size_per_gpu: must be a positive whole number, got 0"],
         [("set", "datasets.train.batch_size_per_gpu", "0")]),
    Case("hflip_yes_text", ["datasets.train.use_hflip: must be true or false"],
         [("set", "datasets.train.use_hflip", "'yes'")], line_of="datasets.train.use_hflip"),
    Case("probability_above_1", ["gaussian_noise_prob: is a probability, must lie in [0, 1], got 1.5"],
         [("add", "", "gaussian_noise_prob: 1.5")]),
    Case("resize_prob_two", ["resize_prob: must list 3 numbers, got 2"], [("add", "", "resize_prob: [0.2, 0.8]")]),
    Case("num_gpu_word", ["num_gpu: must be auto or a whole number"], [("set", "num_gpu", "two")],
         line_of="num_gpu"),
    Case("dataset_not_a_section", ["datasets.val: must be a section"], overrides=["datasets.val=[1, 2]"]),
    Case("val_freq_zero", ["val.val_freq: must be a positive number of iterations"],
         [("set", "val.val_freq", "0")], line_of="val.val_freq"),
    Case("checkpoint_freq_negative", ["logger.save_checkpoint_freq: must be a positive number of iterations, got -1"],
         [("set", "logger.save_checkpoint_freq", "-1")], line_of="logger.save_checkpoint_freq"),
    # unknown keys, with a close match
    Case("top_key_typo", ["unknown key 'queue_sise'; did you mean 'queue_size'?"],
         [("rename", "queue_size", "queue_sise")], line_of="queue_size", cli=True),
    Case("train_key_typo", ["train.totl_iter: unknown key 'totl_iter'; did you mean 'total_iter'?"],
         [("rename", "train.total_iter", "totl_iter")], line_of="train.total_iter"),
    Case("dataset_key_typo", ["unknown key 'batch_size_per_gp'; did you mean 'batch_size_per_gpu'?"],
         [("rename", "datasets.train.batch_size_per_gpu", "batch_size_per_gp")],
         line_of="datasets.train.batch_size_per_gpu"),
    Case("logger_key_typo", ["did you mean 'save_checkpoint_freq'?"],
         [("rename", "logger.save_checkpoint_freq", "save_checkpoint_frq")]),
    Case("unknown_top_key", ["unknown key 'learning_rate' (basicsr would ignore it)"],
         [("add", "", "learning_rate: 0.001")]),
    Case("override_typo", ["(--set train.totl_iter)", "did you mean 'total_iter'?"], overrides=["train.totl_iter=3"],
         cli=True),
    # registered names
    Case("network_type_typo", ["network_g.type: type 'SRVGGNetCompakt' is not registered",
                               "did you mean 'SRVGGNetCompact'?"],
         [("set", "network_g.type", "SRVGGNetCompakt")], line_of="network_g.type", cli=True),
    Case("network_param_typo", ["SRVGGNetCompact has no parameter 'num_feats'", "did you mean 'num_feat'?"],
         [("rename", "network_g.num_feat", "num_feats")], line_of="network_g.num_feat"),
    Case("network_d_missing_param", ["UNetDiscriminatorSN needs 'num_in_ch'"],
         [("rename", "network_d.num_in_ch", "in_channels")]),
    Case("upscale_vs_scale", ["network_g.upscale: is 4 but scale is 2"], [("set", "network_g.upscale", "4")]),
    Case("model_type_typo", ["type 'RealESRGANModle' is not registered", "did you mean 'RealESRGANModel'?"],
         [("set", "model_type", "RealESRGANModle")], line_of="model_type"),
    Case("dataset_type_typo", ["did you mean 'PairedImageDataset'?"],
         [("set", "datasets.train.type", "PairedImageDatset")], line_of="datasets.train.type"),
    Case("loss_type_typo", ["loss 'L1loss' is not registered in basicsr; did you mean 'L1Loss'?"],
         [("set", "train.pixel_opt.type", "L1loss")], line_of="train.pixel_opt.type"),
    Case("optimizer_sgd", ["optimizer 'SGD': basicsr 1.4.2 builds only Adam"], [("set", "train.optim_g.type", "SGD")]),
    Case("scheduler_step", ["scheduler 'StepLR' is not one basicsr 1.4.2 builds"],
         [("set", "train.scheduler.type", "StepLR")]),
    Case("scheduler_param", ["MultiStepLR has no parameter 'step_size'"],
         [("add", "train.scheduler", "step_size: 10")]),
    Case("milestones_decreasing", ["train.scheduler.milestones: must be increasing, got [500, 100]"],
         [("set", "train.scheduler.milestones", "[500, 100]")], line_of="train.scheduler.milestones"),
    Case("milestones_scalar", ["must be a list of positive iteration numbers, got 1000"],
         [("set", "train.scheduler.milestones", "1000")]),
    # sizes
    Case("queue_not_multiple", ["queue_size 5 is not a multiple of batch_size_per_gpu 2", "use queue_size: 4"],
         [("set", "queue_size", "5")], line_of="queue_size", cli=True),
    Case("gt_size_vs_scale", ["datasets.train.gt_size: 33 is not a multiple of scale 2"],
         [("set", "datasets.train.gt_size", "33")]),
    Case("images_smaller_than_gt_size", ["is 96x96, smaller than gt_size 128"],
         [("set", "datasets.train.gt_size", "128")], cli=True),
    # data folders and meta_info
    Case("dataroot_missing", ["datasets.train.dataroot_gt: folder not found: datasets/nowhere"],
         [("set", "datasets.train.dataroot_gt", "datasets/nowhere")], line_of="datasets.train.dataroot_gt",
         cli=True),
    Case("dataroot_empty", ["holds no images: basicsr would stop with ZeroDivisionError"],
         [("set", "datasets.train.dataroot_gt", "broken_data/GT"),
          ("set", "datasets.train.dataroot_lq", "broken_data/LQ")], setup=empty_folders),
    Case("lq_partner_missing", ["has no LQ partner"], OWN_TRAIN, setup=lq_missing),
    Case("non_image_in_folder", ["notes.txt is not an image"], OWN_TRAIN, setup=non_image),
    Case("meta_info_file_missing", ["meta_info_file", "does not exist"],
         [("add", "datasets.train", "meta_info_file: meta_missing.txt")]),
    Case("meta_info_blank_line", ["is an empty line"],
         [*OWN_TRAIN, ("add", "datasets.train", "meta_info_file: meta.txt")], setup=meta_info_blank_line),
    Case("meta_info_lists_missing_image", ["images listed by", "are missing", "not_there.png"],
         [*OWN_TRAIN, ("add", "datasets.train", "meta_info_file: meta.txt")], setup=meta_info_missing_image),
    # weights and states
    Case("pretrained_missing", ["path.pretrain_network_g: file not found: weights/net.pth"], [WEIGHTS],
         line_of="path.pretrain_network_g", cli=True),
    Case("pretrained_empty", ["is empty (0 bytes)"], [WEIGHTS], setup=weights("empty")),
    Case("pretrained_html", ["is not a PyTorch checkpoint"], [WEIGHTS], setup=weights("html"), cli=True),
    Case("pretrained_torn", ["is truncated or damaged"], [WEIGHTS], setup=weights("torn"), cli=True),
    Case("pretrained_bit_flip", ["is damaged", "fails its checksum"], [WEIGHTS], setup=weights("flipped")),
    Case("resume_state_missing", ["path.resume_state: file not found: states/9.state"],
         [("set", "path.resume_state", "states/9.state")]),
    # files that are not options
    Case("yaml_syntax", ["syntax_error.yml:6:", "YAML error"], options=BROKEN / "syntax_error.yml", cli=True),
    Case("yaml_tab", ["tab_indent.yml:3:", "YAML error"], options=BROKEN / "tab_indent.yml"),
    Case("yaml_unclosed_quote", ["YAML error"], options=BROKEN / "unclosed_quote.yml"),
    Case("top_level_list", ["expected a mapping of options"], options=BROKEN / "top_level_list.yml"),
    Case("binary_file", ["not a text file"], options=BROKEN / "binary.yml", cli=True),
    Case("missing_datasets", ["missing top-level key 'datasets'"], options=BROKEN / "no_datasets.yml"),
    Case("missing_options", ["options file not found"], options=BROKEN / "nowhere.yml"),
    Case("several_problems", ["4 problems in", "train.total_iter: is missing", "queue_size 5",
                              "did you mean 'total_iter'?", "SGD"],
         [("set", "queue_size", "5"), ("rename", "train.total_iter", "totl_iter"),
          ("set", "train.optim_d.type", "SGD")]),
]


def prepare(case: Case, root: Path) -> Path:
    if case.setup:
        case.setup(root)
    if case.options is not None:
        return case.options
    text, _ = edited_options(case.edits)
    target = root / f"{case.id}.yml"
    target.write_text(text)
    return target


def expected_location(case: Case, options: Path) -> str | None:
    if case.line_of is None:
        return None
    return f"{options}:{BASE_LINES[case.line_of]}: "


@pytest.mark.parametrize("case", [c for c in CASES if not c.cli], ids=lambda c: c.id)
def test_broken_options_are_refused_with_a_fix(run_root: Path, case: Case):
    options = prepare(case, run_root)
    with pytest.raises(UserError) as caught:
        load_options(options, root=run_root, overrides=case.overrides)
    text = str(caught.value)
    for expected in case.expect:
        assert expected in text, text
    location = expected_location(case, options)
    assert location is None or location in text, text
    assert caught.value.hint or "hint" in text or "fix:" in text, f"no fix given: {text}"


@pytest.mark.parametrize("case", [c for c in CASES if c.cli], ids=lambda c: c.id)
def test_broken_options_through_the_cli(run_root: Path, case: Case):
    options = prepare(case, run_root)
    sets = [arg for entry in case.overrides for arg in ("--set", entry)]
    result = srcockpit("train", str(options), *sets, cwd=run_root, check=False, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for expected in case.expect:
        assert expected in result.stderr, result.stderr
    location = expected_location(case, options)
    assert location is None or location in result.stderr, result.stderr
    assert "hint:" in result.stderr
    assert not list(run_root.glob("experiments/*/cockpit/engine.json")), "an engine was started"


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert sum(c.cli for c in CASES) >= 8


def test_shipped_options_pass_the_checks(run_root: Path):
    """The tiny options pass; the plan's file fails only on what this machine lacks (and its queue)."""
    opt = load_options(TINY_OPTIONS, root=run_root)
    assert opt["notes"] == ["scheduler milestones [1000] lie beyond total_iter 8: the learning rate never decays"]
    plan = REPO / "options" / "finetune_small_realesr_animevideox2v3.yml"
    with pytest.raises(UserError) as caught:
        load_options(plan, root=run_root)
    text = str(caught.value)
    assert "unknown key" not in text and "registered" not in text and "must be" not in text, text
    assert "queue_size 180 is not a multiple of batch_size_per_gpu 16" in text  # basicsr would assert on it
    assert "folder not found: datasets/DF2K" in text and "weights/small-realesr-animevideox2v3.pth" in text


def test_plan_floats_for_counts_are_accepted(run_root: Path):
    """basicsr's own files write `val_freq: !!float 5e3`; that is a count, not a mistake."""
    load_options(TINY_OPTIONS, root=run_root, overrides=["val.val_freq=!!float 5e3",
                                                         "logger.save_checkpoint_freq=!!float 4e0"])


def test_good_weights_pass_the_torch_free_check(tmp_path: Path):
    import torch

    torch.save({"params": {"w": torch.ones(3)}}, tmp_path / "new.pth")
    torch.save({"params": {"w": torch.ones(3)}}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert check_pretrained(tmp_path / "new.pth") is None
    assert check_pretrained(tmp_path / "old.pth") is None


def test_options_module_stays_torch_free():
    import subprocess

    code = ("import sys, engine.options as o; o.registered('ARCH_REGISTRY'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_the_engine_perceptual_loss_is_a_known_loss_type(run_root: Path):
    """FileVGGPerceptualLoss (engine/perceptual.py: basicsr's PerceptualLoss with its VGG weights from a file,
    what --vgg-weights makes of the plan's loss) passes the checks by name, with its parameters checked too."""
    loss = "train.perceptual_opt={type: FileVGGPerceptualLoss, layer_weights: {conv5_4: 1.0}, %s: vgg19.pth}"
    load_options(TINY_OPTIONS, root=run_root, overrides=[loss % "vgg_weights"])
    with pytest.raises(UserError, match="vgg_weight"):
        load_options(TINY_OPTIONS, root=run_root, overrides=[loss % "vgg_weight"])
