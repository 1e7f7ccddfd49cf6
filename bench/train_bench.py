"""Training speed: srcockpit's engine against a plain basicsr loop, and each opt-in speed-up against plain.

The plain loop is basicsr.train.train_pipeline's inner loop built from basicsr's own pieces
(build_dataset, EnlargedSampler, build_dataloader, build_model, CPU/CUDA prefetcher, feed_data,
optimize_parameters, MessageLogger at print_freq). Both sides build the cockpit model subclasses
(engine/models.py): the stock RealESRGANModel calls .cuda() in its constructor and cannot run on a
CPU; on CUDA the subclasses run the same code as the stock model.

Contenders run in lockstep, one iteration each in turn (A B A B ...), each with its own random-number
streams (so each draws the crops and degradations it would draw alone): a shared machine's load, which
swings by several times here within a minute, then falls on every contender alike. Iterations per second
are steady-state (the first `warmup` iterations are not timed).
"""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import Profile, Row, bench_options, clone, write_options


def _basicsr():
    from engine.compat import load_basicsr

    load_basicsr()
    import engine.models  # noqa: F401  (registers the cockpit models)


def plain_steps(opt: dict[str, Any]) -> Iterator[int]:
    """basicsr's train loop, nothing added: the reference every ratio is taken against. A generator:
    the first next() builds everything, each next() after it runs one iteration and yields its number."""
    _basicsr()
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
    from basicsr.models import build_model
    from basicsr.utils import MessageLogger
    from basicsr.utils.misc import set_random_seed

    from engine.options import MODEL_SUBSTITUTES
    from engine.speed import apply_speed_options

    set_random_seed(opt["manual_seed"])
    train_opt = opt["datasets"]["train"]
    train_set = build_dataset(train_opt)
    sampler = EnlargedSampler(train_set, 1, 0, train_opt.get("dataset_enlarge_ratio", 1))
    loader = build_dataloader(train_set, train_opt, num_gpu=opt["num_gpu"], dist=False, sampler=sampler,
                              seed=opt["manual_seed"])
    model = build_model(dict(opt, model_type=MODEL_SUBSTITUTES.get(opt["model_type"], opt["model_type"])))
    model = apply_speed_options(model, opt)  # a no-op without a srcockpit: section (the plain run)
    msg_logger = MessageLogger(opt, 0, None)
    prefetcher = CUDAPrefetcher(loader, opt) if train_opt.get("prefetch_mode") == "cuda" else CPUPrefetcher(loader)
    total, print_freq, current_iter = int(opt["train"]["total_iter"]), opt["logger"]["print_freq"], 0
    yield 0
    for epoch in range(10 ** 6):
        sampler.set_epoch(epoch)
        prefetcher.reset()
        train_data = prefetcher.next()
        while train_data is not None:
            current_iter += 1
            model.update_learning_rate(current_iter, warmup_iter=opt["train"].get("warmup_iter", -1))
            model.feed_data(train_data)
            model.optimize_parameters(current_iter)
            if current_iter % print_freq == 0:
                msg_logger({"epoch": epoch, "iter": current_iter, "lrs": model.get_current_learning_rate(),
                            "time": 0.0, "data_time": 0.0, **model.get_current_log()})
            yield current_iter
            if current_iter >= total:
                return
            train_data = prefetcher.next()


