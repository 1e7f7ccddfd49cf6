"""A full disk, on a real small tmpfs: the run stops with a checkpoint while one fits, a write that no longer
fits becomes one message naming the disk, nothing torn or partial is left, and the exit status says so.

Every tmpfs here is really mounted (we are root in CI); where mounting is refused the tests say why and skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from engine.events import EventWriter
from engine.files import DiskFull, free_bytes
from engine.protocol import FAILED, STATUS, LogEvent, RunPaths, StatusEvent, read_events
from tests.conftest import REPO, TINY_OPTIONS, srcockpit, wait_for

# the tiny run with a checkpoint every iteration and no validation: the disk fills within a few iterations
FAST = ["--set", "train.total_iter=1000", "--set", "logger.save_checkpoint_freq=1", "--set", "val.val_freq=1000000"]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """mount(size) -> a fresh tmpfs of that size (e.g. "1m"), unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                                    capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            pytest.skip("no `mount` command here: a real small disk cannot be made")
        if result.returncode != 0:
            pytest.skip(f"cannot mount a {size} tmpfs (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path, leave: int) -> Path:
    """A file taking all of folder's free space but `leave` bytes (fewer if others write meanwhile)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(20):  # a writer on the same disk may take some of it between the measure and the fill
            try:
                os.posix_fallocate(fd, 0, os.fstat(fd).st_size + max(free_bytes(folder) - leave, 0))
                break
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def python_path() -> str:
    """This checkout first, then whatever the caller's PYTHONPATH held."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def lines_of(path: Path) -> list[dict]:
    """Every line of an event log, each of which must parse: no torn line anywhere."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), "the log ends in a torn line"
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def test_a_line_that_does_not_fit_is_not_written_at_all(tmpfs):
    disk = tmpfs("256k")
    writer = EventWriter(disk / "events.jsonl", source="test")
    writer.emit(LogEvent(level="info", message="before"))
    filler = fill(disk, leave=16 << 10)
    with pytest.raises(DiskFull) as raised:  # the kernel takes 16 KiB of the line, then says ENOSPC
        writer.emit(LogEvent(level="info", message="x" * (64 << 10)))
    assert str(disk) in raised.value.message and "free" in raised.value.message
    assert [e.get("message") for e in lines_of(disk / "events.jsonl")] == [None, "before"]
    filler.unlink()
    writer.emit(StatusEvent(status=FAILED, error="after"))
    writer.close()
    assert [e.get("message", e.get("error")) for e in lines_of(disk / "events.jsonl")] == [None, "before", "after"]


def test_the_reserve_makes_room_for_the_last_line(tmpfs):
    disk = tmpfs("1m")
    writer = EventWriter(disk / "events.jsonl", source="test", reserve=128 << 10)
    fill(disk, leave=0)
    writer.emit(StatusEvent(status=FAILED, error="the disk is full", hint="y" * (64 << 10)))
    with pytest.raises(DiskFull):
        writer.emit(LogEvent(level="info", message="z" * (256 << 10)))
    writer.close()
    assert [e["type"] for e in lines_of(disk / "events.jsonl")] == ["header", STATUS]
    assert not (disk / ".events.reserve").exists()


def test_a_checkpoint_write_on_a_full_disk_leaves_the_old_file_and_no_partial(tmpfs):
    from engine.files import atomic_torch_save

    disk = tmpfs("4m")
    target = disk / "models" / "net_g_1.pth"
    atomic_torch_save({"params": {"w": torch.ones(1000)}}, target)
    fill(disk, leave=64 << 10)
    with pytest.raises(DiskFull) as raised:  # torch.save says only "unexpected pos"; its context is the ENOSPC
        atomic_torch_save({"params": {"w": torch.zeros(1 << 20)}}, target)
    assert f"mounted at {disk}" in raised.value.message and "free" in raised.value.message
    assert "unexpected pos" not in str(raised.value)
    assert torch.equal(torch.load(target, weights_only=True)["params"]["w"], torch.ones(1000))
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_validation_image_on_a_full_disk_is_put_down_to_the_disk(tmpfs):
    import numpy as np

    from engine.compat import load_basicsr
    from engine.files import disk_full

    load_basicsr()
    from basicsr.utils import imwrite

    disk = tmpfs("1m")
    fill(disk, leave=0)
    with pytest.raises(OSError) as raised:  # cv2 gives no errno, and removes what it wrote
        imwrite(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8), str(disk / "v/a.png"))
    full = disk_full(raised.value, disk / "v")
    assert isinstance(full, DiskFull) and f"mounted at {disk}" in full.message
    assert disk_full(ValueError("a shape mismatch"), disk) is None


def test_basicsr_log_lines_on_a_full_disk_print_no_traceback(tmpfs, capfd):
    from engine.loop import fresh_root_logger

    disk = tmpfs("1m")
    logger = fresh_root_logger(disk / "train.log")
    fill(disk, leave=0)
    logger.info("x" * (256 << 10))
    logging_errors = capfd.readouterr().err
    assert "Logging error" not in logging_errors and "Traceback" not in logging_errors
    fresh_root_logger(Path(os.devnull))


def run_folder(root: Path) -> RunPaths:
    return RunPaths(root / "experiments" / "tiny_cpu")


def on_tmpfs(disk: Path, tiny_data: Path) -> Path:
    (disk / "datasets").symlink_to(tiny_data / "datasets")
    return disk


def assert_clean_end(paths: RunPaths, output: str) -> dict:
    """No partial file, every log line parses, no traceback printed; returns the final status event."""
    assert not list(paths.root.rglob("*.partial")), "a partial file is left on the full disk"
    statuses = [e for e in lines_of(paths.events) if e["type"] == STATUS]
    assert "Traceback" not in output
    return statuses[-1]


def test_the_disk_guard_stops_with_a_checkpoint_while_one_fits(tmpfs, tiny_data):
    root = on_tmpfs(tmpfs("48m"), tiny_data)  # a checkpoint of the tiny run is ~8 MB: four fit
    result = srcockpit("--no-ui", "train", str(TINY_OPTIONS), *FAST, cwd=root, check=False)
    paths = run_folder(root)
    final = assert_clean_end(paths, result.stdout + result.stderr)
    assert result.returncode == 1, result.stdout + result.stderr
    assert final["status"] == "failed" and final["resumable_from"] == final["iter"] > 0
    assert final["error"].startswith("low disk space") and str(root) in final["error"]
    assert "MiB free" in final["error"] and "resume" in final["hint"]
    k = final["resumable_from"]
    torch.load(paths.models / f"net_g_{k}.pth", weights_only=True)
    assert (paths.training_states / f"{k}.state").is_file()
    assert "low disk space" in result.stdout


def test_a_checkpoint_that_does_not_fit_is_one_clear_message(tmpfs, tiny_data, tmp_path):
    root = on_tmpfs(tmpfs("64m"), tiny_data)
    log = tmp_path / "engine.out"  # off the full disk, and no pipe to block the engine
    with open(log, "wb") as out:
        engine = subprocess.Popen([sys.executable, "-m", "engine.launch", str(TINY_OPTIONS), "--root", str(root),
                                   *FAST], cwd=root, env=dict(os.environ, PYTHONPATH=python_path()), stdout=out,
                                  stderr=subprocess.STDOUT)
    paths = run_folder(root)
    wait_for(lambda: any(e["type"] == "checkpoint" for e in read_events(paths.events)) or engine.poll() is not None,
             timeout=300, what="the first checkpoint")
    assert engine.poll() is None, log.read_text()
    first = sum(p.stat().st_size for p in [*paths.models.glob("*_1.pth"), paths.training_states / "1.state"])
    fill(root, leave=first // 2)  # another program takes the disk: less room than one checkpoint
    engine.wait(timeout=300)
    output = log.read_text()
    final = assert_clean_end(paths, output)
    assert engine.returncode == 2, output
    assert final["status"] == "failed" and final["resumable_from"] >= 1
    assert "no space left on the disk of" in final["error"] and str(root) in final["error"]
    assert "free" in final["error"] and "resume" in final["hint"]
    assert "srcockpit engine: error: no space left on the disk of" in output
    torch.load(paths.models / f"net_g_{final['resumable_from']}.pth", weights_only=True)
    saved = {p.stem for p in paths.training_states.glob("*.state")}
    assert {p.stem.rsplit("_", 1)[1] for p in paths.models.glob("net_*.pth")} == saved, "an incomplete checkpoint"


def test_a_nan_stop_exits_non_zero(run_root: Path):
    result = srcockpit("--no-ui", "train", str(TINY_OPTIONS), "--set", "train.pixel_opt.loss_weight=1.0e+300",
                       cwd=run_root, check=False)
    final = [e for e in read_events(run_folder(run_root).events) if e["type"] == STATUS][-1]
    assert result.returncode == 1, result.stdout + result.stderr
    assert final["status"] == "failed" and "became inf" in final["error"] and final["resumable_from"] == -1
    assert "Traceback" not in result.stdout + result.stderr


def test_a_full_disk_switches_the_iter_index_off_and_never_the_run(tmpfs):
    """The index row that does not fit is left out and the index stops there; the log's lines go on, and a
    replay reads the later iterations from the log (tmpfs hands out whole pages, so the row must be the one
    that needs a new page while the log's page still has room)."""
    from engine.protocol import IterEvent, decode_series_header, encode_event, make_event, series_paths
    from tui.iter_index import read_index
    from tui.state import RunState
    from tui.tailer import Tailer, read_all

    disk = tmpfs("1m")
    page = os.statvfs(disk).f_bsize
    paths = RunPaths(disk / "run")
    writer = EventWriter(paths.events, source="engine")

    def iteration(it: int) -> None:
        writer.emit(IterEvent(iter=it, total_iter=100, losses={"l_pix": 1 / it}, it_s=2.0))

    it = 1
    iteration(it)
    index = series_paths(paths.events)[0]
    while page - index.stat().st_size % page >= 8 * 12:  # until the next row needs a page of its own
        it += 1
        iteration(it)
    room = page - paths.events.stat().st_size % page
    pad = encode_event(make_event("log", level="info", message=""))
    writer.emit(LogEvent(level="info", message="p" * ((room - len(pad) + 16) % page)))  # the log: a fresh page
    fill(disk, leave=0)
    iteration(it + 1)  # its line fits the log's page; its row does not fit anywhere
    header, start = decode_series_header(index.read_bytes())
    assert writer.index.off and (index.stat().st_size - start) % (8 * header.width) == 0  # no torn row
    (disk / "filler").unlink()
    for later in range(it + 2, it + 6):
        iteration(later)
    writer.close()
    assert [e["iter"] for e in lines_of(paths.events) if e["type"] == "iter"] == list(range(1, it + 6))
    assert read_index(paths.events).rows == it
    state = read_all(Tailer(paths, engine_log=False), RunState())
    assert state.iter == it + 5 and state.losses["l_pix"].count == it + 5
