"""The training loop: Real-ESRGAN's train.py, built from basicsr's own pieces, instrumented.

One readable loop (nanoGPT style) with basicsr's behaviour: the same option keys, experiment
layout, print/val/save frequencies, EMA, tb_logger and auto-resume. What it adds: an event for
everything a cockpit shows (design.md section 2), control commands obeyed between iterations
(section 3), and a resume that continues the run exactly where it stopped (issue 9).
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch

import engine.metrics
import engine.models  # registers the cockpit models
from engine.compat import load_basicsr
from engine.data.images import read_rgb
from engine.evaluate import (
    PairedImages,
    baseline_figures,
    evaluate_baselines,
    evaluate_model,
    load_pairs,
    remember_outputs,
)
from engine.events import EventWriter
from engine.files import DiskFull, private_dir
from engine.health import HealthMonitor, Verdict
from engine.mitigations import SET_PREFIX, parse_setting
from engine.options import MODEL_SUBSTITUTES
from engine.protocol import (
    FAILED,
    FINISHED,
    PAUSED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    AlertEvent,
    Best,
    CheckpointEvent,
    Command,
    IterEvent,
    RunEvent,
    RunPaths,
    SetEvent,
    Status,
    StatusEvent,
    UserError,
    ValEvent,
    load_events,
)
from engine.score_memo import fits
from engine.speed import apply_speed_options
from engine.states import load_state

load_basicsr()
import basicsr.utils.logger as basicsr_logger  # noqa: E402
from basicsr.data import build_dataloader, build_dataset  # noqa: E402
from basicsr.data.data_sampler import EnlargedSampler  # noqa: E402
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils import MessageLogger, get_root_logger, get_time_str, init_wandb_logger, mkdir_and_rename  # noqa: E402
from basicsr.utils.misc import check_resume, set_random_seed  # noqa: E402

# An iter event goes out every print_freq iterations, and at least this often in seconds.
ITER_EVENT_SECONDS = 2.0
SPEED_WINDOW = 50
# basicsr's warnings among the console's lines (tui/console.py) carry the same timestamp
CONSOLE_FORMAT, CONSOLE_DATE = "%(asctime)s %(levelname)s basicsr: %(message)s", "%Y-%m-%d %H:%M:%S"


def fresh_root_logger(log_file: Path) -> logging.Logger:
    """basicsr's root logger writing to this run's log. basicsr sets it up once per process; a second run in
    the same process (stages, the demo) would log into the first run's file, so its handlers are dropped first."""
    logger = logging.getLogger("basicsr")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    basicsr_logger.initialized_logger.pop("basicsr", None)
    logger = get_root_logger(logger_name="basicsr", log_level=logging.INFO, log_file=str(log_file))
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):  # a full disk: no traceback per line, the disk guard stops
            handler.handleError = lambda record: None
    # Python warnings (torch's, numpy's) into the same log, so every kind of run (a demo stage too, whose
    # stderr is the demo's) has them where the cockpit's log panel reads
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers = list(logger.handlers)
    warnings_logger.propagate = False
    return logger


def release_root_logger() -> None:
    """Closes the run's log file when its run ends: later work in the process (another test, the demo's rank
    and report) would otherwise write into this run's train log. The console handler stays, and basicsr still
    counts its logger as set up, so no new handler at INFO appears on stderr."""
    for name in ("basicsr", "py.warnings"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
                handler.close()
    logging.captureWarnings(False)


def tb_folder(opt: dict[str, Any]) -> Path:
    """TensorBoard's event files, where the plan's `tensorboard --logdir experiments/NAME/tb_logger` looks: inside
    the run's folder (basicsr's ROOT/tb_logger/NAME would be outside it, kept by no archive and no file mode)."""
    return Path(opt["path"]["experiments_root"]) / "tb_logger"


def open_tb_logger(opt: dict[str, Any]) -> Any:
    """basicsr's init_tb_loggers with the run's folder: wandb first (to sync with TensorBoard), then the writer."""
    if "debug" in opt["name"]:
        return None
    if (opt["logger"].get("wandb") or {}).get("project") is not None:
        init_wandb_logger(opt)
    if not opt["logger"].get("use_tb_logger") or opt.get("rank", 0) != 0:  # rank 0 writes the scalars (master_only)
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(private_dir(tb_folder(opt))))


