"""A corpus of bad option files and --set values, each refused clearly by the real CLI (issue 17).

Every case runs `srcockpit --no-ui train` (foreground: the check runs before any engine starts) and,
for an options file, `srcockpit data check`: exit status 2, no traceback, the file (and line) and
the key named with a hint, nothing created under experiments/ and nothing moved. The corpus's commands are
forked from a zygote that has imported torch once (the forked_srcockpit fixture).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.data.meta_info import check_options_file
from engine.options import key_lines, load_options, read_yaml, resolve
from engine.options_check import check_structure
from engine.options_yaml import Report
from engine.protocol import UserError
from tests.conftest import REPO, TINY_OPTIONS, srcockpit

NAMES = ["../../victim", "/abs/path", ".", "..", "", "a/b", "-rf", "x" * 201]


def tree(root: Path) -> set[str]:
    """Every path under root but the dataset's: what a refused command must leave as it was."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if "datasets" not in p.relative_to(root).parts}


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_a_name_that_is_not_one_folder_is_refused(run_root: Path, name: str):
    (run_root / "victim").mkdir()
    before = tree(run_root)
    result = srcockpit("--no-ui", "train", str(TINY_OPTIONS), "--set", f"name='{name}'", cwd=run_root, check=False,
                       timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "(--set name): name:" in result.stderr and "hint: write one plain folder name" in result.stderr
    assert tree(run_root) == before


def test_a_name_with_a_nul_byte_in_the_file_is_refused_at_its_line(run_root: Path):
    options = run_root / "nul.yml"
    options.write_text(TINY_OPTIONS.read_text().replace("name: tiny_cpu", 'name: "tiny\\0cpu"'))
    result = srcockpit("--no-ui", "train", str(options), cwd=run_root, check=False, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{options}:6: name:" in result.stderr, result.stderr
    assert not (run_root / "experiments").exists()


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_resolve_builds_no_path_outside_experiments(tmp_path: Path, name: str):
    opt = read_yaml(TINY_OPTIONS)
    opt["name"] = name
    with pytest.raises(UserError, match="name: "):
        resolve(opt, root=tmp_path, debug=False, auto_resume=False, num_gpu=0)


@pytest.mark.parametrize("debug", [False, True])
def test_a_long_plain_name_stays_valid_with_the_debug_prefix(run_root: Path, debug: bool):
    opt = load_options(TINY_OPTIONS, root=run_root, overrides=[f"name={'n' * 200}"], debug=debug)
    folder = Path(opt["path"]["experiments_root"])
    assert folder.parent == run_root / "experiments" and len(folder.name) <= 200
    assert folder.name.startswith("debug_") == debug


# ---- any YAML value at any key: a UserError or success, never another exception --------------------

ODD_YAML = ["~", "''", "' '", "0", "-1", "1.5", "-0.0", ".nan", ".inf", "-.inf", "99999999999999999999999999", "true",
            "'32'", "1e-4", "0x1F", "2026-12-01", "[]", "{}", "[1, 2, 3]", "[[1], {a: b}]", "{type: disk}",
            "&a [*a]", "!!binary aGVsbG8=", "'a\\0b'", "\"\\0\"", "'../../x'", "'/etc'", "'é漢字🙂'", "'{}{}{'",
            "{? [1, 2] : 3}", "[" * 50 + "]" * 50, "x" * 5000, "!!float 5e3", "{1: 2}", "auto"]


def random_value(rng: random.Random, depth: int = 0) -> str:
    """A YAML value: one of the odd ones, or a random nest of numbers, text, lists and mappings."""
    if rng.random() < 0.6 or depth > 2:
        return rng.choice(ODD_YAML)
    if rng.random() < 0.5:
        return "[" + ", ".join(random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    return "{" + ", ".join(f"k{i}: {random_value(rng, depth + 1)}" for i in range(rng.randint(0, 3))) + "}"


def test_any_value_at_any_key_is_a_user_error_or_accepted(run_root: Path):
    rng = random.Random(17)
    keys = sorted(key_lines(TINY_OPTIONS))
    outcomes = {"accepted": 0, "refused": 0}
    for key in keys:
        for value in [*rng.sample(ODD_YAML, 4), random_value(rng)]:
            try:
                load_options(TINY_OPTIONS, root=run_root, overrides=[f"{key}={value}"])
                outcomes["accepted"] += 1
            except UserError as error:
                assert "Traceback" not in str(error) and str(error).strip(), (key, value)
                outcomes["refused"] += 1
    assert outcomes["refused"] > 4 * len(keys), outcomes
    assert not (run_root / "experiments").exists()


def test_any_yaml_as_a_whole_file_is_a_user_error(run_root: Path):
    rng = random.Random(18)
    for index in range(200):
        options = run_root / f"odd{index}.yml"
        text = TINY_OPTIONS.read_text().splitlines()
        at = rng.randrange(len(text))
        text[at] = text[at].split(":")[0] + ": " + random_value(rng) if ":" in text[at] else random_value(rng)
        options.write_text("\n".join(text) + "\n")
        with contextlib.suppress(UserError):
            load_options(options, root=run_root)
        with contextlib.suppress(UserError):
            check_options_file(options, base=run_root)


# ---- what must be accepted ------------------------------------------------------------------------

def test_the_newcomers_first_run_from_an_empty_folder(tmp_path: Path):
    """options/tiny_cpu.yml says `srcockpit data demo` builds its data: it does, and it trains on it."""
    srcockpit("data", "demo", cwd=tmp_path, timeout=600)
    (tmp_path / "options").mkdir()
    shutil.copy(TINY_OPTIONS, tmp_path / "options" / "tiny_cpu.yml")
    checked = srcockpit("data", "check", "options/tiny_cpu.yml", cwd=tmp_path)
    assert "ok  datasets.train (demo_train, PairedImageDataset): 10 images" in checked.stdout, checked.stdout
    srcockpit("--no-ui", "train", "options/tiny_cpu.yml", "--set", "train.total_iter=1", "--set", "val.val_freq=100",
              "--set", "logger.save_checkpoint_freq=1", cwd=tmp_path, timeout=600)
    assert (tmp_path / "experiments/tiny_cpu/models/net_g_1.pth").is_file()


@pytest.mark.parametrize("options", sorted((REPO / "options").glob("*.yml")), ids=lambda p: p.name)
def test_the_shipped_options_pass_the_schema(options: Path):
    report = Report(options, key_lines(options))
    check_structure(read_yaml(options), report)
    problems = [f"{p.key}: {p.message}" for p in report.problems]
    assert problems in ([], ["queue_size: queue_size 180 is not a multiple of batch_size_per_gpu 16"]), problems


# ---- the corpus: bad files and --set values through the real CLI ---------------------------------

@dataclass
class Bad:
    """One bad input: --set values on tiny_cpu.yml, text replacements in it, or a whole file of its own."""

    id: str
    expect: str  # the key (or words) the message must name
    sets: list[str] = field(default_factory=list)
    edits: list[tuple[str, str]] = field(default_factory=list)  # (old, new), the first occurrence each
    raw: bytes | None = None  # the options file's bytes, when not an edit of tiny_cpu.yml
    line_of: str | None = None  # the dotted key whose line the message must name
    setup: str = ""  # "weights" writes weights/*.pth


def set_(id: str, expect: str, *sets: str, setup: str = "") -> Bad:
    return Bad(id, expect, sets=list(sets), setup=setup)


def edit(id: str, expect: str, *edits: tuple[str, str], line_of: str | None = None) -> Bad:
    return Bad(id, expect, edits=list(edits), line_of=line_of)


def append(id: str, expect: str, text: str, line_of: str | None = None) -> Bad:
    return Bad(id, expect, edits=[("\ndist_params:", f"\n{text}\ndist_params:")], line_of=line_of)


IO_BACKEND = "    io_backend:\n      type: disk\n    gt_size: 32"
LOGGER = "logger:\n  print_freq: 1\n  save_checkpoint_freq: 4\n  use_tb_logger: false\n  wandb:\n    project: ~\n" \
         "    resume_id: ~\n"
BOMB = "lol:\n  a: &a {x: 1, y: 1, z: 1, w: 1}\n" + "".join(
    f"  {chr(98 + i)}: &{chr(98 + i)} {{{', '.join(f'k{j}: *{chr(97 + i)}' for j in range(9))}}}\n" for i in range(9))

CORPUS = [
    # --set values (train only: `data check` takes no --set)
    set_("set_manual_seed_negative", "manual_seed", "manual_seed=-1"),
    set_("set_manual_seed_huge", "manual_seed", "manual_seed=99999999999999999999"),
    set_("set_workers_negative", "datasets.train.num_worker_per_gpu", "datasets.train.num_worker_per_gpu=-3"),
    set_("set_workers_at_top", "unknown key 'num_worker_per_gpu'", "num_worker_per_gpu=-3"),
    set_("set_dataroot_null", "datasets.train.dataroot_gt", "datasets.train.dataroot_gt=null"),
    set_("set_num_gpu_many", "torch sees 0 CUDA GPU", "num_gpu=4096"),
    set_("set_num_gpu_negative", "num_gpu", "num_gpu=-1"),
    set_("set_total_iter_negative", "train.total_iter", "train.total_iter=-5"),
    set_("set_total_iter_fraction", "train.total_iter", "train.total_iter=1.5"),
    set_("set_total_iter_word", "train.total_iter", "train.total_iter=ten"),
    set_("set_total_iter_list", "train.total_iter", "train.total_iter=[8]"),
    set_("set_print_freq_zero", "logger.print_freq", "logger.print_freq=0"),
    set_("set_checkpoint_freq_list", "logger.save_checkpoint_freq", "logger.save_checkpoint_freq=[4]"),
    set_("set_val_freq_null", "val.val_freq", "val.val_freq=null"),
    set_("set_ema_decay_5", "train.ema_decay", "train.ema_decay=5"),
    set_("set_ema_decay_negative", "train.ema_decay", "train.ema_decay=-0.1"),
    set_("set_lr_negative", "train.optim_g.lr", "train.optim_g.lr=-1"),
    set_("set_lr_nan", "train.optim_g.lr", "train.optim_g.lr=.nan"),
    set_("set_betas_one", "train.optim_g.betas", "train.optim_g.betas=[0.9]"),
    set_("set_betas_above_1", "train.optim_d.betas", "train.optim_d.betas=[0.9, 1.5]"),
    set_("set_optimizer_sgd", "train.optim_d.type", "train.optim_d.type=SGD"),
    set_("set_gamma_word", "train.scheduler.gamma", "train.scheduler.gamma=fast"),
    set_("set_milestones_empty", "train.scheduler.milestones", "train.scheduler.milestones=[]"),
    set_("set_scheduler_null", "train.scheduler", "train.scheduler=null"),
    set_("set_num_feat_negative", "network_g.num_feat", "network_g.num_feat=-8"),
    set_("set_num_conv_huge", "network_g.num_conv", "network_g.num_conv=99999999999999999999999"),
    set_("set_upscale_vs_scale", "network_g.upscale", "network_g.upscale=3"),
    set_("set_act_type", "network_g.act_type", "network_g.act_type=gelu"),
    set_("set_io_backend_text", "datasets.train.io_backend", "datasets.train.io_backend=disk"),
    set_("set_gt_size_negative", "datasets.train.gt_size", "datasets.train.gt_size=-64"),
    set_("set_hflip_maybe", "datasets.train.use_hflip", "datasets.train.use_hflip=maybe"),
    set_("set_val_folder_missing", "datasets.val.dataroot_lq", "datasets.val.dataroot_lq=datasets/nowhere"),
    set_("set_pretrained_rrdb", "not an SRVGGNetCompact checkpoint of the network_g shape",
         "path.pretrain_network_g=weights/rrdb.pth", setup="weights"),
    set_("set_pretrained_zip_with_data_pkl", "is not a torch checkpoint", "path.pretrain_network_g=weights/fake.pth",
         setup="weights"),
    set_("set_pretrained_narrower", "not an SRVGGNetCompact checkpoint", "path.pretrain_network_g=weights/narrow.pth",
         setup="weights"),
    set_("set_pretrained_text", "path.pretrain_network_g", "path.pretrain_network_g=weights/notes.pth",
         setup="weights"),
    set_("set_pretrained_d_no_params", "has no 'params' entry", "path.pretrain_network_d=weights/rrdb.pth",
         setup="weights"),
    set_("set_pretrained_d_rrdb", "not a UNetDiscriminatorSN checkpoint of the network_d shape",
         "path.pretrain_network_d=weights/rrdb.pth", "path.param_key_d=params_ema", setup="weights"),
    set_("set_resume_state_missing", "path.resume_state", "path.resume_state=states/9.state"),
    set_("set_train_key_typo", "did you mean 'total_iter'", "train.totl_iter=3"),
    set_("set_autocast_fp32", "srcockpit.autocast", "srcockpit.autocast=fp32"),
    set_("set_srcockpit_typo", "did you mean 'channels_last'", "srcockpit={chanels_last: true}"),
    set_("set_batch_vs_queue", "queue_size", "datasets.train.batch_size_per_gpu=3"),
    set_("set_queue_zero", "queue_size", "queue_size=0"),
    set_("set_no_such_section", "no section 'nosuch'", "nosuch.section.key=1"),
    set_("set_no_equals", "bad override", "train.total_iter"),
    set_("set_bad_yaml_value", "not valid YAML", "train.total_iter=[1, 2"),
    set_("set_filename_tmpl", "datasets.train.filename_tmpl", "datasets.train.filename_tmpl='{0}{1}'"),
    set_("set_port", "dist_params.port", "dist_params.port=70000"),
    set_("set_crop_border_word", "val.metrics.psnr.crop_border", "val.metrics.psnr.crop_border=two"),
    set_("set_metric_not_section", "val.metrics.psnr", "val.metrics.psnr=5"),
    set_("set_reduction", "train.pixel_opt.reduction", "train.pixel_opt.reduction=avg"),
    set_("set_loss_unknown", "train.gan_opt.type", "train.gan_opt.type=HingeLoss"),
    set_("set_name_slash", "name", "name=a/b"),
    set_("set_name_python_tag", "not valid YAML", "name=!!python/object/apply:os.system ['touch pwned']"),
    # edits of the file (train and data check)
    edit("io_backend_text", "datasets.train.io_backend", (IO_BACKEND, "    io_backend: disk\n    gt_size: 32"),
         line_of="datasets.train.io_backend"),
    edit("num_feat_quoted", "network_g.num_feat", ("  num_feat: 32\n  num_conv", '  num_feat: "32"\n  num_conv'),
         line_of="network_g.num_feat"),
    edit("betas_text", "train.optim_g.betas", ("betas: [0.9, 0.99]", 'betas: "0.9,0.99"'),
         line_of="train.optim_g.betas"),
    edit("crop_border_text", "val.metrics.psnr.crop_border", ("crop_border: 2", "crop_border: two"),
         line_of="val.metrics.psnr.crop_border"),
    edit("gamma_text", "train.scheduler.gamma", ("gamma: 0.5", "gamma: half"), line_of="train.scheduler.gamma"),
    edit("ema_decay_5", "train.ema_decay", ("ema_decay: 0.999", "ema_decay: 5"), line_of="train.ema_decay"),
    edit("gt_size_negative_with_another", "datasets.train.gt_size", ("    gt_size: 32", "    gt_size: -64"),
         ("queue_size: 4", "queue_size: 5"), line_of="datasets.train.gt_size"),
    edit("total_iter_quoted", "train.total_iter", ("total_iter: 8", "total_iter: '8'"), line_of="train.total_iter"),
    edit("print_freq_fraction", "logger.print_freq", ("print_freq: 1", "print_freq: 1.5"), line_of="logger.print_freq"),
    edit("val_freq_negative", "val.val_freq", ("val_freq: 4", "val_freq: -4"), line_of="val.val_freq"),
    edit("checkpoint_freq_word", "logger.save_checkpoint_freq",
         ("save_checkpoint_freq: 4", "save_checkpoint_freq: no"), line_of="logger.save_checkpoint_freq"),
    edit("tab_indent", "YAML error", ("    name: demo_train", "\tname: demo_train")),
    edit("nbsp_indent", "YAML error", ("    name: demo_train", "\u00a0   name: demo_train")),
    edit("unicode_key_typo", "did you mean 'queue_size'", ("queue_size: 4", "queue_sizé: 4"), line_of="queue_sizé"),
    edit("total_iter_at_top", "train.total_iter", ("  total_iter: 8\n", ""),
         ("gt_size: 32\nqueue", "total_iter: 8\ngt_size: 32\nqueue")),
    edit("logger_missing", "missing top-level key 'logger'", (LOGGER, "")),
    edit("type_missing", "datasets.train.type", ("    type: PairedImageDataset\n    dataroot_gt: datasets/demo/train",
                                                 "    dataroot_gt: datasets/demo/train")),
    edit("phase_number", "a key must be text", ("  val:\n    name: demo_val", "  1:\n    name: demo_val")),
    edit("dataroot_number", "datasets.train.dataroot_gt",
         ("dataroot_gt: datasets/demo/train/GTmod12", "dataroot_gt: 12"), line_of="datasets.train.dataroot_gt"),
    edit("dataroot_empty_text", "datasets.train.dataroot_gt",
         ("dataroot_gt: datasets/demo/train/GTmod12", "dataroot_gt: ''")),
    edit("dataroot_a_file", "dataroot_lq", ("dataroot_lq: datasets/demo/val/LRbicx2", "dataroot_lq: bad.yml")),
    edit("use_rot_number", "datasets.train.use_rot", ("use_rot: false", "use_rot: 1"),
         line_of="datasets.train.use_rot"),
    edit("prefetch_gpu", "datasets.train.prefetch_mode", ("prefetch_mode: ~", "prefetch_mode: gpu")),
    edit("lr_text", "read as text", ("lr: !!float 1e-4", "lr: 1e-4"), line_of="train.optim_g.lr"),
    edit("milestones_decreasing", "must be increasing", ("milestones: [1000]", "milestones: [1000, 500]")),
    edit("warmup_negative", "train.warmup_iter", ("warmup_iter: -1", "warmup_iter: -5")),
    edit("net_d_iters_zero", "train.net_d_iters", ("net_d_iters: 1", "net_d_iters: 0")),
    edit("total_iter_infinite", "train.total_iter", ("total_iter: 8", "total_iter: !!float 1e400")),
    edit("total_iter_e_notation", "train.total_iter", ("total_iter: 8", "total_iter: 1e400")),
    edit("deep_nesting", "YAML error", ("manual_seed: 0", "manual_seed: " + "[" * 5000 + "]" * 5000)),
    edit("python_tag", "YAML error", ("name: tiny_cpu", "name: !!python/object/apply:os.system ['touch pwned']")),
    edit("name_a_date", "name", ("name: tiny_cpu", "name: 2026-12-01"), line_of="name"),
    edit("name_trailing_space", "name", ("name: tiny_cpu", "name: 'tiny '"), line_of="name"),
    edit("name_absolute", "name", ("name: tiny_cpu", "name: /tmp"), line_of="name"),
    edit("name_dot", "name", ("name: tiny_cpu", "name: ."), line_of="name"),
    edit("name_empty", "name", ("name: tiny_cpu", "name: ''"), line_of="name"),
    edit("scale_float", "scale", ("scale: 2\n", "scale: 2.0\n"), line_of="scale"),
    edit("scale_negative", "scale", ("scale: 2\n", "scale: -2\n"), line_of="scale"),
    edit("model_type_null", "model_type", ("model_type: RealESRGANModel", "model_type: ~"), line_of="model_type"),
    edit("model_type_typo", "did you mean 'RealESRGANModel'",
         ("model_type: RealESRGANModel", "model_type: RealESRGANModle")),
    edit("network_type_typo", "did you mean 'SRVGGNetCompact'", ("type: SRVGGNetCompact", "type: SRVGGNetCompakt")),
    append("train_null", "train", "train: ~"),
    append("train_list", "train", "train: [total_iter, 8]"),
    append("network_g_text", "network_g", "network_g: SRVGGNetCompact"),
    append("val_empty", "val.val_freq", "val: {}"),
    append("path_null", "path", "path: null"),
    append("num_gpu_word", "num_gpu", "num_gpu: two"),
    append("datasets_list", "datasets", "datasets: [train, val]"),
    append("top_key_number", "a key must be text", "1: one"),
    append("probability_above_1", "gaussian_noise_prob", "gaussian_noise_prob: 1.5"),
    append("resize_prob_two", "resize_prob", "resize_prob: [0.2, 0.8]"),
    append("metrics_list", "val.metrics", "val: {val_freq: 4, metrics: [psnr, ssim]}"),
    append("alias_bomb", "unknown key 'lol'", BOMB),
    append("recursive_alias", "unknown key 'loop'", "loop: &l [1, *l]"),
    # whole files of their own
    Bad("empty_file", "expected a mapping of options", raw=b""),
    Bad("only_comments", "expected a mapping of options", raw=b"# nothing here\n"),
    Bad("plain_text", "expected a mapping of options", raw=b"hello world\n"),
    Bad("json_list", "expected a mapping of options", raw=b"[1, 2, 3]\n"),
    Bad("binary_file", "not a text file", raw=bytes(range(256)) * 4),
    Bad("latin1_bytes", "not a text file", raw=b"name: caf\xe9\n"),
    Bad("png_as_options", "not a text file", raw=b"\x89PNG\r\n\x1a\n" + bytes(200)),
    Bad("unclosed_quote", "YAML error", raw=b"name: 'tiny\nmodel_type: x\n"),
    Bad("unclosed_bracket", "YAML error", raw=b"name: [tiny\n"),
    Bad("only_name", "missing top-level key", raw=b"name: tiny\n"),
]
SPECIAL = ["a_directory", "missing_file", "dev_null"]
# `data check` reads the datasets section only (and the file itself): these cases are refused by it too.
DATA_CHECKED = {"io_backend_text", "gt_size_negative_with_another", "tab_indent", "nbsp_indent", "type_missing",
                "phase_number", "dataroot_number", "dataroot_empty_text", "dataroot_a_file", "use_rot_number",
                "prefetch_gpu", "deep_nesting", "python_tag", "datasets_list"}
DATA_CHECKED |= {c.id for c in CORPUS if c.raw is not None}


def write_weights(root: Path) -> None:
    import torch

    from engine.compat import load_basicsr

    load_basicsr()
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from basicsr.archs.srvgg_arch import SRVGGNetCompact

    folder = root / "weights"
    folder.mkdir()
    torch.save({"params_ema": RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4).state_dict()}, folder / "rrdb.pth")
    narrow = SRVGGNetCompact(3, 3, num_feat=16, num_conv=32, upscale=2).state_dict()
    torch.save({"params_ema": narrow}, folder / "narrow.pth")
    with zipfile.ZipFile(folder / "fake.pth", "w") as archive:  # a zip that merely holds a data.pkl
        archive.writestr("archive/data.pkl", b"not a pickle at all")
    (folder / "notes.pth").write_text("these are not weights\n")


def bad_file(case: Bad, root: Path) -> Path:
    target = root / "bad.yml"
    if case.raw is not None:
        target.write_bytes(case.raw)
        return target
    text = TINY_OPTIONS.read_text()
    for old, new in case.edits:
        assert old in text, f"{case.id}: {old!r} is not in tiny_cpu.yml"
        text = text.replace(old, new, 1)
    target.write_text(text)
    return target


def assert_refused(result: subprocess.CompletedProcess, case: Bad, options: Path, root: Path, before: set[str]):
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out, out
    assert result.stderr.count("srcockpit: error:") == 1, result.stderr
    assert str(options) in result.stderr and case.expect in result.stderr, result.stderr
    assert "hint:" in result.stderr, result.stderr
    if case.line_of:
        assert f"{options}:{key_lines(options)[case.line_of]}: " in result.stderr, result.stderr
    assert not (root / "experiments").exists() and not (root / "pwned").exists()
    assert tree(root) == before


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_a_bad_input_is_refused_clearly(run_root: Path, case: Bad, forked_srcockpit):
    if case.setup == "weights":
        write_weights(run_root)
    options = bad_file(case, run_root) if case.raw is not None or case.edits else TINY_OPTIONS
    before = tree(run_root)
    sets = [arg for entry in case.sets for arg in ("--set", entry)]
    result = forked_srcockpit("--no-ui", "train", str(options), *sets, cwd=run_root, check=False, timeout=300)
    assert_refused(result, case, options, run_root, before)
    if case.id in DATA_CHECKED:
        result = forked_srcockpit("data", "check", str(options), cwd=run_root, check=False, timeout=300)
        assert_refused(result, case, options, run_root, before)


@pytest.mark.parametrize("special", SPECIAL)
def test_what_is_not_an_options_file_is_refused(run_root: Path, special: str, forked_srcockpit):
    options = {"a_directory": run_root / "datasets", "missing_file": run_root / "nowhere.yml",
               "dev_null": Path("/dev/null")}[special]
    for command in (("--no-ui", "train"), ("data", "check")):
        result = forked_srcockpit(*command, str(options), cwd=run_root, check=False, timeout=300)
        assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr, result.stderr
        assert str(options) in result.stderr and "hint:" in result.stderr, result.stderr
    assert not (run_root / "experiments").exists()


def test_the_corpus_is_large_enough():
    assert len(CORPUS) + len(SPECIAL) >= 80
