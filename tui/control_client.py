"""Send one command to a run's engine over its control socket; stop it by signal when the socket is gone."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from engine.mitigations import KNOBS, SET_PREFIX, SettingError, parse_setting
from engine.protocol import COMMANDS, Command, RunPaths, UserError, engine_holds_lock, lock_holder_pids


class SocketGone(UserError):
    """The run's lock is held (an engine works on it) but its control socket cannot be reached."""


def socket_path(paths: RunPaths) -> Path:
    """The socket the engine announced in engine.json (it may live outside a deep run folder)."""
    announced = paths.engine_info().get("socket")
    return Path(announced) if announced else paths.socket()


def no_engine(paths: RunPaths) -> UserError:
    return UserError(f"no live engine for {paths.root}", "`srcockpit status` shows the run; "
                     "`srcockpit resume` restarts a stopped one")


def request_for(cmd: str) -> dict[str, Any]:
    """The request line's object: {"cmd": "stop"}, or {"cmd": "set", "key": "lr", "value": 5e-05} for "set lr=5e-5"."""
    if cmd == Command.SET or cmd.startswith(SET_PREFIX):
        try:
            setting = parse_setting(cmd)
        except SettingError as error:
            raise UserError(str(error), f"e.g. set lr=5e-5; settable: {', '.join(KNOBS)}") from None
        return {"cmd": "set", "key": setting.key, "value": setting.value}
    if cmd not in COMMANDS:
        raise UserError(f"unknown command {cmd!r}", f"one of: {', '.join(COMMANDS)}, set KEY=VALUE")
    return {"cmd": cmd}


def send_command(paths: RunPaths, cmd: str, timeout: float = 5.0) -> dict[str, Any]:
    """The engine's reply; UserError when no engine is listening (SocketGone when one holds the run's lock).

    `cmd` is a command's name or "set KEY=VALUE". A run whose lock nobody holds has no engine, whatever
    socket engine.json names: a copied run folder names its original's socket, and must not steer the original.
    """
    request = request_for(cmd)
    held = engine_holds_lock(paths)
    if held is False:
        raise no_engine(paths)
    path = socket_path(paths)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall((json.dumps(request) + "\n").encode())
            reply = sock.makefile("rb").readline()
    except (FileNotFoundError, ConnectionRefusedError) as error:
        if held:
            raise SocketGone(f"an engine holds {paths.root.name} (its lock {paths.lock}) but its control socket "
                             f"{path} does not answer", f"`srcockpit stop {paths.root.name}` stops it with "
                             "SIGTERM (it saves first)") from error
        raise no_engine(paths) from error
    except TimeoutError as error:
        raise UserError(f"the engine of {paths.root} did not answer within {timeout:.0f} s") from error
    except PermissionError as error:
        raise UserError(f"not allowed to talk to the engine of {paths.root}",
                        "the control socket belongs to another user") from error
    except OSError as error:  # reset by a busy or closing engine
        raise UserError(f"the engine of {paths.root} dropped the connection ({error.strerror})",
                        "try again") from error
    if not reply:
        raise UserError(f"the engine of {paths.root} closed the connection without answering", "try again")
    return json.loads(reply)


def terminate_engine(paths: RunPaths) -> int:
    """SIGTERM (a graceful stop: the engine saves) to the engine that holds the run's lock; its pid.

    The pid comes from engine.json and must be the lock's holder in /proc/locks: a pid alone may belong
    to an unrelated process by now.
    """
    info = paths.engine_info()
    claimed = set()
    for key in ("engine_pid", "pid"):  # under torchrun rank 0 (engine_pid) holds the lock, torchrun is pid
        if isinstance(info.get(key), int):
            claimed.add(info[key])
    holders = lock_holder_pids(paths.lock)
    matching = sorted(claimed & holders)
    if not matching:
        named = ", ".join(map(str, sorted(holders))) or "no process this machine shows"
        raise UserError(f"{paths.root.name}: its control socket is gone and the holder of {paths.lock} ({named}) "
                        f"is not the engine engine.json names ({', '.join(map(str, sorted(claimed))) or 'none'})",
                        "`lslocks` names the process that holds it; stop that one with `kill PID`")
    os.kill(matching[0], signal.SIGTERM)
    return matching[0]
