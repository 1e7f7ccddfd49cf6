"""basicsr/Real-ESRGAN option files, unchanged: load, override, check, resolve as basicsr's parse_options does.

basicsr's own parse_options reads sys.argv; the engine needs the same resolution from arguments it
was given, so the resolution steps are mirrored here (same keys, same paths, same debug tweaks).

Before launch the options are checked (design.md section 5), without torch (the CLI imports this
module before it starts an engine): the declared schema, unknown keys (a likely typo gets a
suggestion) and the registered network/model/dataset/loss types (engine.options_check), then what
needs files: datasets (engine.data.meta_info), milestones vs total_iter, the pretrained file. The
engine repeats the check with what only it knows: the GPUs it sees, and whether the pretrained
weights load into the network (engine.options_weights). Every problem names the file, the line,
the key and a fix, all problems of a file at once; the checks read a copy, basicsr gets the dict
as written.
"""

from __future__ import annotations

import copy
import random
import zipfile
from pathlib import Path
from typing import Any

import yaml

from engine.options_check import check_structure
from engine.options_registry import registered
from engine.options_schema import NAME_HINT, NAME_MAX, name_problem
from engine.options_yaml import Report, key_lines, load_yaml, read_yaml
from engine.protocol import UserError

__all__ = ["MODEL_SUBSTITUTES", "apply_override", "check", "check_pretrained", "key_lines", "load_options",
           "read_yaml", "registered", "resolve"]

# The engine swaps Real-ESRGAN's CUDA-only models for CPU-safe subclasses (engine/models.py).
MODEL_SUBSTITUTES = {
    "RealESRGANModel": "CockpitRealESRGANModel",
    "RealESRNetModel": "CockpitRealESRNetModel",
}
SECTIONS = ("datasets", "network_g", "path", "train", "logger")


def _dotted(entry: str) -> str:
    return entry.split("=", 1)[0].strip().replace(":", ".")


def apply_override(opt: dict[str, Any], entry: str) -> None:
    """`train.total_iter=1000`: the value is parsed as YAML, so numbers and lists keep their types."""
    if "=" not in entry:
        raise UserError(f"bad override {entry!r}", "write KEY.PATH=VALUE, e.g. train.total_iter=1000")
    dotted, raw = _dotted(entry), entry.split("=", 1)[1]
    keys = dotted.split(".")
    if not all(keys):
        raise UserError(f"override {dotted!r}: an empty key", "write KEY.PATH=VALUE, e.g. train.total_iter=1000")
    node = opt
    for key in keys[:-1]:
        if node.get(key) is None and node is opt and key == "srcockpit":
            node[key] = {}  # the srcockpit: speed section is optional; --set srcockpit.usm=separable adds it
        if not isinstance(node.get(key), dict):
            raise UserError(f"override {dotted!r}: no section {key!r} in the options",
                            "check the key's spelling and section (see the options file)")
        node = node[key]
    try:
        node[keys[-1]] = load_yaml(raw)
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        raise UserError(f"override {entry!r}: the value is not valid YAML ({str(error)[:120]})",
                        "quote it: --set 'KEY=\"text\"'") from None


def resolve(opt: dict[str, Any], *, root: Path, debug: bool, auto_resume: bool, num_gpu: int) -> dict[str, Any]:
    """Fill in what basicsr's parse_options adds for training (paths, dist, seed, phases)."""
    from engine.dist import torchrun_env  # no torch: the CLI checks options before launch

    problem = name_problem(opt.get("name"))
    if problem:  # every path of the run is built from the name: none may leave experiments/
        raise UserError(f"name: {problem}", NAME_HINT)
    launched = torchrun_env()  # several ranks under torchrun (engine/dist.py), else one process
    opt["dist"] = launched is not None
    opt["rank"], opt["world_size"] = (launched.rank, launched.world_size) if launched else (0, 1)
    if opt.get("manual_seed") is None:
        opt["manual_seed"] = random.randint(1, 10000)
    opt["auto_resume"] = auto_resume
    opt["is_train"] = True
    if debug and not opt["name"].startswith("debug"):
        opt["name"] = "debug_" + opt["name"][:NAME_MAX - len("debug_")]
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
    _set_run_paths(opt, root / "experiments" / opt["name"])
    if "debug" in opt["name"]:
        if opt.get("val"):
            opt["val"]["val_freq"] = 8
        opt["logger"]["print_freq"] = 1
        opt["logger"]["save_checkpoint_freq"] = 8
    opt["root_path"] = str(root)
    return opt


