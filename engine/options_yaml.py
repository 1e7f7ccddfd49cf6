"""An options file as YAML: the mapping, the line of every key, and a report of problems located there.

A leaf module (yaml and engine.protocol only): engine.options, engine.options_check and
engine.data.meta_info all read option files through it.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.protocol import UserError

# A value quoted in a message: short, and finite for a YAML alias bomb (shared nodes, exponential when walked).
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple = 2, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 60, 60, 40


def short(value: Any) -> str:
    return _SHORT.repr(value)


# libyaml's parser where PyYAML was built with it: the same documents, 5-10x faster than the pure-Python one,
# and every command that reads an options file parses it twice (values, then key lines)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """yaml.safe_load with LOADER."""
    return yaml.load(text, Loader=LOADER)


def read_yaml(path: Path) -> dict[str, Any]:
    """The option file as a dict; a clear error with the line for a YAML mistake."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an options file", "give the path of a basicsr/Real-ESRGAN YAML file")
    if path.exists() and not path.is_file():  # a device or a pipe: reading it could block forever
        raise UserError(f"{path} is not a regular file", "give the path of a basicsr/Real-ESRGAN YAML file")
    if not path.is_file():
        raise UserError(f"options file not found: {path}", "give the path of a basicsr/Real-ESRGAN YAML file")
    try:
        opt = load_yaml(path.read_text())
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text file ({error.reason})", "give a basicsr/Real-ESRGAN YAML file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror})", "check its permissions") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UserError(f"{where}: YAML error: {error.problem}", "fix the indentation or quoting there") from None
    except (yaml.YAMLError, ValueError, RecursionError) as error:  # ValueError: a date or number YAML cannot build
        raise UserError(f"{path}: YAML error: {short(error)}", "fix the YAML there") from None
    if not isinstance(opt, dict):
        raise UserError(f"{path}: expected a mapping of options at the top level (key: value lines), got "
                        f"{type(opt).__name__}", "start from options/*.yml")
    return opt


def key_lines(path: Path) -> dict[str, int]:
    """'datasets.train.gt_size' -> its 1-based line in the file (yaml.compose keeps the marks)."""
    try:
        root = yaml.compose(path.read_text(), Loader=LOADER)
    except (yaml.YAMLError, OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    lines: dict[str, int] = {}
    seen: set[int] = set()

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode) or id(node) in seen:
            return  # an alias is the same node again: walked once, or a bomb would take forever
        seen.add(id(node))
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
        """The file and line of key, or the --set that wrote it (or a section above it)."""
        parts = key.split(".")
        prefixes = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        overridden = next((prefix for prefix in prefixes if prefix in self.overridden), None)
        if overridden:  # a --set replaced this key or a section above it: the file's lines are not its
            return f"{self.path} (--set {overridden})"
        line = next((self.lines[prefix] for prefix in prefixes if prefix in self.lines), None)
        return f"{self.path}:{line}" if line else str(self.path)  # a missing key: at its section's line

    def add(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(key, message, hint))

    def bad_keys(self) -> set[str]:
        return {problem.key for problem in self.problems}

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
