"""A wheel that works: it holds the option files, the themes and the stylesheet, and an install of it
(not editable, used from an empty folder) finds them and runs `srcockpit demo --fast --no-ui`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
SOURCES = ("pyproject.toml", "setup.py", "README.md", "engine", "tui", "options", "themes")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (a build writes build/ and *.egg-info beside them)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(work / "dist")], check=True, capture_output=True, text=True, timeout=300)
    (built,) = (work / "dist").glob("srcockpit-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Path:
    """The wheel installed (not editable) into a folder of its own."""
    target = wheel.parent.parent / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    return target


def run_installed(target: Path, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A command with only the installed copy of srcockpit importable (the shared venv's other packages stay)."""
    env = dict(os.environ, PYTHONPATH=str(target), SRCOCKPIT_CONFIG_DIR=str(cwd / "config"), PYTHONUNBUFFERED="1")
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_wheel_holds_the_option_files_themes_and_stylesheet(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    options = sorted(p.name for p in (REPO / "options").glob("*.yml"))
    themes = sorted(p.name for p in (REPO / "themes").glob("*.yaml"))
    assert options and themes
    assert {f"engine/options_files/{name}" for name in options} <= names
    assert {f"tui/themes/{name}" for name in themes} <= names
    assert "tui/cockpit.tcss" in names
    code = {p.relative_to(REPO).as_posix() for folder in ("engine", "tui") for p in (REPO / folder).rglob("*.py")}
    assert code <= names, sorted(code - names)  # every subpackage is found (setup.py)


def test_installed_copy_reads_its_own_option_files_and_themes(installed: Path, tmp_path: Path):
    code = ("import json, engine, tui, engine.demo, tui.config\n"
            "themes, problems = tui.config.load_themes()\n"
            "print(json.dumps({'engine': engine.__file__, 'tui': tui.__file__, 'problems': problems,\n"
            "                  'options': [str(p) for p in (engine.demo.STAGE1_OPTIONS, engine.demo.PLAN_OPTIONS)\n"
            "                              if p.is_file()], 'themes': sorted(t.name for t in themes)}))\n")
    found = json.loads(run_installed(installed, tmp_path, sys.executable, "-c", code).stdout)
    assert Path(found["engine"]).is_relative_to(installed) and Path(found["tui"]).is_relative_to(installed)
    assert [Path(p).parent for p in found["options"]] == [installed / "engine" / "options_files"] * 2
    assert found["themes"] == ["srcockpit-contrast", "srcockpit-dark", "srcockpit-light"]
    assert found["problems"] == []


def test_installed_demo_runs_from_an_empty_folder(installed: Path, tmp_path: Path):
    result = run_installed(installed, tmp_path, str(installed / "bin" / "srcockpit"), "demo", "--fast", "--no-ui",
                           timeout=1800)
    record = json.loads((tmp_path / "srcockpit-demo" / "demo.json").read_text())
    assert list(record["steps"]) == ["data", "original", "transfer", "stage1", "stage2", "rank", "report", "export"]
    assert record["steps"]["stage1"]["run"] == str(tmp_path / "srcockpit-demo" / "experiments" / "demo_stage1_l1")
    assert "export manifest" in result.stdout
