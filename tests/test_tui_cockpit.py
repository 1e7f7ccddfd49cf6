"""Pilot tests of the cockpit's truthful panels (issue 19): the log panel reads basicsr's train log, every
PSNR/SSIM says which weights were scored, the header and ETA stay right on attach and while paused, and
per-process figures (the engine and its workers, not the machine)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import frozen_clock, settle_dashboard, sync, wait_for

from tests.conftest import TINY_RUN
from tui.app import make_app
from tui.tailer import BasicsrLog

SIZE = (160, 48)


def log_text(app) -> list[str]:
    return [line.text for line in app.screen.query_one("#log").lines]


@sync
async def test_log_panel_shows_basicsr_train_log_of_an_in_process_run(run_copy):
    """A run trained in-process (as the demo's stages are) has no cockpit/engine.log: the panel reads its
    train_NAME_*.log."""
    assert not (run_copy / "cockpit" / "engine.log").exists()
    app = make_app(run_copy.parent.parent, TINY_RUN, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle_dashboard(pilot)
        assert await wait_for(pilot, lambda: any("Model [CockpitRealESRGANModel] is created" in t
                                                 for t in log_text(app)))
        assert any("[epoch:" in message and "l_g_pix" in message for _, _, message in app.screen.state.logs)


def test_python_warnings_land_in_basicsr_log_with_their_level(tmp_path):
    from engine.loop import fresh_root_logger

    log_file = tmp_path / "train_warn_20260101_000000.log"
    # an earlier test may have left logging's capture on while pytest put warnings.showwarning back
    logging.captureWarnings(False)
    fresh_root_logger(log_file)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a torch-like warning", UserWarning, stacklevel=1)
    follower = BasicsrLog(tmp_path)
    lines = follower.poll()
    assert any(level == "warning" and "a torch-like warning" in message for _, level, message in lines), lines
