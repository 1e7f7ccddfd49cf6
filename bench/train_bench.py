"""Training speed: srcockpit's engine against a plain basicsr loop, and each opt-in speed-up against plain.

The plain loop is basicsr.train.train_pipeline's inner loop built from basicsr's own pieces
(build_dataset, EnlargedSampler, build_dataloader, build_model, CPU/CUDA prefetcher, feed_data,
optimize_parameters, MessageLogger at print_freq). Both sides build the cockpit model subclasses
(engine/models.py): the stock RealESRGANModel calls .cuda() in its constructor and cannot run on a
CPU; on CUDA the subclasses run the same code as the stock model.

Iterations per second are steady-state: timed from the end of iteration `warmup` to the end of the
last iteration (the engine's times come from its own iter events, seen by an event listener).
"""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Profile, Row, bench_options, clone, interleave, paired_ratio, write_options


def _basicsr():
    from engine.compat import load_basicsr

    load_basicsr()
    import engine.models  # noqa: F401  (registers the cockpit models)


def plain_loop(opt: dict[str, Any], on_iter: Callable[[int], None]) -> None:
    """basicsr's train loop, nothing added: the reference every ratio is taken against."""
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
            on_iter(current_iter)
            if current_iter >= total:
                return
            train_data = prefetcher.next()


class Clock:
    """End time of each iteration; rate() is the steady-state iterations per second."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.times: dict[int, float] = {}

    def __call__(self, iteration: int) -> None:
        self.times[iteration] = time.perf_counter()

    def rate(self, warmup: int) -> float:
        seen = sorted(i for i in self.times if i >= warmup)
        if len(seen) < 2:
            raise RuntimeError(f"too few timed iterations ({seen})")
        first, last = seen[0], seen[-1]
        return (last - first) / (self.times[last] - self.times[first])


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def time_plain(opt: dict[str, Any], profile: Profile) -> float:
    clock = Clock(profile.device)
    plain_loop(opt, lambda i: (_sync(profile.device), clock(i)))
    gc.collect()
    return clock.rate(profile.warmup)


def time_engine(options_file: Path, root: Path, profile: Profile) -> float:
    """The real engine (events, telemetry thread, control socket, health checks), in this process."""
    from engine.launch import run_engine
    from engine.protocol import ITER

    clock = Clock(profile.device)

    def listener(event: dict[str, Any]) -> None:
        if event.get("type") == ITER:
            clock(event["iter"])  # on CUDA the engine's loss.item() has synchronised already

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        status = run_engine(options_file, root=root, listener=listener)
    finally:
        for sig, handler in handlers.items():  # run_engine installs its own; the bench keeps Ctrl-C
            signal.signal(sig, handler)
    if status != "finished":
        raise RuntimeError(f"the engine ended {status}")
    gc.collect()
    return clock.rate(profile.warmup)


def engine_overhead(profile: Profile, folder: Path, photos: Path, meta: Path, log: Callable[[str], None]) -> Row:
    total = profile.warmup + profile.timed
    opt_plain = bench_options(profile, photos, meta, name="bench_plain", total_iter=total)
    options_file = write_options(bench_options(profile, photos, meta, name="bench_engine", total_iter=total), folder)
    from engine.options import load_options

    resolved = load_options(write_options(opt_plain, folder), root=folder, num_gpu=opt_plain["num_gpu"])
    rounds = profile.rounds + (0 if profile.quick else 1)
    found = interleave({"engine": lambda: time_engine(options_file, folder, profile),
                        "plain": lambda: time_plain(clone(resolved), profile)}, rounds, log)
    ratio = paired_ratio(found["engine"], found["plain"], higher_is_faster=True)
    return Row("1 engine", "srcockpit engine vs plain basicsr loop (it/s)", ratio, "plain basicsr loop",
               f"engine {_median(found['engine']):.3f} it/s, plain {_median(found['plain']):.3f} it/s; "
               f"{rounds} rounds x {profile.timed} timed iterations",
               [e / p for e, p in zip(found["engine"], found["plain"], strict=True)],
               "goal >= 0.99; events, telemetry thread, control socket and health checks on")


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
                            total_iter=total, speed=speed, dataset=dataset)
        resolved[name] = load_options(write_options(opt, folder), root=folder, num_gpu=opt["num_gpu"])
    if "compile" in resolved:  # compile time is not training speed: warm inductor's cache once, untimed
        warm = clone(resolved["compile"])
        warm["train"]["total_iter"] = 2
        started = time.perf_counter()
        plain_loop(warm, lambda i: None)
        log(f"  compile warm-up (untimed): {time.perf_counter() - started:.1f} s")
    found = interleave({name: (lambda o=opt: time_plain(clone(o), profile)) for name, opt in resolved.items()},
                       profile.rounds, log)
    rows = []
    for name, (_, _, note) in variants.items():
        if name == "plain":
            continue
        ratio = paired_ratio(found[name], found["plain"], higher_is_faster=True)
        rows.append(Row("2 lever", name, ratio, "plain basicsr loop",
                        f"{_median(found[name]):.3f} vs {_median(found['plain']):.3f} it/s",
                        [v / p for v, p in zip(found[name], found["plain"], strict=True)], note))
    return rows + skipped
