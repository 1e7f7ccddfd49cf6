"""`srcockpit train / status / stop / resume / send / watch`: start runs and act on them by name."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.protocol import COMMANDS, FINISHED, LIVE_STATUSES, PAUSED, STOPPED, UserError

STOP_WAIT_S = 600.0
REASON_WIDTH = 160  # a failed run's reason in `srcockpit status`: one line


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an option, e.g. --set train.total_iter=1000 (repeatable; YAML values)")
    parser.add_argument("--vgg-weights", type=Path, metavar="FILE",
                        help="torchvision's vgg19-dcbb9e9d.pth for the perceptual loss (not available offline)")


def add_torchrun_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "several GPUs or nodes (torchrun, DDP)",
        "The engine runs under torchrun, one rank per GPU; rank 0 writes the events and owns the control "
        "socket. Without CUDA the ranks train on the CPU with the gloo backend.")
    group.add_argument("--gpus", "--nproc", dest="gpus", type=int, metavar="N",
                       help="ranks on this node: one per GPU (torchrun --nproc-per-node); CPU ranks without CUDA")
    group.add_argument("--nnodes", type=int, default=1, metavar="N", help="nodes taking part (default 1)")
    group.add_argument("--node-rank", type=int, default=0, metavar="R",
                       help="this node's number, 0 to nnodes-1; node 0 holds rank 0 and the run's cockpit")
    group.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="where the nodes meet: node 0's address and a free port (several nodes only)")


def torchrun_plan(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The torchrun layout the arguments ask for (or the one a resumed run had), None for one process."""
    gpus, nnodes = getattr(args, "gpus", None), getattr(args, "nnodes", 1)
    if gpus is None and nnodes == 1 and recorded and recorded.get("nnodes", 1) == 1:
        gpus = recorded.get("nproc_per_node")
    if gpus is None:
        if nnodes > 1:
            raise UserError("--nnodes needs --gpus N (the ranks on each node)")
        return None
    if gpus < 1 or nnodes < 1 or not 0 <= args.node_rank < nnodes:
        raise UserError(f"bad layout: --gpus {gpus} --nnodes {nnodes} --node-rank {args.node_rank}",
                        "--gpus and --nnodes are at least 1; --node-rank is 0 to nnodes-1")
    if nnodes > 1 and not args.rdzv_endpoint:
        raise UserError("several nodes need --rdzv-endpoint HOST:PORT", "node 0's address and a free port")
    if gpus == 1 and nnodes == 1:
        return None
    return {"nproc": gpus, "nnodes": nnodes, "node_rank": args.node_rank, "rdzv_endpoint": args.rdzv_endpoint}


def start_torchrun(options: Path, plan: dict[str, Any], *, overrides: list[str], auto_resume: bool,
                   foreground: bool, root: Path | None = None, debug: bool = False,
                   vgg_weights: Path | None = None) -> int:
    """`python -m torch.distributed.run ... -m engine.launch ...`, detached as usual or in the foreground."""
    from engine.dist import torchrun_command
    from engine.launch import resumable
    from engine.options import load_options
    from engine.protocol import RunPaths
    from tui.launcher import engine_command, spawn_detached

    root = (root or Path.cwd()).resolve()
    opt = load_options(options, root=root, overrides=overrides, debug=debug, auto_resume=auto_resume)
    paths = RunPaths(Path(opt["path"]["experiments_root"]))
    engine_args = engine_command(options, overrides=overrides, root=root, auto_resume=auto_resume, debug=debug,
                                 vgg_weights=vgg_weights)[3:]
    cmd = torchrun_command(engine_args, **plan)
    ranks = plan["nproc"] * plan["nnodes"]
    if foreground:
        return torchrun_foreground(cmd, paths, root=root, fresh=not resumable(opt))
    if plan["node_rank"] > 0:  # rank 0, the lock and the cockpit are on node 0
        log = root / f"srcockpit-{paths.root.name}-node{plan['node_rank']}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        print(f"node {plan['node_rank']} of {paths.root.name} started (torchrun pid {process.pid}, log {log}); "
              "the run's cockpit is on node 0")
        return 0
    spawn_detached(cmd, paths, root=root)
    name = paths.root.name
    print(f"started {name} on {ranks} ranks (torchrun pid {paths.engine_info().get('pid')}, log {paths.engine_log})")
    print(f"  watch: srcockpit attach {name}   stop: srcockpit stop {name}   text: srcockpit watch {name}")
    return 0


