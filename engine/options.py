"""basicsr/Real-ESRGAN option files, unchanged: load, override, resolve as basicsr's parse_options does.

basicsr's own parse_options reads sys.argv; the engine needs the same resolution from arguments it
was given, so the resolution steps are mirrored here (same keys, same paths, same debug tweaks).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from engine.protocol import UserError

# The engine swaps Real-ESRGAN's CUDA-only models for CPU-safe subclasses (engine/models.py).
MODEL_SUBSTITUTES = {
    "RealESRGANModel": "CockpitRealESRGANModel",
    "RealESRNetModel": "CockpitRealESRNetModel",
}


def read_yaml(path: Path) -> dict[str, Any]:
    """The option file as a dict; a clear error with the line for a YAML mistake."""
    if not path.is_file():
        raise UserError(f"options file not found: {path}", "give the path of a basicsr/Real-ESRGAN YAML file")
    try:
        opt = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UserError(f"{where}: YAML error: {error.problem}", "fix the indentation or quoting there") from error
    except yaml.YAMLError as error:
        raise UserError(f"{path}: YAML error: {error}") from error
    if not isinstance(opt, dict):
        raise UserError(f"{path}: expected a mapping of options at the top level")
    for key in ("name", "model_type", "datasets", "network_g", "path", "train", "logger"):
        if key not in opt:
            raise UserError(f"{path}: missing top-level key '{key}'", "start from options/*.yml")
    return opt


def apply_override(opt: dict[str, Any], entry: str) -> None:
    """`train.total_iter=1000`: the value is parsed as YAML, so numbers and lists keep their types."""
    if "=" not in entry:
        raise UserError(f"bad override {entry!r}", "write KEY.PATH=VALUE, e.g. train.total_iter=1000")
    dotted, raw = entry.split("=", 1)
    keys = dotted.strip().replace(":", ".").split(".")
    node = opt
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise UserError(f"override {dotted!r}: no section {key!r} in the options")
        node = node[key]
    node[keys[-1]] = yaml.safe_load(raw)


def resolve(opt: dict[str, Any], *, root: Path, debug: bool, auto_resume: bool, num_gpu: int) -> dict[str, Any]:
    """Fill in what basicsr's parse_options adds for training (paths, dist, seed, phases)."""
    opt["dist"] = False
    opt["rank"], opt["world_size"] = 0, 1
    if opt.get("manual_seed") is None:
        opt["manual_seed"] = random.randint(1, 10000)
    opt["auto_resume"] = auto_resume
    opt["is_train"] = True
    if debug and not opt["name"].startswith("debug"):
        opt["name"] = "debug_" + opt["name"]
    if opt.get("num_gpu", "auto") == "auto":
        opt["num_gpu"] = num_gpu
    for phase, dataset in opt["datasets"].items():
        dataset["phase"] = phase.split("_")[0]
        if "scale" in opt:
            dataset["scale"] = opt["scale"]
        for key in ("dataroot_gt", "dataroot_lq", "meta_info"):
            if dataset.get(key) is not None:
                dataset[key] = str(Path(dataset[key]).expanduser())
    for key, value in opt["path"].items():
        if value is not None and ("resume_state" in key or "pretrain_network" in key):
            opt["path"][key] = str(Path(value).expanduser())
    experiments_root = root / "experiments" / opt["name"]
    opt["path"].update(
        experiments_root=str(experiments_root),
        models=str(experiments_root / "models"),
        training_states=str(experiments_root / "training_states"),
        log=str(experiments_root),
        visualization=str(experiments_root / "visualization"),
    )
    if "debug" in opt["name"]:
        if "val" in opt:
            opt["val"]["val_freq"] = 8
        opt["logger"]["print_freq"] = 1
        opt["logger"]["save_checkpoint_freq"] = 8
    opt["root_path"] = str(root)
    return opt


def load_options(path: Path, *, root: Path, overrides: list[str] = (), debug: bool = False,
                 auto_resume: bool = False, num_gpu: int = 0) -> dict[str, Any]:
    """Read, override and resolve an option file; checks what would otherwise fail deep in basicsr."""
    opt = read_yaml(path)
    for entry in overrides:
        apply_override(opt, entry)
    opt = resolve(opt, root=root, debug=debug, auto_resume=auto_resume, num_gpu=num_gpu)
    check(opt, path)
    return opt


def check(opt: dict[str, Any], path: Path) -> None:
    """The launch-time checks of design.md section 5 that need no torch."""
    train = opt["datasets"].get("train")
    if train is None:
        raise UserError(f"{path}: datasets.train is missing")
    batch = train.get("batch_size_per_gpu")
    queue = opt.get("queue_size")
    if queue is not None and batch and queue % batch:
        raise UserError(f"{path}: queue_size {queue} is not a multiple of batch_size_per_gpu {batch}",
                        f"use queue_size: {max(batch, queue - queue % batch)}")
    for phase, dataset in opt["datasets"].items():
        for key in ("dataroot_gt", "dataroot_lq"):
            folder = dataset.get(key)
            if folder is not None and not Path(folder).is_dir():
                raise UserError(f"{path}: datasets.{phase}.{key}: folder not found: {folder}",
                                "build one with `srcockpit data ...` or fix the path")
        meta = dataset.get("meta_info")
        if meta is not None and not Path(meta).is_file():
            raise UserError(f"{path}: datasets.{phase}.meta_info: file not found: {meta}",
                            "write it with `srcockpit data meta-info`")
    pretrained = opt["path"].get("pretrain_network_g")
    if pretrained and not opt["path"].get("resume_state") and not Path(pretrained).is_file():
        raise UserError(f"{path}: path.pretrain_network_g: file not found: {pretrained}",
                        "make it with `srcockpit weights transfer`")
    total = int(opt["train"].get("total_iter", 0))
    milestones = (opt["train"].get("scheduler") or {}).get("milestones") or []
    if total <= 0:
        raise UserError(f"{path}: train.total_iter must be positive, got {total}")
    if any(int(m) > total for m in milestones):
        opt.setdefault("notes", []).append(f"scheduler milestones {milestones} lie beyond total_iter {total}: "
                                           "the learning rate never decays")
