"""Several processes training one run (design.md section 9): torchrun, torch.distributed, DDP.

torchrun (`python -m torch.distributed.run`, what `srcockpit train --gpus N` starts) runs one engine
per GPU (or per CPU slot with the gloo backend) and gives each the environment that says who it is:
RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/MASTER_PORT. engine.options.resolve()
reads it (through `torchrun_env`, which needs no torch); engine.launch then calls `start()`.

Rank 0 owns the run: its lock, event log, engine.json and control socket. The others train in
lockstep (DDP averages the gradients, so every rank holds the same weights) and write nothing. Once
per iteration the ranks agree on what to do next (`World.agree`): rank 0 brings the control
socket's commands and its health verdict, every rank brings its own stop request (a signal) and,
every few seconds, its GPU readings; all ranks then act on the same commands at the same iteration.

basicsr's own init_dist assumes CUDA (torch.cuda.set_device before any backend); `start()` does the
same for nccl and skips it for gloo on CPU. Its model_to_device is replaced in engine/models.py.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.protocol import Event

STORE_ENV = "SRCOCKPIT_DIST_STORE"  # set by engine/ranks.py: the rendezvous file of a one-node run
# Test-only: every rank saves its bare networks here when the loop ends (`dump_networks`).
DUMP_ENV = "SRCOCKPIT_TEST_DUMP_DIR"
# Per-rank GPU readings ride on the per-iteration agreement at most this often.
READINGS_EVERY_S = 2.0
# A rank that does not answer a collective for this long is taken as lost (torch's default is 30 min
# for gloo and 10 min for nccl; validation on rank 0 while the others wait must fit in it).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class TorchrunEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def torchrun_env(environ: Mapping[str, str] | None = None) -> TorchrunEnv | None:
    """Who this process is in a torchrun launch, or None when it was not started by torchrun."""
    environ = os.environ if environ is None else environ
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local = int(environ.get("LOCAL_RANK", rank))
        local_world = int(environ.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        return None
    if not 0 <= rank < world:
        return None
    return TorchrunEnv(rank, world, local, local_world)


def choose_backend(requested: str | None, cuda: bool) -> str:
    """The options' dist_params.backend, except nccl without CUDA (a laptop, CI), which becomes gloo."""
    backend = (requested or ("nccl" if cuda else "gloo")).lower()
    if backend == "nccl" and not cuda:
        return "gloo"
    return backend


class RankLost(RuntimeError):
    """A collective failed: another rank died or stopped answering."""


def describe_loss(error: BaseException, when: str = "") -> str:
    first = str(error).splitlines()[0][:300] if str(error) else ""
    return (f"another rank stopped responding{when} ({error.__class__.__name__}: {first}); "
            "its output is in cockpit/engine.log (detached) or the terminal")


def is_collective_failure(error: BaseException) -> bool:
    """Whether an exception is torch.distributed telling that a peer is gone (or timed out)."""
    import torch.distributed as dist

    if isinstance(error, RankLost):
        return True
    backend_error = getattr(dist, "DistBackendError", None)
    if backend_error is not None and isinstance(error, backend_error):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        marker in text for marker in ("Connection closed by peer", "Connection reset by peer", "Gloo", "NCCL",
                                      "Timed out", "timed out"))