def torchrun_foreground(cmd: list[str], paths: Any, *, root: Path, fresh: bool) -> int:
    """torchrun as a child; its rank 0's events are printed as --no-ui prints them. Ctrl-C reaches torchrun,
    which asks every rank to stop (graceful: they agree on the iteration and rank 0 saves)."""
    from engine.protocol import EventFollower, StatusEvent
    from tui.console import ConsoleRenderer

    started = time.time()
    offset = 0 if fresh or not paths.events.exists() else paths.events.stat().st_size
    follower = EventFollower(paths.events, offset)
    env = dict(os.environ, PYTHONUNBUFFERED="1", SRCOCKPIT_ENGINE_LOG=str(paths.engine_log))
    process = subprocess.Popen(cmd, cwd=root, env=env)
    final: str | None = None
    forward = lambda signum, _frame: process.send_signal(signum)  # noqa: E731 (SIGTERM from Slurm or kill)
    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, forward))}  # the terminal's ^C reaches torchrun
    try:
        with ConsoleRenderer() as renderer:
            while True:
                running = process.poll() is None
                for event in follower.poll():
                    if event.t >= started - 1:  # an archived run's old log is not ours
                        renderer(event)
                        if isinstance(event, StatusEvent):
                            final = event.status
                if not running:
                    break
                time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if final is None:  # a node other than 0 without the run folder shared: torchrun's word is all there is
        return process.returncode
    return 0 if final in (FINISHED, STOPPED) else (process.returncode or 1)


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train", help="start a training run from a basicsr/Real-ESRGAN options file",
        description="Start a training run. By default the engine runs detached (it survives the terminal and SSH "
                    "hang-ups) and the command returns; `srcockpit attach NAME` shows it. With --no-ui it runs "
                    "in the foreground and prints its progress; Ctrl-C stops it gracefully (saving net_g, EMA "
                    "and the training state), a second Ctrl-C within 3 s aborts.")
    train.add_argument("options", type=Path, nargs="+",
                       help="the options YAML, e.g. options/finetune_small_realesr_animevideox2v3.yml; several files "
                            "train as stages, each from the best checkpoint of the one before (e.g. "
                            "..._stage1_l1.yml then finetune_small_realesr_animevideox2v3.yml)")
    add_run_options(train)
    train.add_argument("--auto-resume", action="store_true",
                       help="continue from the newest valid training state of this run "
                            "(as Real-ESRGAN's --auto_resume)")
    train.add_argument("--debug", action="store_true",
                       help="basicsr's debug mode: name prefixed debug_, print every iteration, val/save every 8")
    train.add_argument("--no-ui", dest="train_no_ui", action="store_true", help="run in the foreground, headless")
    train.add_argument("--notify", metavar="CMD",
                       help="a shell command run on every alert and when the run fails or finishes, the event as "
                            "JSON on its stdin (e.g. 'ntfy publish mytopic'); kept as srcockpit.notify for resumes")
    add_torchrun_options(train)
    train.set_defaults(handler=run_train)
    _register_steering(sub)


