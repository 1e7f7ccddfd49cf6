"""Input that a look at the file system or a file's first bytes refuses is refused before torch is imported.

Each case runs the real command line (tui.cli.main) in a fresh interpreter, which then says whether torch
got imported; the refusal itself (exit 2, the message) is what tests/test_bad_inputs.py asserts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = "import sys; from tui.cli import main; code = main(sys.argv[1:]); print(code, 'torch' in sys.modules)"


def _cases(folder: Path) -> dict[str, list[str]]:
    (folder / "t.pth").write_text("these are not weights\n")
    (folder / "m.param").write_text("hello\nworld\n")
    (folder / "hr").mkdir()
    (folder / "hr" / "a.png").write_bytes(b"")
    return {
        "export-text": ["export", "t.pth", "--calib", "builtin", "--no-htp", "-o", "exp"],
        "rank-no-run": ["rank", "t.pth", "--original", "none"],
        "import-ncnn-text": ["weights", "import-ncnn", "--model", "m.param", "-o", "out.pth"],
        "valset-zero-byte": ["data", "valset", "hr", "-o", "set", "-q"],
        "report-text": ["report", "--original", "none", "--transferred", "t.pth", "--finetuned", "none",
                        "--valset", "hr:hr", "--timing-runs", "0", "-o", "rep"],
    }


@pytest.mark.parametrize("name", ["export-text", "rank-no-run", "import-ncnn-text", "valset-zero-byte",
                                  "report-text"])
def test_cheap_refusal_imports_no_torch(name: str, tmp_path: Path) -> None:
    argv = _cases(tmp_path)[name]
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.split() == ["2", "False"], f"{result.stdout}\n{result.stderr}"
