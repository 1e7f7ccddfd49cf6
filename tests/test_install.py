"""The install works: basicsr and realesrgan import on today's torchvision through engine/compat.py."""

import subprocess
import sys


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
