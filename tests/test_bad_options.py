"""A corpus of bad option files and --set values, each refused clearly by the real CLI (issue 17).

Every case runs `srcockpit --no-ui train` (foreground: the check runs before any engine starts) and,
for an options file, `srcockpit data check`: exit status 2, no traceback, the file (and line) and
the key named with a hint, nothing created under experiments/ and nothing moved.
"""

from __future__ import annotations

import contextlib
import random
import shutil
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
