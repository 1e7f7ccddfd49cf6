"""Snapshots of the run list and a dashboard (dark and light), replaying the recorded fixture runs with
a frozen clock, UTC times and no NVML (the cockpit reads GPU figures from the log only).

Regenerate with `pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs first.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import FIXTURE_ROOT, frozen_clock, settle_dashboard, settle_run_list

from tui.app import make_app
from tui.config import Config

SIZE = (150, 46)


@pytest.fixture(autouse=True)
def _stable(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCOCKPIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(FIXTURE_ROOT)  # the run list shows the folder as given: "experiments"
    yield
    monkeypatch.undo()
    time.tzset()


def app_for(run: str | None, theme: str):
    return make_app(Path("."), run, config=Config(theme=theme), clock=frozen_clock, save_settings=False)


def test_run_list_dark(snap_compare):
    async def ready(pilot):
        await settle_run_list(pilot)

    assert snap_compare(app_for(None, "srcockpit-dark"), terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize("theme", ["srcockpit-dark", "srcockpit-light"])
def test_dashboard(snap_compare, theme):
    async def ready(pilot):
        await settle_dashboard(pilot)

    assert snap_compare(app_for("finetune_x2_gan", theme), terminal_size=SIZE, run_before=ready)


def test_failed_run_dashboard(snap_compare):
    async def ready(pilot):
        await settle_dashboard(pilot)

    assert snap_compare(app_for("oom_at_256", "srcockpit-dark"), terminal_size=SIZE, run_before=ready)