class ResumableSampler(EnlargedSampler):
    """basicsr's EnlargedSampler that can skip the samples a stopped run already used this epoch."""

    skip = 0

    def __iter__(self):
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


@dataclass
class TrainData:
    loader: Any
    sampler: ResumableSampler
    batches_per_epoch: int
    val_loaders: list[Any]


def build_loaders(opt: dict[str, Any], logger: logging.Logger) -> TrainData:
    """basicsr.train.create_train_val_dataloader, with a sampler that can resume mid-epoch."""
    train_opt = opt["datasets"]["train"]
    train_set = build_dataset(train_opt)
    if len(train_set) == 0:
        raise UserError(f"the training set {train_opt.get('name')} is empty",
                        "check datasets.train.dataroot_gt and meta_info (`srcockpit data meta-info`)")
    sampler = ResumableSampler(train_set, opt["world_size"], opt["rank"], train_opt.get("dataset_enlarge_ratio", 1))
    loader = build_dataloader(train_set, train_opt, num_gpu=opt["num_gpu"], dist=opt["dist"], sampler=sampler,
                              seed=opt["manual_seed"])
    if len(loader) == 0:
        raise UserError(f"the training set has {len(train_set)} images, fewer than one batch of "
                        f"{train_opt['batch_size_per_gpu']}", "lower batch_size_per_gpu or add images")
    val_loaders = []
    for phase, dataset_opt in opt["datasets"].items():
        if phase.split("_")[0] == "val":
            val_set = build_dataset(dataset_opt)
            val_loaders.append(build_dataloader(val_set, dataset_opt, num_gpu=opt["num_gpu"], dist=opt["dist"],
                                                sampler=None, seed=opt["manual_seed"]))
    logger.info(f"Training: {len(train_set)} images, {len(loader)} iterations per epoch")
    return TrainData(loader, sampler, len(loader), val_loaders)


def resume_networks(opt: dict[str, Any], stem: str) -> list[Path]:
    """The network files a resume from training state `stem` loads (the ones basicsr's check_resume names)."""
    ignored = opt["path"].get("ignore_resume_networks") or ()
    return [Path(opt["path"]["models"]) / f"net_{key.removeprefix('network_')}_{stem}.pth"
            for key in opt if key.startswith("network_") and key not in ignored]


def earlier_engine(events: Path) -> bool:
    """Whether an engine before this one started on the run: its log holds a second `starting` status."""
    starts = (e for e in load_events(events).events if isinstance(e, StatusEvent) and e.status == STARTING)
    return next(islice(starts, 1, None), None) is not None


def newest_resume_state(opt: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any] | None:
    """The newest training state whose network file loads; skipped ones are reported through warn."""
    explicit = opt["path"].get("resume_state")
    if explicit:
        candidates = [Path(explicit)]
    elif opt.get("auto_resume"):
        folder = Path(opt["path"]["training_states"])
        found = [p for p in folder.glob("*.state") if p.stem.isdigit()] if folder.is_dir() else []
        candidates = sorted(found, key=lambda p: int(p.stem), reverse=True)
    else:
        return None
    problem = ""
    for path in candidates:
        try:
            state = load_state(path)
            for network in resume_networks(opt, path.stem):
                torch.load(network, map_location="cpu", weights_only=True)
        except Exception as error:  # a torn or missing file: any loader error means "not usable"
            lines = str(error).strip().splitlines()  # torch's messages run to paragraphs: the first line names it
            problem = f"{error.__class__.__name__}: {lines[0] if lines else ''}"
            warn(f"skipped training state {path.name}: {problem}")
            continue
        return state
    if explicit:
        raise UserError(f"cannot resume from {explicit}: it or its network files do not load ({problem})",
                        "name a training_states/N.state whose models/net_*_N.pth lie beside it, or drop "
                        "path.resume_state to start from iteration 0")
    return None


@dataclass
class Speed:
    """Iterations per second over a sliding window, and where the time went."""

    samples: deque = field(default_factory=lambda: deque(maxlen=SPEED_WINDOW))

    def add(self, data_s: float, compute_s: float) -> None:
        self.samples.append((data_s, compute_s))

    def figures(self) -> dict[str, float]:
        data = sum(s[0] for s in self.samples)
        compute = sum(s[1] for s in self.samples)
        total = data + compute
        return {"it_s": len(self.samples) / total if total > 0 else 0.0,
                "data_s": data / max(len(self.samples), 1), "compute_s": compute / max(len(self.samples), 1)}