def _set_run_paths(opt: dict[str, Any], experiments_root: Path) -> None:
    opt["path"].update(
        experiments_root=str(experiments_root),
        models=str(experiments_root / "models"),
        training_states=str(experiments_root / "training_states"),
        log=str(experiments_root),
        visualization=str(experiments_root / "visualization"),
    )


def load_options(path: Path, *, root: Path, overrides: list[str] = (), debug: bool = False,
                 auto_resume: bool = False, num_gpu: int | None = None) -> dict[str, Any]:
    """Read, override, check and resolve an option file; finds what would otherwise fail deep in basicsr.

    num_gpu: the CUDA GPUs torch sees, given by the engine (which then also loads the pretrained
    weights to compare them with the network); None before launch, where `num_gpu: auto` means 0.
    """
    opt = read_yaml(path)
    for entry in overrides:
        try:
            apply_override(opt, entry)
        except UserError as error:
            raise UserError(f"{path} (--set {_dotted(entry)}): {error.message}", error.hint) from None
    report = Report(path, key_lines(path), {_dotted(entry) for entry in overrides})
    check_structure(opt, report)
    if num_gpu is not None:
        check_gpus(opt, num_gpu, report)
    usable = usable_copy(opt, report)
    if usable is None:
        report.raise_problems()
    try:  # the file checks need resolved options; what the schema refused is left out of them
        resolved = resolve(usable, root=root, debug=debug, auto_resume=auto_resume, num_gpu=num_gpu or 0)
    except (UserError, TypeError, AttributeError, KeyError, ValueError) as error:
        report.raise_problems()
        raise UserError(f"{path}: cannot read these options ({error.__class__.__name__}: {error})",
                        "compare its layout with options/tiny_cpu.yml") from None
    check(resolved, path, report, deep=num_gpu is not None)
    return resolved


def check_gpus(opt: dict[str, Any], num_gpu: int, report: Report) -> None:
    """An explicit num_gpu the engine cannot have (basicsr would pick CUDA devices that are not there)."""
    asked = opt.get("num_gpu")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > num_gpu:
        report.add("num_gpu", f"asks for {asked} GPUs, but torch sees {num_gpu} CUDA GPU{'s' * (num_gpu != 1)} "
                   "on this machine", "num_gpu: auto (the GPUs there are, or the CPU), or --gpus N with torchrun")


def usable_copy(opt: dict[str, Any], report: Report) -> dict[str, Any] | None:
    """A copy of opt without the keys that have a problem (so the file checks meet only valid values);
    None when too little is left to resolve (a section that is not a mapping, a bad name)."""
    if name_problem(opt.get("name")) or not all(isinstance(opt.get(key), dict) for key in SECTIONS):
        return None
    usable = copy.deepcopy(opt)
    for key in report.bad_keys():
        *parents, last = key.split(".")
        node: Any = usable
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    if not all(isinstance(usable.get(key), dict) for key in SECTIONS):
        return None
    for phase, dataset in list(usable["datasets"].items()):
        if not isinstance(phase, str) or not isinstance(dataset, dict):
            usable["datasets"].pop(phase)
    return usable


# ---- what needs files ------------------------------------------------------------------------------

def check_pretrained(value: Any) -> str | None:
    """Why a weights file cannot be loaded, read without torch; None when it looks whole.

    torch.save writes a zip archive: a torn copy lacks its central directory, a damaged one fails
    its CRCs. An older (pickle) file is only checked for its first bytes.
    """
    path = Path(str(value))
    if not path.is_file():
        return f"file not found: {value}"
    size = path.stat().st_size
    if size == 0:
        return f"{value} is empty (0 bytes): a copy or download that did not finish"
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            return f"{value} is truncated or damaged ({size} bytes; {error})"
        if bad:
            return f"{value} is damaged: {bad} fails its checksum"
        if not any(name.endswith("data.pkl") for name in names):
            return f"{value} is a zip file but not a PyTorch checkpoint"
        return None
    if head[:1] == b"\x80":  # a legacy torch.save pickle: torch itself will judge the rest
        return None
    return f"{value} is not a PyTorch checkpoint (starts with {head!r})"