class Stream:
    """One contender's own random-number streams (python, numpy, torch), swapped in around each of its
    steps: contenders stepped in turn each draw what they would draw alone (same crops, degradations)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    @contextmanager
    def active(self) -> Iterator[None]:
        from engine.models import restore_rng_states, rng_states

        outer = rng_states()
        if self.state is not None:
            restore_rng_states(self.state)
        try:
            yield
        finally:
            self.state = rng_states()
            restore_rng_states(outer)


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


class Contender:
    """A plain loop (with or without speed options) that can be stepped one timed iteration at a time."""

    def __init__(self, opt: dict[str, Any], device: str) -> None:
        self.device, self.stream, self.times = device, Stream(), []
        with self.stream.active():
            self.steps = plain_steps(opt)
            next(self.steps)

    def step(self) -> float:
        with self.stream.active():
            started = time.perf_counter()
            next(self.steps)
            _sync(self.device)
            seconds = time.perf_counter() - started
        self.times.append(seconds)
        return seconds

    def close(self) -> None:
        self.steps.close()


PLAN_FLOOR = 2.0  # it/s, finetune-plan.md: an RTX 3090 at batch 16, gt_size 256


def engine_overhead(profile: Profile, folder: Path, photos: Path, meta: Path,
                    log: Callable[[str], None]) -> list[Row]:
    """The engine and the plain loop in lockstep: after each engine iteration (its iter event) the plain
    loop runs one iteration, so both see the same machine at the same moment, iteration by iteration.
    The engine's time for iteration k runs from the end of the plain step after k-1 to its iter event for
    k: its health checks, control commands, events and logging are all inside."""
    from engine.launch import run_engine
    from engine.options import load_options
    from engine.protocol import Event, IterEvent

    total = profile.warmup + profile.timed * (2 if profile.quick else 3)
    opt_plain = bench_options(profile, photos, meta, name="bench_plain", total_iter=total + 1)
    options_file = write_options(bench_options(profile, photos, meta, name="bench_engine", total_iter=total,
                                               for_engine=True), folder)
    plain = Contender(load_options(write_options(opt_plain, folder), root=folder, num_gpu=opt_plain["num_gpu"]),
                      profile.device)
    engine_times: list[float] = []
    last = [0.0]

    def listener(event: Event) -> None:
        if not isinstance(event, IterEvent):
            return
        arrived = time.perf_counter()  # on CUDA the engine's loss .item() has synchronised already
        if event.iter > 1:
            engine_times.append(arrived - last[0])
        seconds = plain.step()
        if event.iter > 1:
            log(f"  iter {event.iter}: engine {engine_times[-1]:.3f} s, plain {seconds:.3f} s")
        last[0] = time.perf_counter()

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    if profile.device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    try:
        status = run_engine(options_file, root=folder, listener=listener, vgg_weights=profile.vgg)
    finally:
        for sig, handler in handlers.items():  # run_engine installs its own; the bench keeps Ctrl-C
            signal.signal(sig, handler)
        plain.close()
    if status != "finished":
        raise RuntimeError(f"the engine ended {status}")
    # engine_times[j] is iteration j + 2; plain.times[j] is iteration j + 1
    engine = engine_times[profile.warmup - 1:]
    reference = plain.times[profile.warmup:profile.warmup + len(engine)]
    pairs = [p / e for p, e in zip(reference, engine, strict=False)]
    gc.collect()
    rate = len(engine) / sum(engine)
    overhead = Row("1 engine", "srcockpit engine vs plain basicsr loop (it/s)", _median(pairs), "plain basicsr loop",
                   f"median of {len(pairs)} lockstep iterations; ratio of totals {sum(reference) / sum(engine):.3f}; "
                   f"engine {rate:.3f} it/s, plain {len(reference) / sum(reference):.3f} it/s; {profile.vgg_label}",
                   pairs, "goal >= 0.99; events every iteration, telemetry thread, control socket, health checks on")
    return [overhead, floor_row(profile, rate)]


def floor_row(profile: Profile, rate: float) -> Row:
    """The engine's it/s against the plan's floor, and the peak memory of the run (both sides in one process)."""
    import resource

    import torch

    sizes = f"batch {profile.batch}, gt_size {profile.gt_size}, {profile.vgg_label}"
    if profile.device == "cuda":
        peak = f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB allocated " \
               f"({torch.cuda.max_memory_reserved() / 2 ** 30:.2f} GiB reserved), engine and plain loop together"
        return Row("1 engine", f"engine it/s on {torch.cuda.get_device_name(0)}", rate / PLAN_FLOOR,
                   f"the plan's floor, {PLAN_FLOOR:g} it/s (RTX 3090)", f"{rate:.2f} it/s at {sizes}; {peak}")
    peak = f"peak RSS of the bench process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB"
    return Row("1 engine", "engine it/s on this CPU", None, f"the plan's floor, {PLAN_FLOOR:g} it/s (RTX 3090)",
               f"{rate:.2f} it/s at {sizes}; {peak}",
               note="the floor is for a GPU at the plan's sizes: no ratio on a CPU")


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def compile_works(device: str) -> str | None:
    """None when torch.compile runs here; else why not (no C++ compiler, inductor error...)."""
    import shutil

    import torch

    if device == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        return "no C++ compiler for torch.compile's CPU backend (inductor)"
    try:
        fn = torch.compile(lambda x: torch.nn.functional.relu(x) * 2)
        fn(torch.randn(4, device=device))
    except Exception as error:  # any backend failure means "not here"
        return f"torch.compile fails here: {error.__class__.__name__}: {str(error).splitlines()[0][:120]}"
    return None


def levers(profile: Profile, folder: Path, photos: Path, meta: Path, sub: tuple[Path, Path] | None,
           log: Callable[[str], None], *, with_compile: bool = True) -> list[Row]:
    """Each opt-in speed-up alone against the plain loop, in one round-robin (plain, a, b, ..., plain, ...)."""
    from engine.options import load_options

    total = profile.warmup + profile.timed
    cpu = profile.device == "cpu"
    variants: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None, str]] = {
        "plain": (None, None, ""),
        "channels_last": ({"channels_last": True}, None, ""),
        "autocast=bf16": ({"autocast": "bf16"}, None, ""),
        "usm=separable": ({"usm": "separable"}, None, ""),
        f"crop_pad_size={profile.crop_pad_size}": ({"crop_pad_size": profile.crop_pad_size}, None, ""),
        "loader: workers 2, persistent": (None, {"num_worker_per_gpu": max(2, profile.workers),
                                                 "persistent_workers": True}, ""),
    }
    if not cpu:
        variants["autocast=fp16"] = ({"autocast": "fp16"}, None, "no GradScaler: see engine/speed.py")
    skipped: list[Row] = []
    if with_compile:
        why = compile_works(profile.device)
        if why is None:
            variants["compile"] = ({"compile": True}, None, "first iterations pay the compile (outside the timing)")
        else:
            skipped.append(Row("2 lever", "compile", None, "plain", note=why))
    else:
        skipped.append(Row("2 lever", "compile", None, "plain", note="not measured: add --compile (its warm-up "
                           "takes minutes on a small CPU); tests/test_speed.py checks its losses"))
    if sub is not None:
        variants["pre-extracted sub-images"] = (None, {"dataroot_gt": str(sub[0]), "meta_info": str(sub[1])},
                                                "400 px windows every 200 px (chelsea, 300 px, has none)")
    variants["all of the above"] = ({"usm": "separable", "crop_pad_size": profile.crop_pad_size,
                                     "channels_last": True, **({} if cpu else {"autocast": "bf16"})},
                                    {"num_worker_per_gpu": max(2, profile.workers), "persistent_workers": True},
                                    "usm, crop, channels_last, loader" + ("" if cpu else ", bf16"))
    resolved = {}
    for name, (speed, dataset, _) in variants.items():
        opt = bench_options(profile, photos, meta, name="bench_" + "".join(c if c.isalnum() else "_" for c in name),
                            total_iter=10 ** 6, speed=speed, dataset=dataset)
        resolved[name] = load_options(write_options(opt, folder), root=folder, num_gpu=opt["num_gpu"])
    warmup = profile.warmup + (1 if "compile" in resolved else 0)
    contenders = {name: Contender(clone(opt), profile.device) for name, opt in resolved.items()}
    names = list(contenders)
    try:
        for index in range(warmup + total - profile.warmup):
            order = names if index % 2 == 0 else names[::-1]  # no contender always first or last
            line = []
            for name in order:
                line.append(f"{name} {contenders[name].step():.2f}")
            log(f"  iter {index + 1}: " + ", ".join(line) + " s")
    finally:
        for contender in contenders.values():
            contender.close()
    timed = {name: contender.times[warmup:] for name, contender in contenders.items()}
    rows = []
    plain = timed["plain"]
    for name, (_, _, note) in variants.items():
        if name == "plain":
            continue
        pairs = [p / v for p, v in zip(plain, timed[name], strict=True)]
        rows.append(Row("2 lever", name, _median(pairs), "plain basicsr loop",
                        f"{len(timed[name]) / sum(timed[name]):.3f} vs {len(plain) / sum(plain):.3f} it/s; median of "
                        f"{len(pairs)} lockstep iterations, ratio of totals {sum(plain) / sum(timed[name]):.2f}",
                        pairs, note))
    gc.collect()
    return rows + skipped
