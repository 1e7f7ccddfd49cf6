"""A zygote: one Python that has imported the heavy modules once and forks a fresh process per command.

Starting Python + torch + basicsr + OpenCV costs seconds of CPU; tests that run a command many times (the
fault test's engines, the bad-input corpus) fork them from here instead. Each child is a real process of its
own: it takes its working folder, its environment, stdin from /dev/null and stdout/stderr in files, calls the
module's `main(argv)` as its console script does, and exits with that code (1 and a traceback on an uncaught
exception, as the interpreter would).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# what the command line's commands import, paid once
CLI_PRELUDE = """
import tui.cli, engine.options_registry, engine.compat, engine.models, engine.loop, engine.launch
import engine.job_kinds, engine.rank, engine.report, engine.weights.run, engine.export.pipeline, onnx, onnxruntime
import engine.data.meta_info, engine.data.subset, engine.data.subimages, engine.data.valset
import tui.commands.train, tui.commands.data, tui.commands.weights, tui.commands.export, tui.commands.rank
for registry in engine.options_registry.FOLDERS:
    engine.options_registry.registered(registry)  # the option checks read basicsr's sources once
"""

_ZYGOTE = r"""
import importlib, json, os, signal, sys, time, traceback
exec(sys.argv[1])
print(json.dumps({"ready": True}), flush=True)

def child(request):
    if request["setsid"]:
        os.setsid()
    os.chdir(request["cwd"])
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), fd)
    sys.argv = [request["prog"], *request["argv"]]
    try:
        return importlib.import_module(request["module"]).main(request["argv"])
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1

for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "start":
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                code = int(child(request) or 0)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
    elif request["op"] == "wait":
        deadline = time.monotonic() + request["timeout"]
        pid, status = os.waitpid(request["pid"], os.WNOHANG)
        while pid == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            pid, status = os.waitpid(request["pid"], os.WNOHANG)
        if pid == 0:  # past its time: killed, as subprocess.run's timeout would
            os.kill(request["pid"], signal.SIGKILL)
            pid, status = os.waitpid(request["pid"], 0)
        print(json.dumps({"pid": pid, "status": status}), flush=True)
    elif request["op"] == "wait_any":
        pid, status = os.wait()
        print(json.dumps({"pid": pid, "status": status}), flush=True)
"""


def completed(args: list[str], status: int, stdout: Path, stderr: Path) -> subprocess.CompletedProcess:
    """A forked `srcockpit ARGS`'s outcome, as subprocess.run would give it."""
    return subprocess.CompletedProcess(["srcockpit", *args], os.waitstatus_to_exitcode(status),
                                       stdout.read_text(errors="replace"), stderr.read_text(errors="replace"))


class Zygote:
    """prelude: Python run once before the first fork (the imports whose cost the children share)."""

    def __init__(self, prelude: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, "-c", _ZYGOTE, prelude], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        assert self._reply() == {"ready": True}

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        assert line, "the zygote died"
        return json.loads(line)

    def _ask(self, **request: object) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def start(self, module: str, argv: list[str], *, cwd: Path, stdout: Path, stderr: Path | None = None,
              env: dict[str, str] | None = None, setsid: bool = False, prog: str = "python") -> int:
        """A child running module.main(argv); its pid."""
        return self._ask(op="start", module=module, argv=argv, cwd=str(cwd), stdout=str(stdout),
                         stderr=str(stderr or stdout), env=env or {}, setsid=setsid, prog=prog)["pid"]

    def wait(self, pid: int, timeout: float = 3600) -> int:
        """The child's wait status (os.waitpid's); SIGKILLed past timeout."""
        return self._ask(op="wait", pid=pid, timeout=timeout)["status"]

    def start_srcockpit(self, args: list[str], *, cwd: Path, stdout: Path, stderr: Path) -> int:
        """`srcockpit ARGS` in cwd, as tests.conftest.srcockpit runs it (COLUMNS=200); its pid."""
        return self.start("tui.cli", args, cwd=cwd, stdout=stdout, stderr=stderr, env={"COLUMNS": "200"},
                          prog="srcockpit")

    def srcockpit(self, *args: str, cwd: Path, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """tests.conftest.srcockpit's command line, forked: `srcockpit ARGS` in cwd, its output captured."""
        with tempfile.TemporaryDirectory(prefix="zygote-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            pid = self.start_srcockpit(list(args), cwd=cwd, stdout=out, stderr=err)
            result = completed(list(args), self.wait(pid, timeout), out, err)
        code = result.returncode
        if check and code != 0:
            raise AssertionError(f"srcockpit {' '.join(args)} exited {code}\n{result.stdout}\n{result.stderr}")
        return result

    def wait_any(self) -> tuple[int, int]:
        """The next child to end: its pid and wait status."""
        reply = self._ask(op="wait_any")
        return reply["pid"], reply["status"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