def _is_count(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


def check(opt: dict[str, Any], path: Path, report: Report | None = None, *, deep: bool = False) -> None:
    """The launch-time checks of design.md section 5 that need files (and, with deep, torch); raises them all.

    A dataset phase or the path section that already has a problem is not checked further: its
    values may be of any type, and the problem to fix first is already reported."""
    report = report or Report(path, key_lines(path))
    bad = report.bad_keys()
    _note_milestones(opt)
    _check_folders(opt, report, {p for p in opt["datasets"] if any(k.startswith(f"datasets.{p}") for k in bad)})
    if not any(k == "path" or k.startswith("path.") for k in bad):
        _check_weights(opt, report, deep=deep)
    report.raise_problems()


def _note_milestones(opt: dict[str, Any]) -> None:
    total = opt["train"].get("total_iter")
    scheduler = opt["train"].get("scheduler")
    milestones = scheduler.get("milestones") if isinstance(scheduler, dict) else None
    if _is_count(total) and isinstance(milestones, list) and any(_is_count(m) and m > total for m in milestones):
        opt.setdefault("notes", []).append(f"scheduler milestones {milestones} lie beyond total_iter {int(total)}: "
                                           "the learning rate never decays")


def _check_folders(opt: dict[str, Any], report: Report, skip: set[str]) -> None:
    from engine.data.meta_info import check_datasets  # PIL; loaded only when a launch is checked

    datasets = {phase: dataset for phase, dataset in opt["datasets"].items() if phase not in skip}
    missing_folders = set()
    for phase, dataset in datasets.items():
        for key in ("dataroot_gt", "dataroot_lq"):
            folder = dataset.get(key)
            if folder is not None and not _resolve(folder, opt).is_dir():
                missing_folders.add(phase)
                report.add(f"datasets.{phase}.{key}", f"folder not found: {folder}",
                           "build one with `srcockpit data ...` or fix the path")
    if not datasets:
        return
    # meta_info, listed images, LQ partners, image sizes vs gt_size: engine.data.meta_info knows them
    for dataset in check_datasets({**opt, "datasets": datasets}, base=Path(opt["root_path"])):
        if dataset.phase not in missing_folders:
            for problem, hint in zip(dataset.problems, dataset.hints, strict=True):
                report.add(f"datasets.{dataset.phase}", f"({dataset.name}) {problem}", hint)


def _check_weights(opt: dict[str, Any], report: Report, *, deep: bool) -> None:
    path_opt = opt["path"]
    for section, key in (("network_g", "pretrain_network_g"), ("network_d", "pretrain_network_d")):
        pretrained = path_opt.get(key)
        if not pretrained or path_opt.get("resume_state"):
            continue
        file = _resolve(pretrained, opt)
        problem = check_pretrained(file)
        if problem is None and deep and isinstance(opt.get(section), dict):
            from engine.options_weights import network_problem  # torch: the engine has it loaded already

            suffix = section[-1]
            problem = network_problem(file, opt[section], section=section, param_key=path_opt.get(f"param_key_{suffix}",
                                      "params"), strict=path_opt.get(f"strict_load_{suffix}", True) is not False)
        if problem:
            report.add(f"path.{key}", problem.replace(str(file), str(pretrained)),
                       "make it with `srcockpit weights transfer`, or copy it again")
    resume = path_opt.get("resume_state")
    if resume and resume != "auto" and not _resolve(resume, opt).is_file():
        report.add("path.resume_state", f"file not found: {resume}",
                   "give a training_states/<iter>.state file, or use --auto-resume")


def _resolve(value: Any, opt: dict[str, Any]) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(opt.get("root_path", ".")) / path