class World:
    """This process's place among the ranks, and the few collectives the engine adds to DDP's."""

    def __init__(self, env: TorchrunEnv, backend: str, group: Any = None) -> None:
        self.rank = env.rank
        self.world_size = env.world_size
        self.local_rank = env.local_rank
        self.local_world_size = env.local_world_size
        self.backend = backend
        self._group = group  # a gloo group for control traffic when training runs on nccl
        self.broken = False
        self.readings: dict[int, list[dict[str, Any]]] = {}  # rank -> its latest GPU readings (rank 0)
        self._readings_at = 0.0
        self._read_gpus: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _collective(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            raise RankLost("the ranks are no longer all there")
        try:
            return fn(*args, group=self._group, **kwargs)
        except Exception as error:
            if is_collective_failure(error):
                self.broken = True
                raise RankLost(describe_loss(error)) from error
            raise

    def share(self, value: Any) -> Any:
        """Rank 0's value, on every rank."""
        import torch.distributed as dist

        box = [value]
        self._collective(dist.broadcast_object_list, box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        self._collective(dist.all_gather_object, out, value)
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        self._collective(dist.barrier)

    def agree(self, verdict: str | None, stop_request: str | None,
              commands: list[str]) -> tuple[str | None, str | None, list[str]]:
        """One exchange between iterations: rank 0's verdict and commands, the first stop request of any rank."""
        packets = self.gather({"verdict": verdict, "stop": stop_request, "commands": commands,
                               "gpus": self._due_readings()})
        for rank, packet in enumerate(packets):
            if packet["gpus"] is not None:
                self.readings[rank] = packet["gpus"]
        stops = [f"{p['stop']} (rank {rank})" if rank else p["stop"] for rank, p in enumerate(packets) if p["stop"]]
        return packets[0]["verdict"], (stops[0] if stops else None), list(packets[0]["commands"])

    def watch_gpus(self, read: Any) -> None:
        """read() -> this rank's GPU readings; they reach rank 0 with the per-iteration exchange."""
        self._read_gpus = read

    def _due_readings(self) -> list[dict[str, Any]] | None:
        now = time.monotonic()
        if self._read_gpus is None or now - self._readings_at < READINGS_EVERY_S:
            return None
        self._readings_at = now
        try:
            entries = self._read_gpus()
        except Exception:  # telemetry must never stop training
            return None
        host = socket.gethostname()
        return [{**entry, "rank": self.rank, "host": host} for entry in entries]

    def gpu_readings(self) -> list[dict[str, Any]]:
        """The newest GPU readings of every rank, rank order (rank 0's telemetry thread merges them)."""
        return [entry for rank in sorted(self.readings) for entry in self.readings[rank]]

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            with contextlib.suppress(Exception):  # a lost peer can make the teardown complain; the run is over
                dist.destroy_process_group()


def start(opt: dict[str, Any], env: TorchrunEnv) -> World:
    """init_process_group for this rank: nccl on CUDA (one device per local rank), gloo on CPU."""
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available() and opt.get("num_gpu", 0) != 0
    backend = choose_backend((opt.get("dist_params") or {}).get("backend"), cuda)
    if cuda:
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
    else:
        opt["num_gpu"] = 0  # basicsr picks its device from num_gpu
    kwargs: dict[str, Any] = {"backend": backend, "timeout": COLLECTIVE_TIMEOUT}
    if backend == "nccl":
        kwargs["device_id"] = torch.device("cuda", torch.cuda.current_device())
    store = os.environ.get(STORE_ENV)  # one node (engine/ranks.py): a file, no TCP listener
    if store:
        kwargs.update(store=dist.FileStore(store, env.world_size), rank=env.rank, world_size=env.world_size)
    if not dist.is_initialized():
        dist.init_process_group(**kwargs)
    group = dist.new_group(backend="gloo") if backend != "gloo" else None
    opt["dist_params"] = {**(opt.get("dist_params") or {}), "backend": backend}
    return World(env, backend, group)


class NullEvents:
    """The event writer of ranks other than 0: they train, rank 0 tells."""

    listener = None

    def emit(self, event: Event) -> Event:
        return event

    def close(self) -> None:
        pass


def dump_networks(model: Any, rank: int, current_iter: int, environ: Mapping[str, str] | None = None) -> Path | None:
    """Test-only (DUMP_ENV): this rank's bare networks, so a test can see that every rank holds the same."""
    import torch

    folder = (os.environ if environ is None else environ).get(DUMP_ENV)
    if not folder or model is None:
        return None
    blob = {"iter": current_iter, "rank": rank}
    for label in ("net_g", "net_g_ema", "net_d"):
        net = getattr(model, label, None)
        if net is not None:
            bare = model.get_bare_model(net)
            blob[label] = {name: value.detach().cpu().clone() for name, value in bare.state_dict().items()}
    path = Path(folder) / f"rank{rank}_iter{current_iter}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)
    return path


def torchrun_command(engine_args: list[str], *, nproc: int, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None, python: str | None = None) -> list[str]:
    """One node: `python -m engine.ranks --nproc N -- ARGS` (no network listener, see engine/ranks.py).
    Several: `python -m torch.distributed.run ... -m engine.launch ARGS`, meeting at rdzv_endpoint (static
    rendezvous, node 0 holds rank 0), on the addresses the user gives."""
    import sys

    python = python or sys.executable
    if nnodes <= 1:
        return [python, "-m", "engine.ranks", f"--nproc={nproc}", "--", *engine_args]
    if not rdzv_endpoint:
        raise ValueError("several nodes need --rdzv-endpoint HOST:PORT (the node with --node-rank 0)")
    return [python, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}",
            f"--node-rank={node_rank}", "--rdzv-backend=static", f"--rdzv-endpoint={rdzv_endpoint}",
            "-m", "engine.launch", *engine_args]
