"""Send one command to a run's engine over its control socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from engine.protocol import COMMANDS, RunPaths, UserError


def socket_path(paths: RunPaths) -> Path:
    """The socket the engine announced in engine.json (it may live outside a deep run folder)."""
    announced = paths.engine_info().get("socket")
    return Path(announced) if announced else paths.socket()


def send_command(paths: RunPaths, cmd: str, timeout: float = 5.0) -> dict[str, Any]:
    """The engine's reply; UserError when no engine is listening."""
    if cmd not in COMMANDS:
        raise UserError(f"unknown command {cmd!r}", f"one of: {', '.join(COMMANDS)}")
    path = socket_path(paths)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall((json.dumps({"cmd": cmd}) + "\n").encode())
            reply = sock.makefile("rb").readline()
    except (FileNotFoundError, ConnectionRefusedError) as error:
        raise UserError(f"no live engine for {paths.root}", "`srcockpit status` shows the run; "
                        "`srcockpit resume` restarts a stopped one") from error
    except TimeoutError as error:
        raise UserError(f"the engine of {paths.root} did not answer within {timeout:.0f} s") from error
    except PermissionError as error:
        raise UserError(f"not allowed to talk to the engine of {paths.root}",
                        "the control socket belongs to another user") from error
    if not reply:
        raise UserError(f"the engine of {paths.root} closed the connection without answering")
    return json.loads(reply)
