"""The torch-free checks of an options dict: the declared schema, the registered classes, the sizes.

engine.options_schema declares the sections; here a pydantic error becomes a Problem at its dotted
key (so engine.options_yaml.Report names the line), with a hint and, for an unknown key, the
closest known one. Sections whose keys depend on a registered class (network_g/network_d, the
losses) are validated against a model built from that class's constructor (engine.options_registry).
Nothing here mutates the options: basicsr gets them as written.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from engine.options_registry import registered
from engine.options_schema import SCHEDULERS, DatasetsSection, Number, Options, Positive, Section, fail
from engine.options_yaml import Problem, Report, short

TYPE_TEXT = {"int_type": "must be a whole number", "float_type": "must be a number",
             "bool_type": "must be true or false", "string_type": "must be text",
             "model_type": "must be a section (a mapping of keys)",
             "dict_type": "must be a section (a mapping of keys)",
             "list_type": "must be a list", "literal_error": "must be one of"}
TYPE_HINTS = {"int_type": "write a whole number, e.g. 4", "float_type": "write a number, e.g. 0.0001",
              "bool_type": "write true or false", "string_type": "write a path or name",
              "model_type": "indent its keys under it", "dict_type": "indent its keys under it",
              "list_type": "write a list in brackets, e.g. [0.9, 0.99]"}
# Constructor arguments basicsr checks only when it builds the class (an assert deep in the run).
LITERALS = {"reduction": ("none", "mean", "sum"), "act_type": ("relu", "prelu", "leakyrelu"),
            "gan_type": ("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")}
NETWORK_MAX = 4096  # channels, convolutions, blocks: more would only exhaust the memory when the network is built


def _buildable(value: int) -> int:
    if value > NETWORK_MAX:
        raise fail(f"{value} is implausibly large (at most {NETWORK_MAX}): building it would exhaust the memory",
                   "the options/*.yml files use 16 to 64")
    return value


KIND_TYPES: dict[str, Any] = {"count": Annotated[Positive, AfterValidator(_buildable)], "int": int, "float": Number,
                              "bool": bool, "str": str}
PAIRED = ("PairedImageDataset", "RealESRGANPairedDataset")


def close(word: Any, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.75)
    return f"; did you mean {match[0]!r}?" if match else ""


# ---- pydantic errors as problems ------------------------------------------------------------------

def problems_of(model: type[BaseModel], data: Any, prefix: tuple[Any, ...] = (), owner: str = "") -> list[Problem]:
    """Every error of `data` against `model`, as problems at their dotted keys (prefix + location)."""
    try:
        model.model_validate(data)
    except ValidationError as error:
        return [_problem(model, one, prefix, owner) for one in error.errors(include_url=False)]
    return []


def _unwrap(annotation: Any) -> Any:
    """The type inside Optional[...] / X | None / Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation


def _target(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model holding loc's last key, and that key's field (None for an unknown key)."""
    holder: type[BaseModel] | None = model
    info: FieldInfo | None = None
    rest = list(loc)
    while rest and holder is not None:
        part = rest.pop(0)
        info = holder.model_fields.get(part) if isinstance(part, str) else None
        if info is None or not rest:
            return holder, info
        inner = _unwrap(info.annotation)
        if typing.get_origin(inner) in (dict, list):
            rest.pop(0)  # the phase name or list index
            inner = _unwrap(typing.get_args(inner)[-1])
            if not rest:
                return None, None  # the item itself: its field's example is for the whole mapping or list
        holder = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    return holder, info


def _known(holder: type[BaseModel] | None) -> list[str]:
    return [info.alias or name for name, info in holder.model_fields.items()] if holder else []


def _problem(model: type[BaseModel], error: Any, prefix: tuple[Any, ...], owner: str) -> Problem:
    loc = tuple(error["loc"])
    key = ".".join(str(part) for part in prefix + loc if part != "[key]")
    holder, info = _target(model, loc)
    example = f"e.g. {info.examples[0]}" if info and info.examples else ""
    kind, value, name = error["type"], error.get("input"), loc[-1] if loc else ""
    if kind == "srcockpit":
        return Problem(key, error["ctx"]["message"], example or error["ctx"]["hint"])
    if kind == "extra_forbidden":
        return _unknown(key, name, _known(holder), owner)
    if kind == "missing":
        text = f"{owner} needs {name!r}" if owner else ("missing top-level key " + repr(name) if len(prefix + loc) == 1
                                                        else "is missing")
        return Problem(key, text, example or f"add {key}")
    if kind == "invalid_key" or loc[-1:] == ("[key]",):
        return Problem(key, f"a key must be text, got {short(value)}", "quote it, or fix the indentation")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return Problem(key, f"must be one of {expected} (got {short(value)}){close(value, _literals(info))}",
                       example or f"one of {expected}")
    text = TYPE_TEXT.get(kind, error["msg"].lower())
    return Problem(key, _type_text(text, kind, value), example or TYPE_HINTS.get(kind, "see options/tiny_cpu.yml"))


def _literals(info: FieldInfo | None) -> tuple[str, ...]:
    return typing.get_args(_unwrap(info.annotation)) if info else ()


def _type_text(text: str, kind: str, value: Any) -> str:
    if isinstance(value, str) and kind in ("int_type", "float_type") and _looks_numeric(value):
        if kind == "float_type":
            return (f"'{value}' is read as text, not a number (YAML 1.1 needs a dot: write {_as_float(value)} or "
                    f"!!float {value})")
        return f"{text}: '{value}' is text (quoted); write it without quotes"
    return f"{text} (got {'nothing: the key is empty' if value is None else short(value)})"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_float(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if exponent else text


def _unknown(key: str, name: Any, known: list[str], owner: str) -> Problem:
    suggestion = close(name, known)
    if owner:
        text = f"{owner} has no parameter {str(name)!r} (it would crash when built)"
        takes = ", ".join(sorted(set(known) - {"type"})) or "nothing"
        return Problem(key, text + suggestion, f"{owner} takes: {takes}")
    text = f"unknown key {str(name)!r}" + (suggestion or " (basicsr would ignore it)")
    match = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.75)
    return Problem(key, text, f"rename it to {match[0]}" if match else "remove it, or check its spelling and section")


# ---- sections whose keys a registered class decides -----------------------------------------------

@functools.cache
def class_model(registry: str, name: str) -> type[BaseModel] | None:
    """A strict model of `name`'s constructor: its parameters, the required ones, each default's type."""
    found = registered(registry).get(name)
    if found is None or found.params is None:
        return None
    fields: dict[str, Any] = {"type_": (str, Field(alias="type"))}
    for index, param in enumerate(sorted(found.params)):
        kind: Any = Literal[LITERALS[param]] if param in LITERALS else KIND_TYPES.get(found.kinds.get(param), Any)
        required = param in found.required
        fields[f"p{index}"] = (kind if required else kind | None, Field(... if required else None, alias=param))
    return create_model(f"{name}Options", __base__=Section, **fields)


def check_registered(value: Any, registry: str, key: str, report: Report, what: str = "type") -> bool:
    """Whether value names a class of registry (or the sources cannot be read); a problem if not."""
    known = registered(registry)
    if not known or (isinstance(value, str) and value in known):
        return True
    names = sorted(k for k in known if not k.startswith("Cockpit"))
    report.add(key, f"{what} {short(value)} is not registered in basicsr" + ("" if what == "loss" else
                                                                           " or realesrgan") + close(value, known),
               f"one of: {', '.join(names[:20])}" + ("..." if len(names) > 20 else ""))
    return False


def check_class_section(section: Any, registry: str, key: str, report: Report, what: str = "type") -> None:
    """network_g, network_d, a loss: a mapping with a registered type and that class's parameters."""
    if not isinstance(section, dict):
        return  # the schema says it is not a mapping
    if "type" not in section:
        report.add(f"{key}.type", "missing", "e.g. type: SRVGGNetCompact")
        return
    if not check_registered(section["type"], registry, f"{key}.type", report, what):
        return
    model = class_model(registry, section["type"])
    if model is not None:
        report.problems += problems_of(model, section, tuple(key.split(".")), owner=section["type"])


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_networks(opt: dict[str, Any], report: Report) -> None:
    check_class_section(opt.get("network_g"), "ARCH_REGISTRY", "network_g", report)
    if opt.get("network_d") is not None:
        check_class_section(opt["network_d"], "ARCH_REGISTRY", "network_d", report)
    net, scale = opt.get("network_g"), opt.get("scale")
    upscale = net.get("upscale") if isinstance(net, dict) else None
    if _positive_int(upscale) and _positive_int(scale) and upscale != scale:
        report.add("network_g.upscale", f"is {upscale} but scale is {scale}: outputs would not match the GT size",
                   f"set network_g.upscale: {scale} (or scale: {upscale})")


def check_train(train: Any, report: Report) -> None:
    """The losses and the scheduler of train (the rest of it is in the schema)."""
    if not isinstance(train, dict):
        return
    for key in ("pixel_opt", "perceptual_opt", "gan_opt", "ldl_opt", "feature_matching_opt"):
        if train.get(key) is not None:
            check_class_section(train[key], "LOSS_REGISTRY", f"train.{key}", report, what="loss")
    scheduler = train.get("scheduler")
    if not isinstance(scheduler, dict):
        return
    kind = scheduler.get("type")
    if not isinstance(kind, str) or kind not in SCHEDULERS:
        report.add("train.scheduler.type", f"scheduler {short(kind)} is not one basicsr 1.4.2 builds"
                   + close(kind, SCHEDULERS), f"one of: {', '.join(SCHEDULERS)}")
        return
    report.problems += problems_of(SCHEDULERS[kind], scheduler, ("train", "scheduler"), owner=kind)


# ---- datasets, sizes -------------------------------------------------------------------------------

def _needs(dataset: dict[str, Any], phase: str) -> tuple[str, ...]:
    """Keys basicsr reads with opt[key] (a KeyError, or None used as a path, without them)."""
    kind = dataset.get("type")
    needed: tuple[str, ...] = ("io_backend",)
    if kind in PAIRED:
        needed += ("dataroot_gt", "dataroot_lq")
    elif kind == "RealESRGANDataset":
        needed += ("dataroot_gt",)
    if phase.startswith("train"):
        needed += ("batch_size_per_gpu", "num_worker_per_gpu")
        if kind in PAIRED:
            needed += ("gt_size", "use_hflip", "use_rot")
    return needed


def check_datasets(datasets: Any, report: Report) -> None:
    if not isinstance(datasets, dict):
        return
    if not datasets:
        report.add("datasets", "has no phases", "add datasets.train (see options/tiny_cpu.yml)")
    elif "train" not in datasets:
        report.add("datasets.train", "is missing", "add a datasets.train section")
    for phase, dataset in datasets.items():
        phase = str(phase)
        if "_" in phase and phase.split("_")[0] not in ("train", "val", "test"):
            report.add(f"datasets.{phase}", "a phase must be train, val or val_<name>", "rename it, e.g. val_2")
        if not isinstance(dataset, dict):
            continue
        if "type" in dataset and check_registered(dataset["type"], "DATASET_REGISTRY", f"datasets.{phase}.type",
                                                  report):
            for key in _needs(dataset, phase):
                if dataset.get(key) is None:
                    report.add(f"datasets.{phase}.{key}", f"{dataset['type']} needs {key!r}"
                               + (" (it is null)" if key in dataset else ""), _NEED_HINTS.get(key, f"add {key}"))


_NEED_HINTS = {"io_backend": "io_backend: {type: disk}", "dataroot_gt": "dataroot_gt: <folder of GT images>",
               "dataroot_lq": "dataroot_lq: <folder of LQ images>", "gt_size": "e.g. gt_size: 256",
               "use_hflip": "use_hflip: true", "use_rot": "use_rot: false", "batch_size_per_gpu": "e.g. 4",
               "num_worker_per_gpu": "e.g. 4 (0: load in the training process)"}


def check_sizes(opt: dict[str, Any], report: Report) -> None:
    """Batch vs queue, crop vs scale."""
    datasets = opt.get("datasets") if isinstance(opt.get("datasets"), dict) else {}
    train = datasets.get("train")
    batch = train.get("batch_size_per_gpu") if isinstance(train, dict) else None
    queue = opt.get("queue_size")
    if _positive_int(batch) and _positive_int(queue) and queue % batch:
        report.add("queue_size", f"queue_size {queue} is not a multiple of batch_size_per_gpu {batch}",
                   f"use queue_size: {max(batch, queue - queue % batch)}")
    scale = opt.get("scale")
    for phase, dataset in datasets.items():
        gt_size = dataset.get("gt_size") if isinstance(dataset, dict) else None
        if str(phase).startswith("train") and _positive_int(gt_size) and _positive_int(scale) and gt_size % scale:
            report.add(f"datasets.{phase}.gt_size", f"{gt_size} is not a multiple of scale {scale}: the LQ crop "
                       "would not match", f"gt_size: {gt_size - gt_size % scale or scale}")


def check_dataset_types(opt: dict[str, Any], report: Report) -> None:
    """`srcockpit data check`: only the datasets section, each phase's keys of their declared type."""
    report.problems += problems_of(DatasetsSection, opt)
    datasets = opt.get("datasets")
    for phase, dataset in datasets.items() if isinstance(datasets, dict) else ():
        if isinstance(dataset, dict) and "type" in dataset:
            check_registered(dataset["type"], "DATASET_REGISTRY", f"datasets.{phase}.type", report)


def check_structure(opt: dict[str, Any], report: Report) -> None:
    """Types, unknown keys, registered names and sizes; needs no file but the options (and no torch)."""
    report.problems += problems_of(Options, opt)
    if isinstance(opt.get("model_type"), str):
        check_registered(opt["model_type"], "MODEL_REGISTRY", "model_type", report)
    check_networks(opt, report)
    check_train(opt.get("train"), report)
    check_datasets(opt.get("datasets"), report)
    check_sizes(opt, report)
