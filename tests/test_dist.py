"""Two CPU ranks (gloo) train the tiny run for real: same weights, same stop, resume; torchrun for several nodes."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from engine.dist import DUMP_ENV, choose_backend, torchrun_command, torchrun_env
from engine.options import load_options
from engine.protocol import RunPaths, read_events
from tests.conftest import TINY_OPTIONS, srcockpit, wait_for
from tui.runs import pid_alive

NETS = ("net_g", "net_g_ema", "net_d")


def dumps(folder: Path, iteration: int) -> list[dict]:
    return [torch.load(folder / f"rank{rank}_iter{iteration}.pth", weights_only=True) for rank in (0, 1)]


def assert_same_networks(first: dict, second: dict) -> None:
    for net in NETS:
        assert first[net].keys() == second[net].keys()
        assert all(torch.equal(first[net][name], second[net][name]) for name in first[net]), net


def test_torchrun_environment_layout_and_command(tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch):
    assert torchrun_env({}) is None
    env = torchrun_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 8, 1, 2)
    assert torchrun_env({"RANK": "2", "WORLD_SIZE": "2"}) is None  # not a rank of that world
    assert choose_backend("nccl", cuda=False) == "gloo" and choose_backend("nccl", cuda=True) == "nccl"
    assert choose_backend(None, cuda=False) == "gloo" and choose_backend("gloo", cuda=True) == "gloo"

    one = torchrun_command(["opt.yml"], nproc=2, python="py")
    assert one == ["py", "-m", "engine.ranks", "--nproc=2", "--", "opt.yml"]  # one node: no TCP listener
    two = torchrun_command(["opt.yml"], nproc=4, nnodes=2, node_rank=1, rdzv_endpoint="head:29500", python="py")
    assert "--nnodes=2" in two and "--node-rank=1" in two and "--rdzv-endpoint=head:29500" in two
    with pytest.raises(ValueError):
        torchrun_command([], nproc=4, nnodes=2)

    (tmp_path / "datasets").symlink_to(tiny_data / "datasets")
    opt = load_options(TINY_OPTIONS, root=tmp_path)
    assert (opt["dist"], opt["rank"], opt["world_size"]) == (False, 0, 1)
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    opt = load_options(TINY_OPTIONS, root=tmp_path)
    assert (opt["dist"], opt["rank"], opt["world_size"]) == (True, 1, 2)


def listening_addresses(pids: list[int]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses the given processes listen on (TCP, from /proc/net/tcp and tcp6)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # /proc stores host order
                found.append(ipaddress.ip_address(words))
    return found


def test_cli_refuses_bad_layouts(run_root: Path):
    result = srcockpit("train", str(TINY_OPTIONS), "--gpus", "2", "--nnodes", "2", cwd=run_root, check=False)
    assert result.returncode == 2 and "--rdzv-endpoint" in result.stderr and "Traceback" not in result.stderr
    result = srcockpit("train", str(TINY_OPTIONS), "--gpus", "0", cwd=run_root, check=False)
    assert result.returncode == 2 and "bad layout" in result.stderr


def test_two_gloo_ranks_train_alike_stop_together_and_resume(run_root: Path, monkeypatch: pytest.MonkeyPatch):
    dump = run_root / "dump"
    monkeypatch.setenv(DUMP_ENV, str(dump))  # each rank saves its networks when its loop ends
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    srcockpit("train", str(TINY_OPTIONS), "--gpus", "2", "--set", "train.total_iter=100000",
              "--set", "val.val_freq=1000000", cwd=run_root)
    info = json.loads(paths.engine_json.read_text())
    assert info["world_size"] == 2 and info["backend"] == "gloo" and [r["rank"] for r in info["ranks"]] == [0, 1]
    assert info["torchrun"] == {"nproc_per_node": 2, "nnodes": 1}
    wait_for(lambda: any(e["type"] == "iter" and e["iter"] >= 3 for e in read_events(paths.events)),
             what="three iterations")
    # a one-node run listens on the loopback only (torchrun's agent listened on every interface)
    listening = listening_addresses([info["pid"], *[rank["pid"] for rank in info["ranks"]]])
    assert listening and all(address.is_loopback for address in listening), listening
    srcockpit("stop", "tiny_cpu", cwd=run_root)
    wait_for(lambda: not pid_alive(info["pid"]), timeout=60, what="the ranks to exit")

    events = list(read_events(paths.events))
    run = next(e for e in events if e["type"] == "run")
    assert run["world_size"] == 2 and run["start_iter"] == 0
    stopped = events[-1]
    assert stopped["status"] == "stopped" and stopped["reason"] == "stop command"
    k = stopped["iter"]
    assert stopped["resumable_from"] == k
    # rank 0 alone writes events: one iter event per iteration, one run, one starting status
    assert [e["iter"] for e in events if e["type"] == "iter"] == list(range(1, k + 1))
    assert sum(e["type"] == "run" for e in events) == 1
    # both ranks obeyed the stop at iteration k, holding the same weights, which rank 0 saved
    assert sorted(p.name for p in dump.iterdir()) == [f"rank0_iter{k}.pth", f"rank1_iter{k}.pth"]
    rank0, rank1 = dumps(dump, k)
    assert (rank0["iter"], rank1["iter"]) == (k, k)
    assert_same_networks(rank0, rank1)
    saved = torch.load(paths.models / f"net_g_{k}.pth", weights_only=True)
    assert all(torch.equal(saved["params"][name], rank1["net_g"][name]) for name in saved["params"])
    assert all(torch.equal(saved["params_ema"][name], rank1["net_g_ema"][name]) for name in saved["params_ema"])
    assert not any(p.name.startswith("rank") for p in paths.root.iterdir())  # rank 1 wrote nothing there

    # `srcockpit resume` starts two ranks again (engine.json remembers) and continues at k + 1
    result = srcockpit("resume", "tiny_cpu", "--no-ui", "--set", f"train.total_iter={k + 2}", cwd=run_root)
    assert f"status finished at iter {k + 2}" in result.stdout
    events = list(read_events(paths.events))
    runs = [e for e in events if e["type"] == "run"]
    assert runs[-1]["start_iter"] == k and runs[-1]["world_size"] == 2
    assert [e["iter"] for e in events[events.index(runs[-1]):] if e["type"] == "iter"] == [k + 1, k + 2]
    assert events[-1]["status"] == "finished"
    rank0, rank1 = dumps(dump, k + 2)
    assert_same_networks(rank0, rank1)
    latest = torch.load(paths.models / "net_g_latest.pth", weights_only=True)
    assert all(torch.equal(latest["params"][name], rank1["net_g"][name]) for name in latest["params"])
    assert not all(torch.equal(saved["params"][name], latest["params"][name]) for name in saved["params"])


def test_a_lost_rank_is_reported_and_rank_0_stops(run_root: Path):
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    srcockpit("train", str(TINY_OPTIONS), "--gpus", "2", "--set", "train.total_iter=100000",
              "--set", "val.val_freq=1000000", "--set", "logger.save_checkpoint_freq=2", cwd=run_root)
    info = json.loads(paths.engine_json.read_text())
    wait_for(lambda: (paths.models / "net_g_2.pth").is_file(), what="a first checkpoint")
    os.kill(info["ranks"][1]["pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(info["pid"]), timeout=90, what="torchrun to exit")
    events = list(read_events(paths.events))
    final = events[-1]
    assert final["type"] == "status" and final["status"] in ("stopped", "failed")
    reason = final.get("reason") or final.get("error")
    assert "another rank stopped responding" in reason
    if final["status"] == "stopped":  # lost between iterations: rank 0 saved that iteration alone
        assert final["resumable_from"] == final["iter"] and (paths.training_states / f"{final['iter']}.state").is_file()
    assert "live" not in srcockpit("status", cwd=run_root).stdout


class FakeWorld:
    """engine.dist.World's agreement without processes: rank 0's packet, then a lost peer."""

    def __init__(self, packets: list) -> None:
        self.packets = packets

    def agree(self, verdict, stop_request, commands):
        from engine.dist import RankLost

        packet = self.packets.pop(0)
        if packet is None:
            raise RankLost("another rank stopped responding (test)")
        return packet


def test_commands_follow_the_agreement_and_a_lost_rank_becomes_a_stop():
    from engine.loop import Commands

    commands = Commands(control=None, world=FakeWorld([("nan", None, ["save", "pause"]), (None, None, ["resume"]),
                                                       None]))
    commands.request_stop("SIGTERM")  # a local request waits for the exchange
    assert commands.stop_reason is None
    assert commands.sync(None) == "nan" and commands.pending() == ["save", "pause"] and commands.pending() == []
    assert commands.wait(0.01) == "resume"
    assert commands.sync(None) is None and commands.pending() == []
    assert "another rank stopped responding" in commands.stop_reason
