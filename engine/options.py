"""basicsr/Real-ESRGAN option files, unchanged: load, override, check, resolve as basicsr's parse_options does.

basicsr's own parse_options reads sys.argv; the engine needs the same resolution from arguments it
was given, so the resolution steps are mirrored here (same keys, same paths, same debug tweaks).

Before launch the options are checked (design.md section 5), without torch (the CLI imports this
module before it starts an engine): types, unknown keys (a likely typo gets a suggestion), the
registered network/model/dataset/loss types (read from basicsr's and realesrgan's sources, not
imported), queue_size % batch, datasets (engine.data.meta_info.require_datasets), milestones vs
total_iter, the pretrained file. Every problem names the file, the line, the key and a fix.
"""

from __future__ import annotations

import ast
import copy
import difflib
import functools
import importlib.util
import random
import zipfile
from dataclasses import dataclass, field
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
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text file ({error.reason})", "give a basicsr/Real-ESRGAN YAML file") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UserError(f"{where}: YAML error: {error.problem}", "fix the indentation or quoting there") from error
    except yaml.YAMLError as error:
        raise UserError(f"{path}: YAML error: {error}", "fix the YAML there") from error
    if not isinstance(opt, dict):
        raise UserError(f"{path}: expected a mapping of options at the top level (key: value lines), got "
                        f"{type(opt).__name__}", "start from options/*.yml")
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
        if node.get(key) is None and node is opt and key == "srcockpit":
            node[key] = {}  # the srcockpit: speed section is optional; --set srcockpit.usm=separable adds it
        if not isinstance(node.get(key), dict):
            raise UserError(f"override {dotted!r}: no section {key!r} in the options")
        node = node[key]
    try:
        node[keys[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise UserError(f"override {entry!r}: the value is not valid YAML ({error})",
                        "quote it: --set 'KEY=\"text\"'") from None


NAME_MAX = 200


def name_problem(name: Any) -> str | None:
    """Why `name` cannot be a folder under experiments/ (it is one path component, nothing else), or None."""
    if not isinstance(name, str):
        return f"must be text, got {name!r}"
    if name in ("", ".", ".."):
        return f"{name!r} is not a folder name: the run would write into (or move) experiments/ itself or above it"
    if "/" in name or "\\" in name or "\0" in name:
        return f"{name!r} holds a '/', '\\' or NUL: the run must stay one folder under experiments/"
    if name.startswith("-") or name.strip() != name:
        return f"{name!r} starts with '-' or has spaces at an end (a command line would misread it)"
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long, at most {NAME_MAX}"
    return None


NAME_HINT = "write one plain folder name, e.g. name: my_run (letters, digits, '_', '-', '.')"


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
    experiments_root = root / "experiments" / opt["name"]
    opt["path"].update(
        experiments_root=str(experiments_root),
        models=str(experiments_root / "models"),
        training_states=str(experiments_root / "training_states"),
        log=str(experiments_root),
        visualization=str(experiments_root / "visualization"),
    )
    if "debug" in opt["name"]:
        if opt.get("val"):
            opt["val"]["val_freq"] = 8
        opt["logger"]["print_freq"] = 1
        opt["logger"]["save_checkpoint_freq"] = 8
    opt["root_path"] = str(root)
    return opt


def load_options(path: Path, *, root: Path, overrides: list[str] = (), debug: bool = False,
                 auto_resume: bool = False, num_gpu: int = 0) -> dict[str, Any]:
    """Read, override, check and resolve an option file; finds what would otherwise fail deep in basicsr."""
    opt = read_yaml(path)
    for entry in overrides:
        apply_override(opt, entry)
    report = Report(path, key_lines(path), {entry.split("=", 1)[0].strip().replace(":", ".") for entry in overrides})
    check_structure(opt, report)
    try:  # the file checks need resolved options; a shape too broken to resolve is already reported
        resolved = resolve(copy.deepcopy(opt), root=root, debug=debug, auto_resume=auto_resume, num_gpu=num_gpu)
    except UserError:
        report.raise_problems()
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as error:
        report.raise_problems()
        raise UserError(f"{path}: cannot read these options ({error.__class__.__name__}: {error})",
                        "compare its layout with options/tiny_cpu.yml") from None
    check(resolved, path, report)
    return resolved


# ---- where a key is written ------------------------------------------------------------------------

def key_lines(path: Path) -> dict[str, int]:
    """'datasets.train.gt_size' -> its 1-based line in the file (yaml.compose keeps the marks)."""
    try:
        root = yaml.compose(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return {}
    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines.setdefault(dotted, key_node.start_mark.line + 1)
            walk(value_node, dotted + ".")

    walk(root, "")
    return lines


@dataclass
class Problem:
    key: str
    message: str
    hint: str = ""


@dataclass
class Report:
    """The problems found in one options file, each located at its key's line (or its --set)."""

    path: Path
    lines: dict[str, int] = field(default_factory=dict)
    overridden: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def where(self, key: str) -> str:
        if key in self.overridden:
            return f"{self.path} (--set {key})"
        parts = key.split(".")
        while parts:  # a missing key is reported at its section's line
            line = self.lines.get(".".join(parts))
            if line and ".".join(parts) not in self.overridden:
                return f"{self.path}:{line}"
            parts.pop()
        return str(self.path)

    def add(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(key, message, hint))

    def raise_problems(self) -> None:
        if not self.problems:
            return
        if len(self.problems) == 1:
            one = self.problems[0]
            raise UserError(f"{self.where(one.key)}: {one.key}: {one.message}", one.hint)
        text = [f"{len(self.problems)} problems in {self.path}:"]
        for one in self.problems:
            text.append(f"  {self.where(one.key)}: {one.key}: {one.message}")
            if one.hint:
                text.append(f"      fix: {one.hint}")
        raise UserError("\n".join(text), "fix them all, then start again")


# ---- what basicsr and realesrgan accept ---------------------------------------------------------------

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Keys basicsr 1.4.2 / realesrgan 0.3.0 read (grep of opt[...] / opt.get(...) in their models, data and
# train code), plus the ones parse_options adds.
TOP_KEYS = _words("""
name model_type scale num_gpu manual_seed is_train dist rank world_size auto_resume root_path debug
datasets network_g network_d path train val logger dist_params find_unused_parameters
gt_size queue_size high_order_degradation l1_gt_usm percep_gt_usm gan_gt_usm gt_usm
resize_prob resize_range gaussian_noise_prob noise_range poisson_scale_range gray_noise_prob jpeg_range
second_blur_prob resize_prob2 resize_range2 gaussian_noise_prob2 noise_range2 poisson_scale_range2
gray_noise_prob2 jpeg_range2 srcockpit
""")
DATASET_KEYS = _words("""
name type phase scale dataroot_gt dataroot_lq dataroot_flow meta_info meta_info_file filename_tmpl io_backend
gt_size use_hflip use_rot use_flip color mean std use_shuffle num_worker_per_gpu batch_size_per_gpu
dataset_enlarge_ratio prefetch_mode num_prefetch_queue pin_memory persistent_workers cache_data
blur_kernel_size kernel_list kernel_prob blur_sigma betag_range betap_range sinc_prob
blur_kernel_size2 kernel_list2 kernel_prob2 blur_sigma2 betag_range2 betap_range2 sinc_prob2 final_sinc_prob
num_frame interval_list random_reverse flip_sequence test_mode padding val_partition use_duf_downsampling
""")
TRAIN_KEYS = _words("""
total_iter warmup_iter ema_decay optim_g optim_d scheduler pixel_opt perceptual_opt gan_opt ldl_opt
feature_matching_opt net_d_iters net_d_init_iters net_d_reg_every net_g_reg_every r1_reg_weight path_reg_weight
mixing_prob dcn_lr_mul fix_flow flow_lr_mul lr_flow
""")
PATH_KEYS = _words("""
pretrain_network_g param_key_g strict_load_g pretrain_network_d param_key_d strict_load_d resume_state
ignore_resume_networks experiments_root models training_states log visualization results_root
""")
LOGGER_KEYS = _words("print_freq save_checkpoint_freq use_tb_logger wandb")
VAL_KEYS = _words("val_freq save_img suffix pbar metrics num_val_samples flip_seq center_frame_only")
# srcockpit's own opt-in speed-ups (engine/speed.py); basicsr ignores this top-level section.
SRCOCKPIT_KEYS = _words("channels_last autocast compile usm crop_pad_size")
SECTIONS = {"": TOP_KEYS, "train": TRAIN_KEYS, "path": PATH_KEYS, "logger": LOGGER_KEYS, "val": VAL_KEYS,
            "srcockpit": SRCOCKPIT_KEYS}
OPTIMIZERS = ("Adam",)  # basicsr 1.4.2 BaseModel.get_optimizer knows no other
SCHEDULERS = {"MultiStepLR": {"milestones", "gamma", "restarts", "restart_weights"},
              "MultiStepRestartLR": {"milestones", "gamma", "restarts", "restart_weights"},
              "CosineAnnealingRestartLR": {"periods", "restart_weights", "eta_min"}}


@dataclass(frozen=True)
class Registered:
    """A class a basicsr registry knows: its constructor's parameters (None: any)."""

    name: str
    params: frozenset[str] | None
    required: tuple[str, ...] = ()


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # a top-level package: found without importing it (or torch)
    return Path(spec.origin).parent if spec and spec.origin else None


@functools.cache
def registered(registry: str) -> dict[str, Registered]:
    """Classes decorated with @<registry>.register() in basicsr, realesrgan and engine, read with ast."""
    folders = {"ARCH_REGISTRY": "archs", "MODEL_REGISTRY": "models", "DATASET_REGISTRY": "data",
               "LOSS_REGISTRY": "losses"}[registry]
    files: list[Path] = []
    for package in ("basicsr", "realesrgan"):
        base = _package_dir(package)
        if base and (base / folders).is_dir():
            files += sorted((base / folders).glob("*.py"))
    files.append(Path(__file__).with_name("models.py"))
    found: dict[str, Registered] = {}
    for file in files:
        try:
            tree = ast.parse(file.read_text(), str(file))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(_is_register(d, registry) for d in node.decorator_list):
                found[node.name] = _constructor(node)
    return found


def _is_register(decorator: ast.expr, registry: str) -> bool:
    call = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(call, ast.Attribute) and call.attr == "register" and isinstance(call.value, ast.Name)
            and call.value.id == registry)


def _constructor(node: ast.ClassDef) -> Registered:
    init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    if init is None or init.args.kwarg is not None:
        return Registered(node.name, None)
    args = init.args.posonlyargs + init.args.args
    names = [a.arg for a in args[1:]] + [a.arg for a in init.args.kwonlyargs]
    positional = [a.arg for a in args[1:]]
    required = positional[:len(positional) - len(init.args.defaults)]
    required += [a.arg for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True) if d is None]
    return Registered(node.name, frozenset(names), tuple(required))


def _close(word: str, choices: Any) -> str:
    match = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.75)
    return f"; did you mean {match[0]!r}?" if match else ""


# ---- the checks ----------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    """An iteration count basicsr int()s or only uses in %: 5000 or !!float 5e3."""
    return _is_int(value) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(value: Any, kind: str) -> str | None:
    """Why value is not of kind, or None."""
    if kind == "int" and not _is_int(value):
        return "must be a whole number"
    if kind == "count" and not _is_count(value):
        return "must be a whole number"
    if kind in ("number", "prob") and not _is_number(value):
        if isinstance(value, str) and _looks_numeric(value):
            return (f"'{value}' is read as text, not a number (YAML 1.1 needs a dot: write {_as_float(value)} or "
                    f"!!float {value})")
        return "must be a number"
    if kind == "prob" and not 0 <= value <= 1:
        return f"is a probability, must lie in [0, 1], got {value}"
    if kind == "bool" and not isinstance(value, bool):
        return "must be true or false"
    if kind == "str" and not isinstance(value, str):
        return "must be text"
    if kind == "dict" and not isinstance(value, dict):
        return "must be a section (a mapping of keys)"
    if kind.startswith("list") and not (isinstance(value, list) and all(_is_number(v) for v in value)):
        return "must be a list of numbers, e.g. [0.2, 0.7, 0.1]"
    if kind.startswith("list") and kind[-1].isdigit() and len(value) != int(kind[-1]):
        return f"must list {kind[-1]} numbers, got {len(value)}"
    return None


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_float(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if exponent else text


TOP_TYPES = {
    "name": "str", "model_type": "str", "scale": "int", "gt_size": "int", "queue_size": "int",
    "high_order_degradation": "bool", "l1_gt_usm": "bool", "percep_gt_usm": "bool", "gan_gt_usm": "bool",
    "resize_prob": "list3", "resize_prob2": "list3", "resize_range": "list2", "resize_range2": "list2",
    "noise_range": "list2", "noise_range2": "list2", "poisson_scale_range": "list2",
    "poisson_scale_range2": "list2", "jpeg_range": "list2", "jpeg_range2": "list2",
    "gaussian_noise_prob": "prob", "gaussian_noise_prob2": "prob", "gray_noise_prob": "prob",
    "gray_noise_prob2": "prob", "second_blur_prob": "prob",
    "datasets": "dict", "network_g": "dict", "network_d": "dict", "path": "dict", "train": "dict",
    "logger": "dict", "val": "dict",
}
DATASET_TYPES = {
    "name": "str", "type": "str", "gt_size": "int", "use_hflip": "bool", "use_rot": "bool", "use_shuffle": "bool",
    "num_worker_per_gpu": "int", "batch_size_per_gpu": "int", "dataset_enlarge_ratio": "int",
    "dataroot_gt": "str", "dataroot_lq": "str", "meta_info": "str", "meta_info_file": "str", "filename_tmpl": "str",
    "io_backend": "dict", "blur_kernel_size": "int", "blur_kernel_size2": "int", "sinc_prob": "prob",
    "sinc_prob2": "prob", "final_sinc_prob": "prob", "blur_sigma": "list2", "blur_sigma2": "list2",
    "betag_range": "list2", "betag_range2": "list2", "betap_range": "list2", "betap_range2": "list2",
    "kernel_prob": "list", "kernel_prob2": "list",
}
TRAIN_TYPES = {"total_iter": "count", "warmup_iter": "count", "ema_decay": "number", "net_d_iters": "int",
               "net_d_init_iters": "int", "optim_g": "dict", "optim_d": "dict", "scheduler": "dict"}
LOGGER_TYPES = {"print_freq": "count", "save_checkpoint_freq": "count", "use_tb_logger": "bool"}
VAL_TYPES = {"val_freq": "count", "save_img": "bool", "metrics": "dict"}
PATH_TYPES = {"pretrain_network_g": "str", "pretrain_network_d": "str", "resume_state": "str",
              "param_key_g": "str", "param_key_d": "str", "strict_load_g": "bool", "strict_load_d": "bool"}


def _check_types(section: dict[str, Any], types: dict[str, str], prefix: str, report: Report) -> None:
    for key, kind in types.items():
        value = section.get(key)
        if value is None:
            continue
        problem = _type_problem(value, kind)
        if problem:
            report.add(prefix + key, f"{problem} (got {value!r})", _type_hint(kind))


def _type_hint(kind: str) -> str:
    return {"int": "write a whole number, e.g. 4", "count": "write a whole number, e.g. 5000",
            "bool": "write true or false", "str": "write a path or name", "dict": "indent its keys under it",
            "prob": "write a number between 0 and 1", "number": "write a number, e.g. 0.0001"
            }.get(kind, "see options/finetune_small_realesr_animevideox2v3.yml for the shape")


def _check_keys(section: dict[str, Any], known: frozenset[str], prefix: str, report: Report) -> None:
    for key in section:
        if key not in known:
            match = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.75)
            report.add(prefix + str(key), f"unknown key {str(key)!r}" + (f"; did you mean {match[0]!r}?" if match
                                                                         else " (basicsr would ignore it)"),
                       f"rename it to {match[0]}" if match else "remove it, or check its spelling and section")


def _check_registered(value: Any, registry: str, key: str, report: Report, *, extra: tuple[str, ...] = ()) -> None:
    known = set(registered(registry)) | set(extra)
    if not known:
        return  # basicsr's sources are not where we can read them: the engine will say it
    if value not in known:
        report.add(key, f"type {value!r} is not registered in basicsr or realesrgan" + _close(value, known),
                   f"one of: {', '.join(sorted(k for k in known if not k.startswith('Cockpit'))[:20])}...")


def _check_network(opt: dict[str, Any], section: str, report: Report) -> None:
    net = opt.get(section)
    if not isinstance(net, dict):
        return
    kind = net.get("type")
    if not isinstance(kind, str):
        report.add(f"{section}.type", "missing", "e.g. type: SRVGGNetCompact")
        return
    archs = registered("ARCH_REGISTRY")
    if archs and kind not in archs:
        _check_registered(kind, "ARCH_REGISTRY", f"{section}.type", report)
        return
    arch = archs.get(kind)
    if arch is None or arch.params is None:
        return
    for key in net:
        if key != "type" and key not in arch.params:
            report.add(f"{section}.{key}", f"{kind} has no parameter {key!r} (it would crash when built)"
                       + _close(key, arch.params), f"{kind} takes: {', '.join(sorted(arch.params))}")
    for key in arch.required:
        if key not in net:
            report.add(f"{section}.{key}", f"{kind} needs {key!r}", f"add {section}.{key}")
    upscale, scale = net.get("upscale"), opt.get("scale")
    if section == "network_g" and _is_int(upscale) and _is_int(scale) and upscale != scale:
        report.add("network_g.upscale", f"is {upscale} but scale is {scale}: outputs would not match the GT size",
                   f"set network_g.upscale: {scale} (or scale: {upscale})")


def _check_losses(train: dict[str, Any], report: Report) -> None:
    losses = registered("LOSS_REGISTRY")
    for key, value in train.items():
        if key not in ("pixel_opt", "perceptual_opt", "gan_opt") or value is None:
            continue
        if not isinstance(value, dict):
            report.add(f"train.{key}", "must be a section with a type", "e.g. type: L1Loss")
        elif losses and value.get("type") not in losses:
            report.add(f"train.{key}.type", f"loss {value.get('type')!r} is not registered in basicsr"
                       + _close(value.get("type"), losses), f"one of: {', '.join(sorted(losses))}")


def _check_optimizers(train: dict[str, Any], report: Report) -> None:
    for key in ("optim_g", "optim_d"):
        optim = train.get(key)
        if not isinstance(optim, dict):
            continue
        if optim.get("type") not in OPTIMIZERS:
            report.add(f"train.{key}.type", f"optimizer {optim.get('type')!r}: basicsr 1.4.2 builds only Adam",
                       "type: Adam")
        lr = optim.get("lr")
        problem = _type_problem(lr, "number") if lr is not None else "is missing"
        if problem:
            report.add(f"train.{key}.lr", f"{problem} (got {lr!r})", "e.g. lr: !!float 1e-4")
        elif lr <= 0:
            report.add(f"train.{key}.lr", f"must be positive, got {lr}", "e.g. lr: !!float 1e-4")


def _check_scheduler(train: dict[str, Any], report: Report) -> None:
    scheduler = train.get("scheduler")
    if not isinstance(scheduler, dict):
        return
    kind = scheduler.get("type")
    if kind not in SCHEDULERS:
        report.add("train.scheduler.type", f"scheduler {kind!r} is not one basicsr 1.4.2 builds"
                   + _close(kind, SCHEDULERS), f"one of: {', '.join(SCHEDULERS)}")
        return
    for key in scheduler:
        if key != "type" and key not in SCHEDULERS[kind]:
            report.add(f"train.scheduler.{key}", f"{kind} takes no {key!r}" + _close(key, SCHEDULERS[kind]),
                       f"{kind} takes: {', '.join(sorted(SCHEDULERS[kind]))}")
    for key in ("milestones", "periods"):
        if key in SCHEDULERS[kind] and key in scheduler:
            values = scheduler[key]
            if not isinstance(values, list) or not all(_is_count(v) and v > 0 for v in values):
                report.add(f"train.scheduler.{key}", f"must be a list of positive iteration numbers, got {values!r}",
                           f"e.g. {key}: [100000, 200000]")
            elif key == "milestones" and values != sorted(values):
                report.add(f"train.scheduler.{key}", f"must be increasing, got {values}",
                           f"{key}: {sorted(values)}")
    if kind == "CosineAnnealingRestartLR" and "periods" not in scheduler:
        report.add("train.scheduler.periods", "CosineAnnealingRestartLR needs periods",
                   "e.g. periods: [total_iter]")
    if kind != "CosineAnnealingRestartLR" and "milestones" not in scheduler:
        report.add("train.scheduler.milestones", f"{kind} needs milestones", "e.g. milestones: [100000]")


def check_structure(opt: dict[str, Any], report: Report) -> None:
    """Types, unknown keys and registered names; needs no file but the options (and no torch)."""
    _check_keys(opt, TOP_KEYS, "", report)
    _check_types(opt, TOP_TYPES, "", report)
    problem = name_problem(opt.get("name"))
    if problem:
        report.add("name", problem, NAME_HINT)
    if opt.get("num_gpu", "auto") != "auto" and not _is_int(opt.get("num_gpu")):
        report.add("num_gpu", f"must be auto or a whole number (got {opt['num_gpu']!r})", "num_gpu: auto")
    for key in ("datasets", "network_g", "path", "train", "logger"):
        if not isinstance(opt.get(key), dict):
            return  # reported above; the rest would only repeat it
    if isinstance(opt.get("model_type"), str):
        _check_registered(opt["model_type"], "MODEL_REGISTRY", "model_type", report)
    for section, known in SECTIONS.items():
        if section and isinstance(opt.get(section), dict):
            _check_keys(opt[section], known, f"{section}.", report)
    if not opt["datasets"]:
        report.add("datasets", "has no phases", "add datasets.train (see options/tiny_cpu.yml)")
    for phase, dataset in opt["datasets"].items():
        if not isinstance(dataset, dict):
            report.add(f"datasets.{phase}", "must be a section (a mapping of keys)", "indent its keys under it")
            continue
        _check_keys(dataset, DATASET_KEYS, f"datasets.{phase}.", report)
        _check_types(dataset, DATASET_TYPES, f"datasets.{phase}.", report)
        if isinstance(dataset.get("type"), str):
            _check_registered(dataset["type"], "DATASET_REGISTRY", f"datasets.{phase}.type", report)
        elif "type" not in dataset:
            report.add(f"datasets.{phase}.type", "missing", "e.g. type: PairedImageDataset")
        if "_" in str(phase) and str(phase).split("_")[0] not in ("train", "val", "test"):
            report.add(f"datasets.{phase}", "a phase must be train, val or val_<name>", "rename it, e.g. val_2")
    if "train" not in opt["datasets"]:
        report.add("datasets.train", "is missing", "add a datasets.train section")
    _check_types(opt["train"], TRAIN_TYPES, "train.", report)
    _check_types(opt["logger"], LOGGER_TYPES, "logger.", report)
    _check_types(opt["path"], PATH_TYPES, "path.", report)
    if isinstance(opt.get("val"), dict):
        _check_types(opt["val"], VAL_TYPES, "val.", report)
    _check_network(opt, "network_g", report)
    if opt.get("network_d") is not None:
        _check_network(opt, "network_d", report)
    _check_optimizers(opt["train"], report)
    _check_scheduler(opt["train"], report)
    _check_losses(opt["train"], report)
    _check_sizes(opt, report)
    for key in ("print_freq", "save_checkpoint_freq"):
        value = opt["logger"].get(key)
        if key in opt["logger"] and _is_count(value) and value <= 0:
            report.add(f"logger.{key}", f"must be positive, got {value}", f"e.g. {key}: 100")
        elif key not in opt["logger"]:
            report.add(f"logger.{key}", "is missing", f"e.g. {key}: 100")
    if isinstance(opt.get("val"), dict):
        freq = opt["val"].get("val_freq")
        if freq is None or (_is_count(freq) and freq <= 0):
            report.add("val.val_freq", f"must be a positive number of iterations, got {freq!r}", "val_freq: 5000")


def _check_sizes(opt: dict[str, Any], report: Report) -> None:
    """Batch vs queue, crop vs scale, a positive total_iter."""
    train = opt["datasets"].get("train")
    if isinstance(train, dict):
        batch = train.get("batch_size_per_gpu")
        queue = opt.get("queue_size")
        if not _is_int(batch) or batch <= 0:
            if _is_int(batch) or batch is None:
                report.add("datasets.train.batch_size_per_gpu", f"must be a positive whole number, got {batch!r}",
                           "e.g. batch_size_per_gpu: 4")
        elif _is_int(queue) and queue % batch:
            report.add("queue_size", f"queue_size {queue} is not a multiple of batch_size_per_gpu {batch}",
                       f"use queue_size: {max(batch, queue - queue % batch)}")
    scale = opt.get("scale")
    for phase, dataset in opt["datasets"].items():
        gt_size = dataset.get("gt_size") if isinstance(dataset, dict) else None
        if str(phase).startswith("train") and _is_int(gt_size) and _is_int(scale) and scale > 0 and gt_size % scale:
            report.add(f"datasets.{phase}.gt_size", f"{gt_size} is not a multiple of scale {scale}: the LQ crop "
                       "would not match", f"gt_size: {gt_size - gt_size % scale or scale}")
    total = opt["train"].get("total_iter")
    if total is None:
        report.add("train.total_iter", "is missing", "e.g. total_iter: 100000")
    elif _is_count(total) and int(total) <= 0:
        report.add("train.total_iter", f"train.total_iter must be positive, got {total}", "e.g. total_iter: 100000")


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


def check(opt: dict[str, Any], path: Path, report: Report | None = None) -> None:
    """The launch-time checks of design.md section 5 that need files (and no torch)."""
    from engine.data.meta_info import check_datasets  # PIL; loaded only when a launch is checked

    report = report or Report(path, key_lines(path))
    if opt["datasets"].get("train") is None:
        raise UserError(f"{path}: datasets.train is missing", "add a datasets.train section")
    total = opt["train"].get("total_iter")
    milestones = (opt["train"].get("scheduler") or {}).get("milestones") or []
    if _is_count(total) and isinstance(milestones, list) and any(_is_count(m) and m > total for m in milestones):
        opt.setdefault("notes", []).append(f"scheduler milestones {milestones} lie beyond total_iter {int(total)}: "
                                           "the learning rate never decays")
    missing_folders = set()
    for phase, dataset in opt["datasets"].items():
        for key in ("dataroot_gt", "dataroot_lq"):
            folder = dataset.get(key)
            if folder is not None and not _resolve(folder, opt).is_dir():
                missing_folders.add(phase)
                report.add(f"datasets.{phase}.{key}", f"folder not found: {folder}",
                           "build one with `srcockpit data ...` or fix the path")
    # meta_info, listed images, LQ partners, image sizes vs gt_size: engine.data.meta_info knows them
    for dataset in check_datasets(opt, base=Path(opt["root_path"])):
        if dataset.phase not in missing_folders:
            for problem, hint in zip(dataset.problems, dataset.hints, strict=True):
                report.add(f"datasets.{dataset.phase}", f"({dataset.name}) {problem}", hint)
    path_opt = opt["path"]
    for key in ("pretrain_network_g", "pretrain_network_d"):
        pretrained = path_opt.get(key)
        if pretrained and not path_opt.get("resume_state"):
            problem = check_pretrained(_resolve(pretrained, opt))
            if problem:
                report.add(f"path.{key}", problem.replace(str(_resolve(pretrained, opt)), str(pretrained)),
                           "make it with `srcockpit weights transfer`, or copy it again")
    resume = path_opt.get("resume_state")
    if resume and resume != "auto" and not _resolve(resume, opt).is_file():
        report.add("path.resume_state", f"file not found: {resume}",
                   "give a training_states/<iter>.state file, or use --auto-resume")
    report.raise_problems()


def _resolve(value: Any, opt: dict[str, Any]) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(opt.get("root_path", ".")) / path