class Commands:
    """Where the loop gets its commands: the control socket, plus stop requests from signals.

    With several ranks (`world`, engine/dist.py) only rank 0 has the socket; `sync()`, once per
    iteration, and `wait()`, while paused, are where all ranks agree on rank 0's commands and on any
    rank's stop request, so every rank acts on the same iteration. A rank lost in that exchange
    becomes a stop request: rank 0 then saves what it holds, alone.
    """

    def __init__(self, control: Any | None, world: Any | None = None) -> None:
        self.control = control
        self.world = world
        self.requested: str | None = None  # a signal's stop request on this rank
        self._agreed_stop: str | None = None
        self._agreed: list[str] = []

    @property
    def stop_reason(self) -> str | None:
        return self.requested if self.world is None else self._agreed_stop

    def request_stop(self, reason: str) -> None:
        self.requested = self.requested or reason

    def _exchange(self, verdict: Verdict | None, commands: list[str]) -> tuple[Verdict | None, list[str]]:
        from engine.dist import RankLost

        try:
            verdict, stop, commands = self.world.agree(verdict, self.requested, commands)
        except RankLost as lost:
            self._agreed_stop = str(lost)
            return verdict, []
        self._agreed_stop = self._agreed_stop or stop
        return verdict, commands

    def sync(self, verdict: Verdict | None = None) -> Verdict | None:
        """Between iterations: rank 0's health verdict and commands become every rank's."""
        if self.world is None:
            return verdict
        verdict, self._agreed = self._exchange(verdict, self.control.pending() if self.control else [])
        return verdict

    def pending(self) -> list[str]:
        if self.world is not None:
            agreed, self._agreed = self._agreed, []
            return agreed
        return self.control.pending() if self.control else []

    def wait(self, timeout: float) -> str | None:
        if self.world is not None:  # the other ranks wait for rank 0's answer in the exchange
            cmd = self.control.wait(timeout) if self.control else None
            _, agreed = self._exchange(None, [cmd] if cmd else [])
            return agreed[0] if agreed else None
        if self.control:
            return self.control.wait(timeout)
        time.sleep(timeout)
        return None


@dataclass
class _Session:
    """What one training session works with: built once in Trainer.run, used by every step."""

    model: Any
    data: TrainData
    tb_logger: Any
    health: HealthMonitor
    msg_logger: Any
    prefetcher: Any
    speed: Speed = field(default_factory=Speed)
    last_emit: float = 0.0


