"""A corpus of bad option files and --set values, each refused clearly by the real CLI (issue 17).

Every case runs `srcockpit --no-ui train` (foreground: the check runs before any engine starts) and,
for an options file, `srcockpit data check`: exit status 2, no traceback, the file (and line) and
the key named with a hint, nothing created under experiments/ and nothing moved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.options import load_options, read_yaml, resolve
from engine.protocol import UserError
from tests.conftest import TINY_OPTIONS, srcockpit

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
