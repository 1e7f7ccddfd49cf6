"""Several ranks on one machine without a network listener: what `srcockpit train --gpus N` runs on one node.

torchrun's agent hosts its rendezvous and worker stores in TCPStores, and torch's TCPStore server listens
on every interface whatever address it is given (measured on torch 2.14: `*:PORT` with --standalone, with
--rdzv-endpoint 127.0.0.1:PORT and with --master-addr 127.0.0.1), so on a shared or public machine anyone
who reaches the port can talk to the run. One node needs no network: this launcher starts the ranks itself
with the environment torchrun would give them (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), a
torch.distributed FileStore in a private folder for the rendezvous (engine/dist.py `start`), and gloo's and
NCCL's own sockets on the loopback interface. Several nodes still meet through torchrun, as the user asks.

Like torchrun's agent it forwards SIGTERM to every rank and, when one rank dies, gives the others time to
notice it themselves (rank 0 then reports the lost rank and saves) before it stops them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from engine.dist import STORE_ENV

# After one rank ends with an error the others get this long to see it in a collective and stop by
# themselves; then SIGTERM (a graceful stop), then SIGKILL.
LOST_RANK_GRACE_S = 30.0
TERMINATE_GRACE_S = 30.0


def rank_env(rank: int, nproc: int, store: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What one rank is told: who it is, where the file store is, and to keep its sockets on the loopback."""
    base = dict(os.environ if environ is None else environ)
    return {**base, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(nproc), STORE_ENV: str(store), "MASTER_ADDR": "127.0.0.1",
            "GLOO_SOCKET_IFNAME": base.get("GLOO_SOCKET_IFNAME", "lo"),
            "NCCL_SOCKET_IFNAME": base.get("NCCL_SOCKET_IFNAME", "lo")}


def _stop_all(processes: list[subprocess.Popen], sig: int, grace: float) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.1)


def supervise(processes: list[subprocess.Popen]) -> int:
    """Wait for every rank; a failed rank gives the others LOST_RANK_GRACE_S before they are stopped."""
    while any(p.poll() is None for p in processes):
        failed = [p for p in processes if p.returncode not in (None, 0)]
        if failed:
            deadline = time.monotonic() + LOST_RANK_GRACE_S
            while time.monotonic() < deadline and any(p.poll() is None for p in processes):
                time.sleep(0.1)
            _stop_all(processes, signal.SIGTERM, TERMINATE_GRACE_S)
            _stop_all(processes, signal.SIGKILL, 5.0)
            break
        time.sleep(0.1)
    codes = [p.wait() for p in processes]
    return next((code for code in codes if code != 0), 0)


def launch(nproc: int, engine_args: Sequence[str], python: str | None = None) -> int:
    """Start nproc ranks of `python -m engine.launch ARGS` and wait for them; the first non-zero exit code."""
    folder = Path(tempfile.mkdtemp(prefix="srcockpit-ranks-"))  # 0700: the store is this user's alone
    store = folder / "store"
    cmd = [python or sys.executable, "-m", "engine.launch", *engine_args]
    processes: list[subprocess.Popen] = []

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C reaches every rank of the process group
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        processes += [subprocess.Popen(cmd, env=rank_env(rank, nproc, store)) for rank in range(nproc)]
        return supervise(processes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.ranks",
                                     description="Run N ranks of one srcockpit engine on this machine.")
    parser.add_argument("--nproc", type=int, required=True, help="ranks to start (one per GPU)")
    parser.add_argument("engine_args", nargs=argparse.REMAINDER, help="-- then the arguments of engine.launch")
    args = parser.parse_args(argv)
    engine_args = args.engine_args[1:] if args.engine_args[:1] == ["--"] else args.engine_args
    if args.nproc < 1:
        parser.error("--nproc must be at least 1")
    return launch(args.nproc, engine_args)


if __name__ == "__main__":
    sys.exit(main())
