"""engine.job_runner, the one job runner, as the cockpit starts it (tui.jobs.start_job): a real detached
process whose folder ends with a final status, whatever goes wrong before or inside the job function."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import wait_for
from tui.jobs import job_alive, job_folder, log_tail, read_job, start_job


def finished_job(root: Path, kind: str, params: dict) -> Path:
    job = start_job(root, kind, params)
    assert job.process is not None
    job.process.wait(timeout=300)
    wait_for(lambda: not job_alive(job.folder), timeout=60, what="the job to end")
    return job.folder


def test_an_unknown_kind_fails_with_its_message_and_the_known_kinds(tmp_path: Path):
    folder = finished_job(tmp_path, "nope", {})
    state = read_job(folder)
    assert state.status == "failed" and "no such job kind: nope" in state.error
    assert "transfer" in "\n".join(log_tail(folder))  # the hint lists the kinds


def test_a_user_error_in_the_job_function_fails_the_job_with_message_and_hint(tmp_path: Path):
    (tmp_path / "exists.pth").write_bytes(b"")
    folder = finished_job(tmp_path, "transfer", {"output": "exists.pth"})
    state = read_job(folder)
    assert state.status == "failed" and "already exists" in state.error and "--force" in state.error
    assert state.kind == "transfer" and state.params == {"output": "exists.pth"}
    assert (folder / "cockpit" / "engine.log").is_file()  # the early log was moved into the job's folder
    assert not any(p.name.endswith(".start.log") for p in (tmp_path / "experiments").iterdir())


def test_a_job_folder_name_is_new_each_time(tmp_path: Path):
    first = job_folder(tmp_path, "subset", when=0)
    first.mkdir(parents=True)
    assert job_folder(tmp_path, "subset", when=0).name == f"{first.name}-2"
