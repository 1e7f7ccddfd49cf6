"""The control socket (design.md section 3): a thread that takes commands; the loop acts on them.

Requests and replies are newline-delimited JSON: {"cmd": "stop"} -> {"ok": true, ...}. The thread
answers at once (accepted, or why not); the loop carries the command out between iterations and
the event log shows the effect.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.protocol import COMMANDS, PAUSED, UserError

StateFn = Callable[[], dict[str, Any]]


def private_folder(folder: Path) -> None:
    """The socket's folder must be ours and closed to others (0700): cockpit/, or the runtime-dir
    stand-in for deep run folders, which another user could otherwise create first in /tmp."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UserError(f"{folder} is not a plain folder (a link?); the control socket will not go there",
                        "remove it and start again")
    if info.st_uid != os.getuid():
        raise UserError(f"{folder} belongs to user id {info.st_uid}, not to you; the control socket will not go "
                        "there", "remove it, or set XDG_RUNTIME_DIR to a folder of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)


def _refusal(cmd: str, status: str) -> str | None:
    """Why a command makes no sense in this status, or None when it does."""
    if cmd == "pause" and status == PAUSED:
        return "the run is already paused"
    if cmd == "resume" and status != PAUSED:
        return f"the run is {status}, not paused; `srcockpit resume` restarts a stopped run"
    return None


class ControlServer:
    """Listens on a 0600 Unix socket; queues accepted commands for the training loop."""

    def __init__(self, path: Path, state: StateFn) -> None:
        self.path = path
        self._state = state
        self.commands: queue.Queue[str] = queue.Queue()
        private_folder(path.parent)
        if path.is_symlink() or path.is_socket():
            path.unlink()  # the lock is ours, so any socket here is a dead engine's
        elif path.exists():
            raise UserError(f"{path} exists and is not a socket", "move it away; srcockpit keeps its socket there")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._sock.listen(8)
        self._sock.settimeout(0.5)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="srcockpit-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self._answer(conn)
                except (OSError, ValueError):
                    continue

    def _answer(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        for line in reader:
            reply = self.handle(line)
            conn.sendall((json.dumps(reply) + "\n").encode())

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            cmd = request["cmd"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'bad request; send {"cmd": "<command>"}'}
        state = self._state()
        if cmd not in COMMANDS:
            return {"ok": False, "error": f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}", **state}
        refusal = _refusal(cmd, state.get("status", ""))
        if refusal:
            return {"ok": False, "cmd": cmd, "error": refusal, **state}
        if cmd != "ping":
            self.commands.put(cmd)
        return {"ok": True, "cmd": cmd, "pid": os.getpid(), **state}

    def pending(self) -> list[str]:
        """Commands that arrived since the last call, oldest first."""
        items = []
        while True:
            try:
                items.append(self.commands.get_nowait())
            except queue.Empty:
                return items

    def wait(self, timeout: float) -> str | None:
        """Block for the next command (used while paused)."""
        try:
            return self.commands.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._thread.join(timeout=2)
        self.path.unlink(missing_ok=True)
