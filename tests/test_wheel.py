"""A wheel that works: it holds the option files, the themes and the stylesheet, and an install of it
(not editable, used from an empty folder) finds them and runs `srcockpit demo --fast --no-ui`: the demo's
whole journey end to end (one run of it in the suite, from the installed copy)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.protocol import ValEvent, load_events
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


def test_installed_demo_runs_the_whole_journey_from_an_empty_folder_and_reuses_it(installed: Path, tmp_path: Path):
    """`srcockpit demo --fast --no-ui` from the installed wheel in an empty folder: every step, the report's
    scores, the export, the saved validation images, the TensorBoard scalars, then a second call reuses all."""
    srcockpit_bin = str(installed / "bin" / "srcockpit")
    first = run_installed(installed, tmp_path, srcockpit_bin, "demo", "--fast", "--no-ui", timeout=1800)
    root = tmp_path / "srcockpit-demo"
    record = json.loads((root / "demo.json").read_text())
    assert list(record["steps"]) == ["data", "original", "transfer", "stage1", "stage2", "rank", "report", "export"]
    assert record["steps"]["stage1"]["run"] == str(root / "experiments" / "demo_stage1_l1")

    report = json.loads((root / "report/report.json").read_text())
    models = report["models"]
    assert {"nearest", "bicubic", "original", "transferred", "fine-tuned"} <= set(models)
    # the point of the plan: fine-tuning recovers what the transfer lost
    assert models["fine-tuned"]["psnr"] > models["transferred"]["psnr"]
    assert models["original"]["parameters"] == 600_652 and models["fine-tuned"]["parameters"] == 301_356
    assert (root / "report/report.html").stat().st_size > 10_000

    best = record["steps"]["rank"]["best"]
    assert best["run"] in ("demo_stage1_l1", "demo_stage2_gan") and best["entry"] in ("params", "params_ema")
    assert json.loads((root / "weights/small-realesr-animevideox2v3-finetuned.json").read_text())["rank"] == 1

    manifest = json.loads((root / "export/manifest.json").read_text())
    assert manifest["figures"]["onnx"]["max_abs_error"] < 1e-5
    assert any(name.endswith("_ctx.onnx") for name in json.dumps(manifest["artefacts"]).split('"'))
    for stage in ("demo_stage1_l1", "demo_stage2_gan"):  # both stages save what the image viewer shows
        log = load_events(root / "experiments" / stage / "cockpit" / "events.jsonl")
        vals = [e for e in log.events if isinstance(e, ValEvent)]
        assert vals and all(v.images and set(v.image_psnr) == {Path(p).parent.name for p in v.images} for v in vals)
    assert "perceptual loss off" in first.stdout
    assert "export manifest" in first.stdout
    # the results themselves, not only paths: the report's scores per model and the export's figures
    for label in ("nearest", "bicubic", "original", "transferred", "fine-tuned"):
        row = next(line for line in first.stdout.splitlines() if line.strip().startswith(label + " "))
        assert f"{models[label]['psnr']:.3f}" in row and f"{models[label]['ssim']:.4f}" in row, row
    assert "QDQ vs float" in first.stdout and "HTP v73 context binary" in first.stdout
    assert "demo result: {" not in first.stdout and "summary demo: finished" in first.stdout

    # TensorBoard stays a fallback: both stages' scalars are in their tb_logger/ (the plan's logdir)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for stage, loss in (("demo_stage1_l1", "losses/l_pix"), ("demo_stage2_gan", "losses/l_g_pix")):
        events = EventAccumulator(str(root / "experiments" / stage / "tb_logger"))
        events.Reload()
        tags = events.Tags()["scalars"]
        assert loss in tags and any(t.startswith("metrics/") and t.endswith("/psnr") for t in tags), (stage, tags)

    again = run_installed(installed, tmp_path, srcockpit_bin, "demo", "--fast", "--no-ui", timeout=300)
    assert again.stdout.count("done earlier, reused") == 8