def _register_steering(sub: argparse._SubParsersAction) -> None:
    """status, stop, resume, send, watch: the commands that act on a run by name."""
    status = sub.add_parser("status", help="list runs, or show one run's state",
                            description="Every run under ./experiments (or one run) with status, iteration, "
                                        "best PSNR and whether an engine is working on it now.")
    status.add_argument("run", nargs="?", help="run name or folder")
    status.set_defaults(handler=run_status)

    stop = sub.add_parser("stop", help="stop a run gracefully (it saves a resumable state)",
                          description="Ask a run's engine to stop after its current iteration; it saves net_g, "
                                      "EMA and the training state, so `srcockpit resume` continues it.")
    stop.add_argument("run", help="run name or folder")
    stop.add_argument("--no-wait", action="store_true", help="return once the engine has accepted the command")
    stop.set_defaults(handler=run_stop)

    resume = sub.add_parser("resume", help="resume a stopped or crashed run, or unpause a paused one",
                            description="A stopped or crashed run gets a new detached engine that continues from "
                                        "its newest valid training state; a paused run is unpaused.")
    resume.add_argument("run", help="run name or folder")
    resume.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an option for the resumed run, e.g. --set train.total_iter=400000")
    resume.add_argument("--no-ui", dest="train_no_ui", action="store_true",
                        help="resume in the foreground, headless")
    add_torchrun_options(resume)
    resume.set_defaults(handler=run_resume)

    send = sub.add_parser("send", help="send a control command to a live run",
                          description="pause, resume, save (checkpoint now), validate (now), stop or ping; or "
                                      "`set KEY=VALUE` between iterations, kept by a resume: lr (every optimizer, "
                                      "the schedule goes on from it), gan_weight, percep_weight, net_d_iters.")
    send.add_argument("run", help="run name or folder")
    send.add_argument("command_name", metavar="COMMAND", help=", ".join((*COMMANDS, "set")))
    send.add_argument("setting", nargs="?", metavar="KEY=VALUE", help="for set: e.g. lr=5e-5")
    send.set_defaults(handler=run_send)

    watch = sub.add_parser("watch", help="follow a run's events as text (no cockpit)",
                           description="Print a run's events as the headless console does, until it ends "
                                       "(or Ctrl-C).")
    watch.add_argument("run", help="run name or folder")
    watch.add_argument("--from-start", action="store_true", help="replay the whole log first")
    watch.set_defaults(handler=run_watch)


def run_train(args: argparse.Namespace) -> int:
    if args.notify:  # as a JSON string, which YAML reads back as the command whatever colons or quotes it holds
        args.overrides = [*args.overrides, f"srcockpit.notify={json.dumps(args.notify)}"]
    plan = torchrun_plan(args)
    if plan and len(args.options) > 1:
        raise UserError("stages and --gpus together are not supported",
                        "train the stages one at a time with --gpus; stage 2's path.pretrain_network_g is stage 1's "
                        "promoted checkpoint (`srcockpit rank --promote`)")
    if plan:
        return start_torchrun(args.options[0], plan, overrides=args.overrides, auto_resume=args.auto_resume,
                              foreground=args.no_ui or args.train_no_ui, debug=args.debug,
                              vgg_weights=args.vgg_weights)
    if args.no_ui or args.train_no_ui:
        return train_foreground(args.options, overrides=args.overrides, auto_resume=args.auto_resume,
                                debug=args.debug, vgg_weights=args.vgg_weights)
    from tui.launcher import start_run
    from tui.runs import last_status

    paths = start_run(args.options, overrides=args.overrides, auto_resume=args.auto_resume, debug=args.debug,
                      vgg_weights=args.vgg_weights)
    name, status = paths.root.name, last_status(paths)
    # "starting": the launcher's bound passed before the engine ran; it goes on setting up
    note = {"running": "", "paused": "", "starting": ", still setting up"}.get(status, f", {status} at once")
    print(f"started {name} (engine pid {paths.engine_info().get('pid')}, log {paths.engine_log}{note})")
    print(f"  watch: srcockpit attach {name}   stop: srcockpit stop {name}   text: srcockpit watch {name}")
    return 0


