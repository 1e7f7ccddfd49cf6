"""What basicsr's registries hold, read from the sources with ast (no import, so no torch).

Each class decorated with @<REGISTRY>.register() in basicsr, realesrgan, engine/models.py and
engine/perceptual.py gives its constructor's parameters, which ones are required, and the type of each
default (an int default asks for a whole number, a float one for a number, and so on): the options
schema checks a network or loss section against them.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

FOLDERS = {"ARCH_REGISTRY": "archs", "MODEL_REGISTRY": "models", "DATASET_REGISTRY": "data",
           "LOSS_REGISTRY": "losses"}
_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class Registered:
    """A class a basicsr registry knows: its constructor's parameters (None: any) and their default's kind."""

    name: str
    params: frozenset[str] | None
    required: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # a top-level package: found without importing it (or torch)
    return Path(spec.origin).parent if spec and spec.origin else None


def _sources(registry: str) -> list[Path]:
    files: list[Path] = []
    for package in ("basicsr", "realesrgan"):
        base = _package_dir(package)
        if base and (base / FOLDERS[registry]).is_dir():
            files += sorted((base / FOLDERS[registry]).glob("*.py"))
    files += [Path(__file__).with_name(name) for name in ("models.py", "perceptual.py")]
    return files


@functools.cache
def registered(registry: str) -> dict[str, Registered]:
    """Classes decorated with @<registry>.register() in basicsr, realesrgan and engine, read with ast."""
    found: dict[str, Registered] = {}
    for file in _sources(registry):
        try:
            text = file.read_text()
            if registry not in text:
                continue
            tree = ast.parse(text, str(file))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        # registered classes sit at a module's top level: only that is walked (every `srcockpit train` pays this)
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(_is_register(d, registry) for d in node.decorator_list):
                found[node.name] = _constructor(node)
    return found


def _is_register(decorator: ast.expr, registry: str) -> bool:
    call = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(call, ast.Attribute) and call.attr == "register" and isinstance(call.value, ast.Name)
            and call.value.id == registry)


def _kind(default: ast.expr | None) -> str | None:
    """'count' (a positive int), 'int', 'float', 'bool', 'str' for a literal default; None (anything) otherwise."""
    if isinstance(default, ast.UnaryOp) and isinstance(default.op, ast.USub):
        return "float" if isinstance(default.operand, ast.Constant) and type(default.operand.value) is float else None
    if not isinstance(default, ast.Constant) or default.value is None:
        return None
    if type(default.value) is int and default.value > 0:
        return "count"  # a channel, block or scale count: 0 or less would not build
    return _KINDS.get(type(default.value))


def _constructor(node: ast.ClassDef) -> Registered:
    init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    if init is None or init.args.kwarg is not None:
        return Registered(node.name, None)
    args = init.args.posonlyargs + init.args.args
    positional = [a.arg for a in args[1:]]
    names = positional + [a.arg for a in init.args.kwonlyargs]
    required = positional[:len(positional) - len(init.args.defaults)]
    required += [a.arg for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True) if d is None]
    defaults = dict(zip(positional[len(positional) - len(init.args.defaults):], init.args.defaults, strict=True))
    defaults.update((a.arg, d) for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True) if d)
    kinds = {name: kind for name, default in defaults.items() if (kind := _kind(default))}
    return Registered(node.name, frozenset(names), tuple(required), kinds)
