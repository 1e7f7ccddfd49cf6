"""Security habits (issue 17): no pickle from disk runs code, a run is private whatever the umask, no name
from the options leaves experiments/, and another Unix user can neither read a run nor command it."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from engine.launch import archive_old_run
from engine.protocol import RunPaths, UserError, read_events
from engine.states import load_state
from tests.conftest import TINY_OPTIONS, srcockpit, wait_for

QUICK = ("--set", "train.total_iter=1", "--set", "val.val_freq=1000000")


class Planted:
    """A pickle that runs code when unpickled with weights_only=False: it creates its marker folder."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def plant_state(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"iter": 2, "epoch": 0, "optimizers": [], "schedulers": [], "code": Planted(marker)}, path)


def test_a_planted_state_in_training_states_is_skipped_not_run(run_root: Path):
    marker = run_root / "code-ran"
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    plant_state(paths.training_states / "2.state", marker)
    srcockpit("--no-ui", "train", str(TINY_OPTIONS), "--auto-resume", *QUICK, cwd=run_root)
    assert not marker.exists()
    skipped = [e for e in read_events(paths.events) if e["type"] == "alert" and e["code"] == "resume_skip"]
    assert skipped and "2.state" in skipped[0]["message"]


def test_a_planted_resume_state_is_refused_not_run(run_root: Path):
    marker = run_root / "code-ran"
    planted = run_root / "elsewhere" / "100.state"
    plant_state(planted, marker)
    result = srcockpit("--no-ui", "train", str(TINY_OPTIONS), "--set", f"path.resume_state={planted}", *QUICK,
                       cwd=run_root, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"cannot resume from {planted}" in result.stderr
    assert not marker.exists()


def test_states_load_with_numpy_parts_of_older_states(tmp_path: Path):
    import numpy as np

    path = tmp_path / "4.state"
    torch.save({"iter": 4, "epoch": 0, "optimizers": [], "schedulers": [], "rng": {"numpy": np.random.get_state()},
                "best_metric_results": {"val": {"psnr": {"better": "higher", "val": np.float64(30.5), "iter": 4}}}},
               path)
    state = load_state(path)
    assert state["best_metric_results"]["val"]["psnr"]["val"] == 30.5
    np.random.set_state(state["rng"]["numpy"])
    torch.save([1, 2], tmp_path / "list.state")
    with pytest.raises(ValueError, match="not a basicsr training state"):
        load_state(tmp_path / "list.state")


@pytest.mark.parametrize("name", ["..", ".", "", "../../victim"])
def test_no_folder_outside_experiments_is_archived(tmp_path: Path, name: str):
    victim = tmp_path / "victim"
    (victim / "data").mkdir(parents=True)
    experiments = tmp_path / "project" / "experiments"
    (experiments / "live_run" / "cockpit").mkdir(parents=True)
    with pytest.raises(UserError, match="a run folder must be experiments/NAME"):
        archive_old_run(RunPaths(experiments / name))
    assert (victim / "data").is_dir() and (experiments / "live_run" / "cockpit").is_dir()
    assert sorted(p.name for p in experiments.iterdir()) == ["live_run"]


def wide_modes(root: Path, allowed: int) -> list[str]:
    """Every file and folder below root with a permission bit outside `allowed` (group/other bits)."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and not path.is_socket() and mode & 0o077 & ~allowed:
            found.append(f"{path.relative_to(root)} {oct(mode)}")
    return found


def run_under_umask(mask: int, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "tui.cli", *args]
    result = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                            umask=mask, timeout=600)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_a_run_is_private_whatever_the_umask(run_root: Path, mask: int):
    run_under_umask(mask, ["--no-ui", "train", str(TINY_OPTIONS), "--set", "logger.use_tb_logger=true",
                           "--set", "train.total_iter=2", "--set", "logger.save_checkpoint_freq=1",
                           "--set", "val.val_freq=2", "--set", "val.save_img=true"], run_root)
    run = run_root / "experiments" / "tiny_cpu"
    assert list((run / "models").glob("net_g_*.pth")) and list((run / "visualization").rglob("*.png"))
    # TensorBoard's files live in the run's folder (the plan's experiments/NAME/tb_logger), with its modes
    assert list(run.glob("train_*.log")) and list((run / "tb_logger").rglob("events.out.*"))
    assert wide_modes(run, 0) == [] and not (run_root / "tb_logger").exists()
    job = run_root / "experiments" / "job-meta"
    run_under_umask(mask, ["data", "meta-info", "--input", "datasets/demo/train/GTmod12", "--meta-info",
                           "meta.txt", "--job", str(job), "-q"], run_root)
    assert wide_modes(job, 0) == []


def test_group_sharing_is_opt_in_and_never_reaches_others(run_root: Path):
    job = run_root / "experiments" / "job-meta"
    run_under_umask(0o000, ["data", "meta-info", "--input", "datasets/demo/train/GTmod12", "--meta-info",
                            "meta.txt", "--job", str(job), "-q"], run_root, env={"SRCOCKPIT_SHARE": "group"})
    assert wide_modes(job, 0o050) == []  # group may read and enter, nobody else anything
    assert stat.S_IMODE((job / "cockpit").stat().st_mode) == 0o750


@pytest.fixture
def shared_root(tiny_data: Path) -> Path:
    """A project folder that every user may walk into (pytest's own tmp folders are closed to others)."""
    root = Path(tempfile.mkdtemp(prefix="srcockpit-shared-", dir="/tmp"))
    root.chmod(0o755)
    (root / "datasets").symlink_to(tiny_data / "datasets")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_another_user_can_neither_read_nor_command_a_run(shared_root: Path):
    if os.getuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to create a second Unix user")
    user = "srcockpit-other"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", user], check=True, capture_output=True)
    other = pwd.getpwnam(user)
    run_root = shared_root
    run_under_umask(0o022, ["train", str(TINY_OPTIONS), "--set", "train.total_iter=100000",
                            "--set", "val.val_freq=1000000"], run_root)
    paths = RunPaths(run_root / "experiments" / "tiny_cpu")
    wait_for(lambda: any(e["type"] == "iter" for e in read_events(paths.events)), what="a first iteration")

    def as_other(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd="/", capture_output=True, text=True, timeout=120, user=other.pw_uid,
                              group=other.pw_gid, extra_groups=[], env={"PATH": os.environ["PATH"]})

    read = as_other("cat", str(paths.events))
    assert read.returncode != 0 and "Permission denied" in read.stderr
    listing = as_other("ls", str(paths.root))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # the venv's may sit under /root
    connect = ("import socket; s = socket.socket(socket.AF_UNIX); "
               f"s.connect({str(paths.socket())!r}); s.sendall(b'{{\"cmd\": \"stop\"}}\\n')")
    command = as_other(python, "-c", connect)
    assert command.returncode != 0 and "PermissionError" in command.stderr
    assert srcockpit("send", "tiny_cpu", "ping", cwd=run_root).returncode == 0  # still running, still ours
    srcockpit("stop", "tiny_cpu", cwd=run_root)