def train_foreground(options: Path | list[Path], *, overrides: list[str], auto_resume: bool, debug: bool = False,
                     vgg_weights: Path | None = None, root: Path | None = None) -> int:
    from engine.launch import run_stages
    from engine.options import load_options
    from tui.console import ConsoleRenderer

    stages = [options] if isinstance(options, Path) else options
    # checked here first, as a detached start does: a bad file is answered before torch is even imported
    load_options(stages[0], root=Path.cwd(), overrides=overrides, debug=debug, auto_resume=auto_resume)
    # a chain goes on as a chain (finished stages kept); one run is resumed by name, as the renderer says
    chain = f"srcockpit {shlex.join(_with_auto_resume(sys.argv[1:]))}" if len(stages) > 1 else None
    with ConsoleRenderer(resume=chain) as renderer:
        status = run_stages(stages, root=root or Path.cwd(), overrides=overrides, auto_resume=auto_resume, debug=debug,
                            vgg_weights=vgg_weights, listener=renderer, argv=sys.argv[1:])
    return 0 if status in (FINISHED, STOPPED) else 1


def _with_auto_resume(argv: list[str]) -> list[str]:
    return argv if "--auto-resume" in argv else [*argv, "--auto-resume"]


def run_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from tui.runs import list_runs, resolve_run, summarise

    summaries = [summarise(resolve_run(args.run))] if args.run else list_runs()
    if not summaries:
        print(f"no runs under {Path.cwd() / 'experiments'}; start one with `srcockpit train OPTIONS` or "
              "`srcockpit demo`")
        return 0
    table = Table("run", "status", "iter", "best PSNR", "engine", box=None, header_style="bold")
    for s in summaries:
        best = f"{s.best_psnr:.2f} dB @ {s.best_psnr_iter}" if s.best_psnr is not None else "-"
        table.add_row(s.name, s.display_status, f"{s.iter}/{s.total_iter or '?'}", best,
                      f"live (pid {s.paths.engine_info().get('pid')})" if s.alive else "-")
    Console(highlight=False).print(table)
    for s in summaries:
        if s.reason:
            print(f"{s.name} failed: {one_line(s.reason)}")
    return 0