class Trainer:
    """One run of the loop. `status` is read by the control socket's thread."""

    def __init__(self, opt: dict[str, Any], events: EventWriter, commands: Commands, stage: str | None = None) -> None:
        self.opt = opt
        self.stage = stage
        self.events = events
        self.commands = commands
        self.status = STARTING
        self.current_iter = 0
        self.total_iter = int(opt["train"]["total_iter"])
        self.epoch = 0
        self.epoch_iter = 0
        self._saved_iter = -1
        self.busy = ""  # what keeps the loop from the next command check (a validation): control replies say it
        self.before_end: Callable[[], None] | None = None  # called before the final status (stops the telemetry)
        self.disk: Any = None  # the run's DiskGuard, told the size of every checkpoint
        self._baseline_cache: dict[str, dict[str, dict[str, float]]] = {}
        self._pairs_cache: dict[str, Any] = {}

    @property
    def resumable_from(self) -> int:
        """The iteration of the newest checkpoint of this run (-1: none yet)."""
        return self._saved_iter

    def state(self) -> dict[str, Any]:
        """What every control reply carries; `settings` (what a `set` may change, empty until the model is built)
        is read from the socket's thread: single attribute reads, safe while the loop trains."""
        model = getattr(self, "model", None)
        return {"status": self.status, "iter": self.current_iter, "total_iter": self.total_iter, "busy": self.busy,
                "settings": engine.models.model_settings(model) if model is not None else {}}

    def set_status(self, status: Status, **fields: Any) -> None:
        if status in (STOPPED, FAILED, FINISHED) and self.before_end is not None:
            self.before_end()  # the final status is the log's last event: no telemetry sample lands after it
        self.status = status
        self.events.emit(StatusEvent(status=status, iter=self.current_iter, **fields))

    # -- set-up ---------------------------------------------------------------------------------

    def _prepare(self) -> dict[str, Any] | None:
        opt = self.opt
        set_random_seed(opt["manual_seed"] + opt["rank"])
        for key in ("models", "training_states"):  # the lock is ours: these are a killed engine's torn writes
            for partial in Path(opt["path"][key]).glob(".*.partial"):
                partial.unlink(missing_ok=True)
        skipped: list[str] = []

        def warn(message: str) -> None:
            skipped.append(message)
            self.events.emit(AlertEvent(level="warning", code="resume_skip", message=message))

        resume_state = newest_resume_state(opt, warn)
        if resume_state is not None:
            opt["path"]["resume_state"] = opt["path"].get("resume_state") or "auto"
            check_resume(opt, resume_state["iter"])
        elif opt["rank"] == 0:
            self._announce_restart(usable_skipped=bool(skipped))
            if opt["logger"].get("use_tb_logger") and "debug" not in opt["name"]:
                mkdir_and_rename(str(tb_folder(opt)))
        # basicsr's make_exp_dirs would archive the experiment folder, cockpit/ and its lock included;
        # engine.launch archives an old run before it takes the lock, so only the sub-folders are made
        for key in ("models", "training_states", "visualization"):
            private_dir(Path(opt["path"][key]))
        return resume_state

    def _announce_restart(self, *, usable_skipped: bool) -> None:
        """An auto-resume with nothing to resume from starts the run again from 0 in its folder: say so
        (unless this is the run's very first engine)."""
        opt = self.opt
        if not opt.get("auto_resume") or not earlier_engine(RunPaths(Path(opt["path"]["experiments_root"])).events):
            return
        found = "no usable checkpoint" if usable_skipped else "no checkpoint yet"
        self.events.emit(AlertEvent(level="warning", code="restart",
                                    message=f"{found}: starting {opt['name']} again from iteration 0",
                                    hint=f"a checkpoint comes every {opt['logger']['save_checkpoint_freq']} "
                                         "iterations (logger.save_checkpoint_freq)"))

    def _build_model(self) -> Any:
        model_opt = dict(self.opt, model_type=MODEL_SUBSTITUTES.get(self.opt["model_type"], self.opt["model_type"]))
        return apply_speed_options(build_model(model_opt), self.opt)  # the opt-in `srcockpit:` speed-ups

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> Status:
        resume_state = self._prepare()
        log_file, logger = self._open_logger()
        try:
            return self._run_logged(resume_state, log_file, logger)
        finally:
            release_root_logger()

    def _run_logged(self, resume_state: dict[str, Any] | None, log_file: Path, logger: logging.Logger) -> Status:
        tb_logger = open_tb_logger(self.opt)
        data = build_loaders(self.opt, logger)
        model = self._build_model()
        self.model = model
        if resume_state is not None:
            self._resume(model, data, resume_state)
        session = self._start_session(model, data, tb_logger, log_file)
        self.set_status(RUNNING)
        # Restored once the epoch's data iterator exists: building the dataset, the model and the
        # iterator draw random numbers that the uninterrupted run drew before this point.
        outcome = self._train(session, resume_state["rng"] if resume_state is not None else None)
        return outcome if outcome is not None else self._finish(model, data, tb_logger, session.health)

    def _open_logger(self) -> tuple[Path, logging.Logger]:
        """basicsr's log file for this session. Its INFO lines go there only: a console renders the events, and
        a detached engine's stderr (cockpit/engine.log) keeps what went wrong (the cockpit shows the file)."""
        log_file = Path(self.opt["path"]["log"]) / f"train_{self.opt['name']}_{get_time_str()}.log"
        logger = fresh_root_logger(log_file)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.WARNING)
                if self.events.listener is not None:
                    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, CONSOLE_DATE))  # as the console's lines
        return log_file, logger

    def _resume(self, model: Any, data: TrainData, resume_state: dict[str, Any]) -> None:
        model.resume_training(resume_state)
        self.epoch, self.current_iter = resume_state["epoch"], resume_state["iter"]
        self.epoch_iter = resume_state.get("epoch_iter", 0)
        data.sampler.skip = self.epoch_iter * self.opt["datasets"]["train"]["batch_size_per_gpu"]
        self._saved_iter = self.current_iter

    def _start_session(self, model: Any, data: TrainData, tb_logger: Any, log_file: Path) -> _Session:
        """The session's loggers and prefetcher, its run event, and the health monitor."""
        opt = self.opt
        msg_logger = MessageLogger(opt, self.current_iter, tb_logger)
        prefetcher = (CUDAPrefetcher(data.loader, opt) if opt["datasets"]["train"].get("prefetch_mode") == "cuda"
                      else CPUPrefetcher(data.loader))
        self.events.emit(RunEvent(
            name=opt["name"], stage=self.stage, model_type=opt["model_type"], start_iter=self.current_iter,
            total_iter=self.total_iter, world_size=opt["world_size"], device=str(model.device), versions=versions(),
            batches_per_epoch=data.batches_per_epoch, options=opt, experiments_root=opt["path"]["experiments_root"],
            log_file=str(log_file)))
        health = HealthMonitor(opt, self.events, model)
        self.disk = health.disk
        return _Session(model, data, tb_logger, health, msg_logger, prefetcher)

    def _train(self, session: _Session, pending_rng: Any) -> Status | None:
        """Epochs until total_iter; a final status from a command or a detector ends them early."""
        total_epochs = math.ceil(self.total_iter / session.data.batches_per_epoch) + 1
        for epoch in range(self.epoch, total_epochs + 1):
            if epoch != self.epoch:
                self.epoch, self.epoch_iter = epoch, 0
            session.data.sampler.set_epoch(epoch)
            session.prefetcher.reset()
            if pending_rng is not None:
                engine.models.restore_rng_states(pending_rng)
                pending_rng = None
            outcome = self._epoch(session)
            if outcome is not None or self.current_iter >= self.total_iter:
                return outcome
        return None

    def _epoch(self, session: _Session) -> Status | None:
        tick = time.monotonic()
        train_data = session.prefetcher.next() if self.current_iter < self.total_iter else None
        while train_data is not None:
            outcome = self._step(session, train_data, tick)
            if outcome:
                return outcome
            if self.current_iter >= self.total_iter:
                break  # before fetching: the final state then matches a stop at this iteration
            tick = time.monotonic()
            train_data = session.prefetcher.next()
        return None

    def _step(self, session: _Session, train_data: Any, tick: float) -> Status | None:
        """One iteration: optimize, log, detectors and commands, checkpoint, validation."""
        opt, model = self.opt, session.model
        fed = time.monotonic()
        self.current_iter += 1
        self.epoch_iter += 1
        model.update_learning_rate(self.current_iter, warmup_iter=opt["train"].get("warmup_iter", -1))
        model.feed_data(train_data)
        oom = self._optimize(model)
        if oom is not None:
            return self._out_of_memory(model, oom)
        done = time.monotonic()
        session.speed.add(fed - tick, done - fed)
        losses = model.get_current_log()
        self._log_step(session, losses, fed - tick, done - tick, done)
        verdict = self.commands.sync(session.health.after_iter(self.current_iter, losses,
                                                               session.speed.figures()["it_s"]))
        if verdict:
            return self._stop(model, reason=verdict.reason, save=verdict.save, hint=verdict.hint)
        if self.current_iter % opt["logger"]["save_checkpoint_freq"] == 0:
            self._save(model)
        if opt.get("val") and self.current_iter % int(opt["val"]["val_freq"]) == 0:
            self._validate(model, session.data, session.tb_logger, session.health)
        return self._obey(model, session.data, session.tb_logger, session.health)

    def _log_step(self, session: _Session, losses: dict[str, float], data_time: float, iter_time: float,
                  done: float) -> None:
        """basicsr's message every print_freq iterations; an iter event then, or when the last is old."""
        print_freq = self.opt["logger"]["print_freq"]
        if self.current_iter % print_freq == 0:
            session.msg_logger({"epoch": self.epoch, "iter": self.current_iter,
                                "lrs": session.model.get_current_learning_rate(), "time": iter_time,
                                "data_time": data_time, **losses})
        if self.current_iter % print_freq == 0 or done - session.last_emit >= ITER_EVENT_SECONDS:
            self._emit_iter(session.model, losses, session.speed)
            session.last_emit = done

    def _optimize(self, model: Any) -> str | None:
        """One optimisation step; the allocator's first line when CUDA ran out of memory (the step is lost)."""
        try:
            model.optimize_parameters(self.current_iter)
        except torch.cuda.OutOfMemoryError as error:
            lines = str(error).strip().splitlines()
            return lines[0] if lines else "CUDA out of memory"
        return None

    def _out_of_memory(self, model: Any, error: str) -> Status:
        """The alert names the batch size and peak memory it happened at and the plan's fallback; the run fails,
        resumable from its newest checkpoint (a step half done on a full GPU is not saved)."""
        batch = int(self.opt["datasets"]["train"]["batch_size_per_gpu"])
        smaller = [size for size in (8, 4) if size < batch] or [max(1, batch // 2)]
        peak = (f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated of "
                f"{torch.cuda.get_device_properties(model.device).total_memory / 2**30:.1f} GiB"
                if torch.cuda.is_available() and model.device.type == "cuda" else "peak GPU memory not measured")
        message = (f"out of GPU memory at iteration {self.current_iter} with batch_size_per_gpu {batch} ({peak}): "
                   f"{error}")
        hint = (f"lower datasets.train.batch_size_per_gpu to {' or '.join(map(str, smaller))} (queue_size must stay "
                f"a multiple of it), then `srcockpit resume {self.opt['name']} --set "
                f"datasets.train.batch_size_per_gpu={smaller[0]}`")
        self.events.emit(AlertEvent(code="oom", level="error", message=message, hint=hint))
        return self._stop(model, reason=message, save=False, hint=hint)

    def _emit_iter(self, model: Any, losses: dict[str, float], speed: Speed) -> None:
        figures = speed.figures()
        remaining = self.total_iter - self.current_iter
        self.events.emit(IterEvent(iter=self.current_iter, epoch=self.epoch, total_iter=self.total_iter,
                                   lr=model.get_current_learning_rate()[0], losses=losses, **figures,
                                   eta_s=remaining / figures["it_s"] if figures["it_s"] > 0 else None))

    def _checkpoint_files(self, iteration: int) -> list[Path]:
        """net_g (with its EMA), net_d and the training state of one checkpoint."""
        models = Path(self.opt["path"]["models"])
        return [*models.glob(f"*_{iteration}.pth"), Path(self.opt["path"]["training_states"]) / f"{iteration}.state"]

    def _save(self, model: Any) -> None:
        if self._saved_iter == self.current_iter:
            return
        model.epoch_iter = self.epoch_iter
        before = {path: path.stat().st_mtime_ns for path in self._checkpoint_files(self.current_iter) if path.exists()}
        try:
            model.save(self.epoch, self.current_iter)
        except DiskFull:  # the files this save did write make no checkpoint: give their room back
            for path in self._checkpoint_files(self.current_iter):
                if path.exists() and before.get(path) != path.stat().st_mtime_ns:
                    path.unlink()
            raise
        state_path = Path(self.opt["path"]["training_states"]) / f"{self.current_iter}.state"
        self._saved_iter = self.current_iter
        models = Path(self.opt["path"]["models"])
        if self.disk is not None:
            self.disk.saved(self._checkpoint_files(self.current_iter))
        self.events.emit(CheckpointEvent(iter=self.current_iter, net_g=str(models / f"net_g_{self.current_iter}.pth"),
                                         net_g_ema=str(models / f"net_g_{self.current_iter}.pth")
                                         if hasattr(model, "net_g_ema") else None, state=str(state_path)))

    def _validate(self, model: Any, data: TrainData, tb_logger: Any, health: HealthMonitor) -> None:
        val_opt = self.opt.get("val")
        if not val_opt or not data.val_loaders or self.opt["rank"] != 0:  # basicsr validates on rank 0 only
            return
        settings = {name: {k: v for k, v in metric.items() if k != "type"}
                    for name, metric in (val_opt.get("metrics") or {}).items()}
        for loader in data.val_loaders:
            name = loader.dataset.opt["name"]
            # validation (at any iteration, on command too) must not shift the training's randomness,
            # or a resumed run would no longer follow the one that never stopped
            self.busy = f"validating {name} at iteration {self.current_iter}"
            try:
                with engine.models.rng_preserved():
                    model.validation(loader, self.current_iter, tb_logger, val_opt.get("save_img", False))
            finally:
                self.busy = ""
            metrics = dict(getattr(model, "metric_results", {}))
            best = getattr(model, "best_metric_results", {}).get(name, {})
            images, image_psnr = self._saved_images(loader.dataset, settings.get("psnr", {}))
            self._remember_outputs(model, loader.dataset.opt, images)
            ema = hasattr(model, "net_g_ema")
            baselines = self._baselines(loader.dataset.opt, settings.get("psnr", {}))
            self.events.emit(ValEvent(iter=self.current_iter, dataset=name, metrics=metrics, settings=settings,
                                      best={k: Best(v["val"], v["iter"]) for k, v in best.items()},
                                      baselines=baselines, images=images, image_psnr=image_psnr,
                                      weights="net_g_ema" if ema else "net_g",
                                      net_g=self._raw_scores(model, loader.dataset.opt, settings.get("psnr", {}))
                                      if ema else {}))
            health.after_val(self.current_iter, name, metrics, self._baseline_cache[name].get("bicubic"))

    def _saved_images(self, dataset: Any, psnr_settings: dict[str, Any]) -> tuple[list[str], dict[str, float]]:
        """The outputs basicsr saved at this iteration (val.save_img) and each one's PSNR against its GT."""
        if not (self.opt.get("val") or {}).get("save_img"):
            return [], {}
        visual = Path(self.opt["path"]["visualization"])
        images = sorted(str(p) for p in visual.glob(f"*/*_{self.current_iter}.png"))
        return images, engine.metrics.saved_image_psnr(images, getattr(dataset, "paths", []), psnr_settings)

    def _val_pairs(self, dataset_opt: dict[str, Any]) -> PairedImages | None:
        """A paired validation set's images, read once per run; None for a set without LQ folder."""
        gt, lq = dataset_opt.get("dataroot_gt"), dataset_opt.get("dataroot_lq")
        if not (gt and lq):
            return None
        name = dataset_opt["name"]
        if name not in self._pairs_cache:
            self._pairs_cache[name] = load_pairs(Path(gt), Path(lq))
        return self._pairs_cache[name]

    def _remember_outputs(self, model: Any, dataset_opt: dict[str, Any], images: list[str]) -> None:
        """The validated network's saved outputs handed to engine.evaluate, so that a ranking later in this process
        (the demo's) scores them without running that network again. Lossless PNGs of basicsr's own rounding: on
        the CPU bit for bit what evaluate_model computes (tests/test_tui_images.py); cuDNN may pick other kernels."""
        pairs = self._val_pairs(dataset_opt) if model.device.type == "cpu" else None
        saved = {Path(path).parent.name: Path(path) for path in images}
        if pairs is None or set(saved) != set(pairs.names) or not fits(sum(gt.nbytes for gt in pairs.gt)):
            return  # a large validation set's outputs would not be kept: not read either
        net = model.net_g_ema if hasattr(model, "net_g_ema") else model.net_g
        remember_outputs(model.get_bare_model(net), pairs, [read_rgb(saved[name]) for name in pairs.names],
                         model.device)

    def _raw_scores(self, model: Any, dataset_opt: dict[str, Any], psnr_settings: dict[str, Any]) -> dict[str, float]:
        """PSNR/SSIM of net_g itself (basicsr scored its EMA), by the psnr entry's settings; {} without pairs."""
        pairs = self._val_pairs(dataset_opt)
        if pairs is None:
            return {}
        with engine.models.rng_preserved():
            result = evaluate_model(model.get_bare_model(model.net_g), pairs,
                                    crop_border=psnr_settings.get("crop_border", 0),
                                    test_y_channel=bool(psnr_settings.get("test_y_channel", False)), label="net_g")
        return {"psnr": result.psnr, "ssim": result.ssim}

    def _baselines(self, dataset_opt: dict[str, Any], psnr_settings: dict[str, Any]) -> dict[str, dict[str, float]]:
        """Nearest and bicubic upscaling of the same LR images, scored the same way: the lines a model must beat.
        PSNR/SSIM by the psnr entry's settings, every other val.metrics entry (artifact figures, NIQE) by its own.
        Computed once per validation set (they never change)."""
        name = dataset_opt["name"]
        if name not in self._baseline_cache:
            pairs = self._val_pairs(dataset_opt)
            if pairs is None:
                self._baseline_cache[name] = {}
            else:
                results = evaluate_baselines(pairs, crop_border=psnr_settings.get("crop_border", 0),
                                             test_y_channel=bool(psnr_settings.get("test_y_channel", False)))
                figures = baseline_figures(pairs, (self.opt.get("val") or {}).get("metrics") or {})
                self._baseline_cache[name] = {kind: {"psnr": r.psnr, "ssim": r.ssim, **figures.get(kind, {})}
                                              for kind, r in results.items()}
        return self._baseline_cache[name]

    def _obey(self, model: Any, data: TrainData, tb_logger: Any, health: HealthMonitor) -> Status | None:
        """Carry out the commands that arrived during the iteration; a final status ends the run."""
        if self.commands.stop_reason:
            return self._stop(model, reason=self.commands.stop_reason)
        queued = deque(self.commands.pending())
        while queued:
            cmd = queued.popleft()
            if cmd == Command.STOP:
                return self._stop(model, reason="stop command")
            if cmd == Command.PAUSE:  # the commands that came after it are the pause's to obey, in order
                outcome = self._pause(model, data, tb_logger, health, queued)
                if outcome:
                    return outcome
            self._act_now(cmd, model, data, tb_logger, health)
        return None

    def _act_now(self, cmd: str | None, model: Any, data: TrainData, tb_logger: Any, health: HealthMonitor) -> None:
        """The commands that act at once, running or paused."""
        if cmd and cmd.startswith(SET_PREFIX):
            self._apply_setting(model, cmd)
        elif cmd == Command.SAVE:
            self._save(model)
        elif cmd == Command.VALIDATE:
            self._validate(model, data, tb_logger, health)

    def _pause(self, model: Any, data: TrainData, tb_logger: Any, health: HealthMonitor,
               queued: deque[str]) -> Status | None:
        self.set_status(PAUSED)
        while True:
            if self.commands.stop_reason:
                return self._stop(model, reason=self.commands.stop_reason)
            cmd = queued.popleft() if queued else self.commands.wait(0.5)
            if cmd == Command.RESUME:
                self.set_status(RUNNING)
                return None
            if cmd == Command.STOP:
                return self._stop(model, reason="stop command")
            self._act_now(cmd, model, data, tb_logger, health)

    def _apply_setting(self, model: Any, cmd: str) -> None:
        """`set key=value` (checked by the control server), logged as a set event: a replay shows when and what."""
        setting = parse_setting(cmd)
        previous = engine.models.apply_setting(model, setting.key, setting.value)
        self.events.emit(SetEvent(key=setting.key, value=setting.value, previous=previous, iter=self.current_iter))
        get_root_logger().info(f"set {setting.key}={setting.value:g} (was {previous:g}) at iteration "
                               f"{self.current_iter}")

    def _stop(self, model: Any, *, reason: str, save: bool = True, hint: str | None = None) -> Status:
        """A stop the user asked for ends 'stopped'; one a problem forced (hint given) ends 'failed', resumable
        from the newest checkpoint all the same."""
        self.set_status(STOPPING, reason=reason)
        if save:
            self._save(model)
        if hint is None:
            self.set_status(STOPPED, reason=reason, resumable_from=self._saved_iter)
            return STOPPED
        self.set_status(FAILED, error=reason, hint=hint, resumable_from=self._saved_iter)
        return FAILED

    def _finish(self, model: Any, data: TrainData, tb_logger: Any, health: HealthMonitor) -> Status:
        self._save(model)
        model.save(epoch=-1, current_iter=-1)
        if self.opt.get("val") and self.current_iter % int(self.opt["val"]["val_freq"]) != 0:
            self._validate(model, data, tb_logger, health)
        if tb_logger:
            tb_logger.close()
        self.set_status(FINISHED)
        return FINISHED


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "not installed"


def versions() -> dict[str, str]:
    found = {name: _version(name) for name in ("torch", "basicsr", "realesrgan", "srcockpit")}
    return {**found, "cuda": str(torch.version.cuda)}


def copy_options_file(source: Path, experiments_root: Path) -> None:
    """basicsr's habit: the options YAML, as written, in the experiment folder (experiments/NAME/FILE.yml).

    A resume from the run's own kept copy (cockpit/options.yml) adds nothing."""
    if source.resolve().is_relative_to(experiments_root.resolve()):
        return
    experiments_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = experiments_root / source.name
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(source.read_bytes())
    os.chmod(target, 0o600)  # a file there from an earlier start keeps its mode through O_CREAT
