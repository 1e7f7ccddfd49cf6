"""The control socket (design.md section 3): a thread that takes commands; the loop acts on them.

Requests and replies are newline-delimited JSON: {"cmd": "stop"} -> {"ok": true, ...}. The thread
answers at once (accepted, or why not); the loop carries the command out between iterations, in
the order they came, and the event log shows the effect. Whatever a client sends (garbage, a
line of any length, nothing at all), it gets a reply or a closed connection, and the others are
served meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.mitigations import KNOBS, SET_PREFIX, SettingError, check_value, refusal
from engine.protocol import COMMANDS, PAUSED, RUNNING, STARTING, Command, UserError

StateFn = Callable[[], dict[str, Any]]

MAX_LINE = 64 << 10  # a request is a few dozen bytes; a longer line is refused and its connection closed
RECV_BYTES = 64 << 10
OUTBOX_LIMIT = 64 << 10  # a client that sends without reading its replies is not read further until it does
DISCARD_LIMIT = 16 << 20  # after a refused line, this much more is read and dropped before the connection closes
MAX_CLIENTS = 128  # open connections; more wait in the listen backlog, or push out one that has gone quiet
EVICT_IDLE_S = 1.0
IDLE_S = 60.0  # a connection quiet this long is closed
QUEUE_LIMIT = 16  # commands waiting for the loop; one more is answered "busy, try again"
COALESCED = frozenset({"save", "validate", "stop"})
BAD_REQUEST = 'bad request; send one JSON object per line: {"cmd": "<command>"}'
KNOWN = f"known: {', '.join(COMMANDS)}, set (with key: {', '.join(KNOBS)} and a value)"


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


def parse_request(line: bytes) -> dict[str, Any] | None:
    """One request line as its object, or None for anything but {"cmd": "<text>", ...}."""
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):  # bad JSON or UTF-8 (UnicodeDecodeError is a ValueError); deep nesting
        return None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return None
    return request


def setting_command(request: dict[str, Any], settings: dict[str, float]) -> str:
    """A set request as the command the loop carries out ("set lr=5e-05"); SettingError says why not."""
    key = request.get("key")
    if not isinstance(key, str):
        raise SettingError(f'set needs a key and a value: {{"cmd": "set", "key": "lr", "value": 5e-5}}; {KNOWN}')
    setting = check_value(key, request.get("value"))
    if not settings:
        raise SettingError("the run is still setting up its model; try again once it runs")
    problem = refusal(setting, settings)
    if problem:
        raise SettingError(problem)
    return setting.command


def _refusal(cmd: str, status: str) -> str | None:
    """Why a command makes no sense in this status, or None when it does."""
    if cmd == "pause" and status == PAUSED:
        return "the run is already paused"
    if cmd == "resume" and status != PAUSED:
        return f"the run is {status}, not paused; `srcockpit resume` restarts a stopped run"
    return None


class CommandQueue:
    """Accepted commands waiting for the loop, oldest first. Bounded; a save, validate or stop that is
    already waiting is not queued twice (sixty `validate`s validate once), and a stop is never refused."""

    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self._limit = limit
        self._items: deque[str] = deque()
        self._ready = threading.Condition()

    def offer(self, cmd: str) -> str:
        """"queued", "coalesced" (the same command already waits) or "full"."""
        with self._ready:
            if cmd in COALESCED and cmd in self._items:
                return "coalesced"
            if len(self._items) >= self._limit and cmd != "stop":
                return "full"
            self._items.append(cmd)
            self._ready.notify()
            return "queued"

    def take_all(self) -> list[str]:
        with self._ready:
            items = list(self._items)
            self._items.clear()
            return items

    def take(self, timeout: float) -> str | None:
        with self._ready:
            if not self._ready.wait_for(lambda: self._items, timeout):
                return None
            return self._items.popleft()


@dataclass(eq=False)
class _Client:
    """One connection: its unanswered bytes, its unsent replies and what it may still do."""

    sock: socket.socket
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    seen: float = field(default_factory=time.monotonic)
    reading: bool = True  # False once the client has closed its side (or sent too much to drain)
    refused: bool = False  # a line was too long: its reply goes out, then everything it sends is dropped
    dropped: int = 0
    events: int = selectors.EVENT_READ


class ControlServer:
    """Listens on a 0600 Unix socket; queues accepted commands for the training loop.

    One thread serves every client at once (non-blocking sockets, selectors), so a client that
    connects and sends nothing delays no one. Each line gets one reply, whatever it holds.
    """

    def __init__(self, path: Path, state: StateFn) -> None:
        """state() -> the reply's fields: status, iter, total_iter and settings (what a `set` may change on the
        run's model now, with the current values; empty while the model is built)."""
        self.path = path
        self._state = state
        self.commands = CommandQueue()
        self._expect: str | None = None  # the status the last accepted pause/resume leads to
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
        self._sock.listen(socket.SOMAXCONN)
        self._sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._selector.register(self._sock, selectors.EVENT_READ)
        self._listening = True
        self._clients: dict[socket.socket, _Client] = {}
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="srcockpit-control", daemon=True)
        self._thread.start()

    # -- what the loop calls ----------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Commands that arrived since the last call, oldest first."""
        return self.commands.take_all()

    def wait(self, timeout: float) -> str | None:
        """Block for the next command (used while paused)."""
        return self.commands.take(timeout)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):  # a server thread that already ended has closed the other end
            self._wake_w.send(b"x")
        self._thread.join(timeout=2)
        self._wake_w.close()
        self.path.unlink(missing_ok=True)

    # -- one request ------------------------------------------------------------------------------

    def handle(self, line: bytes) -> dict[str, Any]:
        request = parse_request(line)
        if request is None:
            return {"ok": False, "error": BAD_REQUEST}
        cmd, queued = request["cmd"], request["cmd"]
        state = self._state()
        if cmd == Command.SET:
            try:
                queued = setting_command(request, state.get("settings") or {})
            except SettingError as error:
                return {"ok": False, "cmd": cmd, "error": str(error), **state}
        elif cmd not in COMMANDS:
            return {"ok": False, "error": f"unknown command {cmd[:40]!r}; {KNOWN}", **state}
        refused = _refusal(cmd, self._expected(str(state.get("status", ""))))
        if refused:
            return {"ok": False, "cmd": cmd, "error": refused, **state}
        extra = {"setting": queued.removeprefix(SET_PREFIX)} if cmd == Command.SET else {}
        if cmd != "ping":
            outcome = self.commands.offer(queued)
            if outcome == "full":
                return {"ok": False, "cmd": cmd, "error": f"busy, try again: {QUEUE_LIMIT} commands are waiting "
                        "for the training loop", **state}
            if cmd in ("pause", "resume"):
                self._expect = PAUSED if cmd == "pause" else RUNNING
            extra |= {"coalesced": True} if outcome == "coalesced" else {}
        return {"ok": True, "cmd": cmd, "pid": os.getpid(), **state, **extra}

    def _expected(self, status: str) -> str:
        """The status once the waiting pause/resume is done: `pause` then `resume` at once must both count,
        though the loop has not paused yet when the resume arrives."""
        if self._expect is not None and (status == self._expect or status not in (STARTING, RUNNING, PAUSED)):
            self._expect = None
        return self._expect or status

    # -- the server thread ------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._closed.is_set():
                if not self._listening and (len(self._clients) < MAX_CLIENTS or self._idlest() is not None):
                    self._selector.register(self._sock, selectors.EVENT_READ)
                    self._listening = True
                for key, _ in self._selector.select(timeout=1.0 if self._listening else 0.2):
                    if key.fileobj is self._sock:
                        self._accept()
                    elif key.fileobj is not self._wake_r:
                        self._service(key.data)
                self._drop_idle()
        finally:
            for client in list(self._clients.values()):
                self._drop(client)
            self._selector.close()
            self._sock.close()
            self._wake_r.close()

    def _accept(self) -> None:
        while True:
            if len(self._clients) >= MAX_CLIENTS and not self._evict_idle():
                self._pause_listening()  # the rest wait in the backlog until a client leaves
                return
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                return
            except OSError:  # out of file descriptors: try again on the next round
                self._pause_listening()
                return
            conn.setblocking(False)
            client = _Client(conn)
            self._clients[conn] = client
            self._selector.register(conn, selectors.EVENT_READ, client)

    def _pause_listening(self) -> None:
        if self._listening:
            self._selector.unregister(self._sock)
            self._listening = False

    def _idlest(self) -> _Client | None:
        """The client that has been quiet longest, if it has been quiet a while and awaits no reply."""
        quiet = [c for c in self._clients.values() if not c.outbox]
        oldest = min(quiet, key=lambda c: c.seen, default=None)
        return oldest if oldest is not None and time.monotonic() - oldest.seen >= EVICT_IDLE_S else None

    def _evict_idle(self) -> bool:
        """At the cap, the idlest client makes room for a new one."""
        oldest = self._idlest()
        if oldest is not None:
            self._drop(oldest)
        return oldest is not None

    def _service(self, client: _Client) -> None:
        try:
            if client.outbox:
                self._send(client)
            if client.reading and len(client.outbox) < OUTBOX_LIMIT:
                self._receive(client)
        except OSError:
            self._drop(client)
            return
        wanted = (selectors.EVENT_READ if client.reading and len(client.outbox) < OUTBOX_LIMIT else 0) | (
            selectors.EVENT_WRITE if client.outbox else 0)
        if not wanted:
            self._drop(client)  # it closed its side and has every reply
        elif wanted != client.events:
            self._selector.modify(client.sock, wanted, client)
            client.events = wanted

    def _send(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbox)
        except BlockingIOError:
            return
        del client.outbox[:sent]
        if not client.outbox and client.refused:
            client.sock.shutdown(socket.SHUT_WR)  # reply sent: end of answers; its bytes are still read and dropped

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        client.seen = time.monotonic()
        if not data:  # the client closed its side: a last line without a newline is still a request
            client.reading = False
            if client.inbox and not client.refused:
                self._reply(client, self._answer(bytes(client.inbox)))
            client.inbox.clear()
            return
        if client.refused:  # drained, not answered, so that closing does not reset the reply away
            client.dropped += len(data)
            client.reading = client.dropped < DISCARD_LIMIT
            return
        client.inbox += data
        *lines, rest = client.inbox.split(b"\n")
        for line in lines:
            if len(line) > MAX_LINE:
                self._refuse(client)
                return
            self._reply(client, self._answer(line))
        if len(rest) > MAX_LINE:
            self._refuse(client)
            return
        client.inbox = bytearray(rest)

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            return self.handle(line)
        except Exception as error:  # a bug in one answer must not end the thread that serves every client
            return {"ok": False, "error": f"the engine could not answer: {error.__class__.__name__}: {error}"}

    def _reply(self, client: _Client, reply: dict[str, Any]) -> None:
        client.outbox += (json.dumps(reply, default=str) + "\n").encode()

    def _refuse(self, client: _Client) -> None:
        client.refused = True
        client.inbox.clear()
        self._reply(client, {"ok": False, "error": f"request longer than {MAX_LINE >> 10} KiB; {BAD_REQUEST}"})

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for client in [c for c in self._clients.values() if now - c.seen > IDLE_S]:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.sock, None) is None:
            return
        self._selector.unregister(client.sock)
        client.sock.close()
