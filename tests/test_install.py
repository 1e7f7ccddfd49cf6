"""The install works: basicsr and realesrgan import on today's torchvision through engine/compat.py; the
two rooms hold (the cockpit's modules start without torch, basicsr or OpenCV)."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "basicsr", "cv2")


def test_basicsr_and_realesrgan_import_and_register_models():
    from engine.compat import load_basicsr

    load_basicsr()
    import basicsr
    import realesrgan  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY

    assert basicsr.__version__ == "1.4.2"
    assert "RealESRGANModel" in MODEL_REGISTRY
    assert "SRVGGNetCompact" in ARCH_REGISTRY
    assert "UNetDiscriminatorSN" in ARCH_REGISTRY


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from tui.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'basicsr', 'cv2', 'textual'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_engine_never_imports_textual_and_tui_never_imports_torch():
    code = (
        "import sys, importlib, pkgutil, engine, tui\n"
        "import engine.protocol, engine.events, engine.control, tui.cli\n"
        "print('textual' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def tui_modules() -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in (ROOT / "tui").rglob("*.py"))


def heavy_imports_of(module: str) -> str:
    """What importing `module` alone, in a fresh interpreter, brings of torch, basicsr and cv2."""
    code = (f"import importlib, sys\nimportlib.import_module({module!r})\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    return result.stdout.strip() if result.returncode == 0 else f"exit {result.returncode}: {result.stderr[-300:]}"


def test_every_tui_module_starts_without_torch_basicsr_or_cv2():
    modules = tui_modules()
    assert {"tui.app", "tui.jobs", "tui.launcher", "tui.screens.dashboard", "tui.widgets.job_progress"} <= set(modules)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        found = dict(zip(modules, pool.map(heavy_imports_of, modules), strict=True))
    assert {module: heavy for module, heavy in found.items() if heavy != "[]"} == {}


def test_help_lists_only_command_modules_that_exist():
    import pkgutil

    import tui.cli
    import tui.commands

    found = {info.name for info in pkgutil.iter_modules(tui.commands.__path__)}
    assert set(tui.cli.PREFERRED_ORDER) <= found
    assert tui.cli.command_modules() == [*tui.cli.PREFERRED_ORDER, *sorted(found - set(tui.cli.PREFERRED_ORDER))]