def one_line(text: str, limit: int = REASON_WIDTH) -> str:
    """The first line of a message, cut to fit a terminal line."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[:limit - 1] + "…"


def run_stop(args: argparse.Namespace) -> int:
    from tui.control_client import SocketGone, send_command, terminate_engine
    from tui.runs import engine_alive, last_status, resolve_run

    paths = resolve_run(args.run)
    reply: dict = {}
    try:
        reply = send_command(paths, "stop")
    except SocketGone as gone:  # the lock proves an engine is there: SIGTERM is the same graceful stop
        pid = terminate_engine(paths)
        print(f"{paths.root.name}: {gone.message}; sent SIGTERM to engine pid {pid}, the holder of that lock")
    else:
        if not reply.get("ok"):
            raise UserError(f"the engine refused to stop: {reply.get('error')}")
        print(f"{paths.root.name}: stop accepted at iteration {reply.get('iter')}")
    if args.no_wait:
        return 0
    busy = reply.get("busy")
    print(f"{paths.root.name}: waiting up to {STOP_WAIT_S:.0f} s for the engine to "
          + (f"finish {busy}, then " if busy else "finish this iteration, ") + "save a resumable state and exit",
          flush=True)
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        gone = not engine_alive(paths)
        status = last_status(paths)
        if status and status not in LIVE_STATUSES:
            print(f"{paths.root.name}: {status}; `srcockpit resume {paths.root.name}` continues it")
            return 0
        if gone:
            raise UserError(f"the engine of {paths.root.name} ended without a final status (last: {status or 'none'})",
                            f"see {paths.engine_log}; `srcockpit resume {paths.root.name}` continues from the "
                            "newest checkpoint")
        time.sleep(0.2)
    raise UserError(f"{paths.root.name} did not stop within {STOP_WAIT_S:.0f} s", "see its cockpit/engine.log")


def run_resume(args: argparse.Namespace) -> int:
    from tui.control_client import send_command
    from tui.launcher import resume_run, resume_target
    from tui.runs import resolve_run, summarise

    paths = resolve_run(args.run)
    summary = summarise(paths)
    if summary.alive:
        if summary.status == PAUSED:
            reply = send_command(paths, "resume")
            if not reply.get("ok"):
                raise UserError(f"the engine refused to resume: {reply.get('error')}")
            print(f"{paths.root.name}: unpaused")
            return 0
        raise UserError(f"{paths.root.name} is {summary.status}, with a live engine", "nothing to resume")
    if summary.status == FINISHED and not args.overrides:
        raise UserError(f"{paths.root.name} has finished ({summary.iter} iterations)",
                        "to train longer: srcockpit resume NAME --set train.total_iter=N")
    plan = torchrun_plan(args, paths.engine_info().get("torchrun"))  # a torchrun run resumes on as many ranks
    if plan or args.no_ui or args.train_no_ui:
        root, overrides = resume_target(paths, args.overrides)  # this folder, wherever it was made
        if plan:
            return start_torchrun(paths.cockpit / "options.yml", plan, overrides=overrides, auto_resume=True,
                                  foreground=args.no_ui or args.train_no_ui, root=root)
        return train_foreground(paths.cockpit / "options.yml", overrides=overrides, auto_resume=True, root=root)
    start = resume_run(paths, overrides=args.overrides)
    print(resume_line(paths.root.name, start))
    return 0


def resume_line(name: str, start: Any) -> str:
    """What a detached resume did: the engine's word when it found no checkpoint, else where it continues."""
    from engine.protocol import AlertEvent, RunEvent

    restart = next((e for e in start.events if isinstance(e, AlertEvent) and e.code == "restart"), None)
    run = start.last(RunEvent)
    if restart:
        return f"{restart.message} (engine pid {start.pid})"
    if run is None:
        return f"{name}: resumed (engine pid {start.pid}, still setting up)"
    if not run.start_iter:
        return f"no checkpoint yet: starting {name} again from iteration 0 (engine pid {start.pid})"
    return f"{name}: resumed from iteration {run.start_iter} (engine pid {start.pid})"


def run_send(args: argparse.Namespace) -> int:
    from tui.control_client import send_command
    from tui.runs import resolve_run

    cmd = args.command_name
    if cmd == "set":
        if not args.setting:
            raise UserError("set needs KEY=VALUE", "e.g. srcockpit send NAME set lr=5e-5")
        cmd = f"set {args.setting}"
    elif args.setting:
        raise UserError(f"{cmd} takes no argument (got {args.setting!r})", f"srcockpit send NAME {cmd}")
    reply = send_command(resolve_run(args.run), cmd)
    if not reply.get("ok"):
        raise UserError(f"the engine refused {cmd}: {reply.get('error')}")
    done = f"set {reply['setting']}" if reply.get("setting") else cmd
    print(f"{done}: accepted at iteration {reply.get('iter')} (status {reply.get('status')})")
    return 0


def run_watch(args: argparse.Namespace) -> int:
    from engine.protocol import EventFollower
    from tui.console import ConsoleRenderer
    from tui.runs import engine_alive, last_status, resolve_run

    paths = resolve_run(args.run)
    follower = EventFollower(paths.events, 0 if args.from_start else paths.events.stat().st_size)

    def drain() -> None:  # to the end of what is written (a 50 MB torn tail takes several polls)
        size = paths.events.stat().st_size
        while True:
            before = follower.offset
            for event in follower.poll():
                renderer(event)
            if follower.offset >= size or follower.offset == before:
                return

    with ConsoleRenderer() as renderer:
        while True:
            drain()
            status = last_status(paths)
            if status not in LIVE_STATUSES or not engine_alive(paths, status):
                drain()
                print(f"{paths.root.name}: {status or 'no engine'}")
                return 0
            time.sleep(0.5)

