"""No import cycles among engine/ and tui/ modules: every import (module-level and inside functions) is read
with ast, and the graph of project modules must have no strongly connected component of two or more."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "tui")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules one module imports: `from a import b` counts a.b when that is a module, else a
    (a package's __init__ runs first anyway, so naming a submodule through it is no import of it)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    known = set(files)
    return {name: imported(ast.parse(path.read_text()), name, path.name == "__init__.py", known)
            for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "tui.jobs" in graph["tui.widgets.job_progress"]  # imported inside methods only


def test_no_import_cycle_in_engine_or_tui():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_screens_and_widgets_never_import_the_command_line():
    graph = import_graph()
    offenders = {name: sorted(t for t in targets if t.startswith("tui.commands") or t == "tui.cli")
                 for name, targets in graph.items() if name.startswith(("tui.screens", "tui.widgets"))}
    assert not {name: found for name, found in offenders.items() if found}


def test_the_cockpit_starts_runs_without_the_options_schema():
    """The cockpit's modules (run list, dashboard, job screens, launcher) load neither engine.options nor
    pydantic: the options are checked when a run starts (inside launcher.start_run) or by the engine."""
    modules = ["tui.app", "tui.launcher", "tui.jobs", "tui.screens.run_list", "tui.screens.dashboard",
               "tui.screens.transfer", "tui.screens.ranking", "tui.screens.export", "tui.screens.subset_wizard"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\n" \
           "print(sorted(m for m in ('engine.options', 'pydantic', 'cv2', 'PIL', 'torch') if m in sys.modules))"
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
