"""Headless output through the real CLI: piped logs, a real terminal (a pty), job results, TensorBoard's files."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from engine.jobs import Job
from engine.protocol import RunPaths
from tests.conftest import TINY_OPTIONS, last_iter, srcockpit, wait_for, write_tiny_dataset
from tui.console import ConsoleRenderer

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
SHORT_RUN = ("--set", "train.total_iter=4", "--set", "val.val_freq=2", "--set", "logger.save_checkpoint_freq=2",
             "--set", "logger.use_tb_logger=true")


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One real 4-iteration run with TensorBoard on, its output piped: (its folder, what it printed)."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("console"))
    result = srcockpit("--no-ui", "train", str(TINY_OPTIONS), *SHORT_RUN, cwd=root)
    return root, result.stdout


@pytest.mark.slow
def test_piped_lines_are_timestamped_and_end_with_a_summary(piped_run: tuple[Path, str]):
    root, out = piped_run
    lines = out.strip().splitlines()
    assert lines and all(re.match(STAMP + " ", line) for line in lines), out
    assert re.search(r"iter 4/4 .* it/s .* l_g_pix \d", out)
    models = root / "experiments/tiny_cpu/models"
    summary = lines[-1]
    assert re.search(r"summary tiny_cpu: finished at iter 4, 4 iterations in \d+:\d\d; best psnr \d+\.\d{4} dB "
                     r"@ iter \d, best ssim 0\.\d{4} @ iter \d \(EMA weights: ", summary), summary
    assert str(models / "net_g_") in summary and "[params_ema]" in summary


@pytest.mark.slow
def test_tensorboard_scalars_land_in_the_runs_own_folder(piped_run: tuple[Path, str]):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, _ = piped_run
    folder = root / "experiments/tiny_cpu/tb_logger"  # the plan's `tensorboard --logdir experiments/NAME/tb_logger`
    assert not (root / "tb_logger").exists()
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"losses/l_g_pix", "losses/l_d_real", "metrics/demo_val/psnr", "metrics/demo_val/ssim"} <= set(tags), tags
    assert [s.step for s in events.Scalars("losses/l_g_pix")] == [1, 2, 3, 4]
    assert [s.step for s in events.Scalars("metrics/demo_val/psnr")] == [2, 4]
    assert all(s.value > 20 for s in events.Scalars("metrics/demo_val/psnr"))
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {f.stat().st_mode & 0o777 for f in folder.iterdir()} == {0o600}


def _read_all(fd: int, chunks: list[bytes]) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return
        if not data:
            return
        chunks.append(data)


@pytest.mark.slow
def test_on_a_terminal_the_history_stays_and_ctrl_c_says_how_to_resume(tmp_path: Path):
    root = write_tiny_dataset(tmp_path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
    env = dict(os.environ, PYTHONUNBUFFERED="1", TERM="xterm-256color")
    env.pop("COLUMNS", None)
    process = subprocess.Popen([sys.executable, "-m", "tui.cli", "--no-ui", "train", str(TINY_OPTIONS),
                                "--set", "train.total_iter=100000", "--set", "val.val_freq=1000000"],
                               cwd=root, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(master, chunks), daemon=True)
    reader.start()
    try:
        wait_for(lambda: last_iter(RunPaths(root / "experiments/tiny_cpu")) >= 3, timeout=300, what="3 iterations")
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends the foreground process
        assert process.wait(timeout=300) == 0
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=30)
    os.close(master)
    text = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    # the iteration the run stopped at is a permanent, timestamped line, not only the (erased) live line
    kept = re.findall(STAMP + r" iter (\d+)/100000 .* it/s .* l_g_pix \d", text)
    assert kept, text
    assert re.search(STAMP + r" status stopped at iter \d+", text), text
    assert re.search(STAMP + r" summary tiny_cpu: stopped at iter \d+", text), text
    assert re.search(STAMP + r" to go on: srcockpit resume tiny_cpu \(detached\) or srcockpit resume tiny_cpu "
                             r"--no-ui", text), text
    srcockpit("resume", "tiny_cpu", "--no-ui", "--set", f"train.total_iter={int(kept[-1]) + 1}", cwd=root)


def test_job_results_read_as_words_with_a_summary(tmp_path: Path):
    folder = tmp_path / "experiments" / "demo"
    with Job(folder, "demo") as job:
        job.progress(1, 2, "comparison report")
        job.result(step="report", title="comparison report", models={"bicubic": {"psnr": 30.99962, "ssim": 0.889}},
                   seconds=12.34)
        job.result(step="summary", artefacts={"report": "report/report.html"}, seconds={"report": 12.3})
    out = srcockpit("watch", str(folder), "--from-start", cwd=tmp_path).stdout
    assert "{'" not in out and "'step'" not in out, out
    assert re.search(STAMP + r" demo report \(comparison report\): models bicubic \(psnr 31\.00, ssim 0\.889\); "
                             r"seconds 12\.34", out), out
    assert re.search(STAMP + r" summary demo: finished in 0:\d\d; demo summary: artefacts report report/report\.html;"
                             r" seconds report 12\.30", out), out


def test_a_warning_among_the_lines_gets_a_timestamp():
    out = io.StringIO()
    with ConsoleRenderer(Console(file=out, width=200)):
        warnings.warn("a torch-style warning", UserWarning, stacklevel=1)
    assert re.match(STAMP + r" WARNING UserWarning: a torch-style warning \(.*test_console\.py:\d+\)", out.getvalue())
