"""The mitigation without a restart (issue 20): `set KEY=VALUE` on a live run, the out-of-memory stop, and the
notify command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import torch

import engine.models
from engine.launch import main as engine_main
from engine.launch import run_engine
from engine.mitigations import SettingError, parse_setting, suggest
from engine.protocol import RunPaths, read_events
from engine.states import load_state
from tests.conftest import TINY_OPTIONS, last_iter, live_tiny_run, srcockpit, wait_for
from tui.control_client import send_command

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))
from tui_helpers import LiveRun, settle_dashboard
from tui_helpers import wait_for as pilot_wait_for

from engine.control import ControlServer
from tui.app import make_app
from tui.screens.dialogs import ConfirmScreen


def events(paths: RunPaths, kind: str) -> list[dict]:
    return [e for e in read_events(paths.events) if e["type"] == kind]


@pytest.fixture
def live_run(run_root: Path, request: pytest.FixtureRequest):
    """A detached tiny run that trains until stopped (extra --set options from the test's parameter)."""
    with live_tiny_run(run_root, "--set", "logger.save_checkpoint_freq=1000000",
                       *getattr(request, "param", ())) as paths:
        yield paths


def test_set_lr_reaches_the_iter_events_the_log_and_a_resume(live_run: RunPaths, run_root: Path):
    sent = srcockpit("send", "tiny_cpu", "set", "lr=5e-5", cwd=run_root)
    assert "set lr=5e-05: accepted" in sent.stdout
    srcockpit("send", "tiny_cpu", "set", "gan_weight=0.05", cwd=run_root)
    wait_for(lambda: len(events(live_run, "set")) == 2, timeout=300, what="both set events")
    lr_set, gan_set = events(live_run, "set")
    assert (lr_set["key"], lr_set["value"], lr_set["previous"]) == ("lr", 5e-5, pytest.approx(1e-4))
    assert (gan_set["key"], gan_set["value"], gan_set["previous"]) == ("gan_weight", 0.05, pytest.approx(0.1))
    wait_for(lambda: last_iter(live_run) > gan_set["iter"] + 1, timeout=300, what="iterations after the sets")
    iters = events(live_run, "iter")
    assert all(e["lr"] == pytest.approx(1e-4) for e in iters if e["iter"] <= lr_set["iter"])
    assert all(e["lr"] == pytest.approx(5e-5) for e in iters if e["iter"] > lr_set["iter"])

    srcockpit("stop", "tiny_cpu", cwd=run_root)
    saved = events(live_run, "checkpoint")[-1]
    assert load_state(Path(saved["state"]))["overrides"] == {"lr": 5e-5, "gan_weight": 0.05}
    srcockpit("resume", "tiny_cpu", cwd=run_root)
    wait_for(lambda: len(events(live_run, "run")) == 2 and last_iter(live_run) > saved["iter"] + 1, timeout=300,
             what="iterations of the resumed run")
    resumed = [e for e in events(live_run, "iter") if e["iter"] > saved["iter"]]
    assert resumed and all(e["lr"] == pytest.approx(5e-5) for e in resumed)
    settings = send_command(live_run, "ping")["settings"]
    assert settings["gan_weight"] == 0.05 and settings["lr"] == pytest.approx(5e-5)


@pytest.mark.parametrize("live_run", [("--set", "model_type=RealESRNetModel")], indirect=True)
def test_a_set_the_run_cannot_take_is_refused_with_a_message(live_run: RunPaths, run_root: Path):
    for args, message in [
        (("set", "gan_weight=0.05"), "this run's model has no gan_weight: gan_weight needs a GAN loss"),
        (("set", "net_d_iters=2"), "has no net_d_iters"),
        (("set", "lr=-1e-4"), "lr=-0.0001 is out of range"),
        (("set", "lr=fast"), "lr must be a number"),
        (("set", "momentum=0.9"), "unknown setting 'momentum'; settable: lr, gan_weight"),
        (("set",), "set needs KEY=VALUE"),
        (("pause", "lr=1"), "pause takes no argument"),
    ]:
        refused = srcockpit("send", "tiny_cpu", *args, cwd=run_root, check=False)
        assert refused.returncode == 2, refused
        assert message in refused.stderr and "Traceback" not in refused.stderr
    assert "ping: accepted" in srcockpit("send", "tiny_cpu", "ping", cwd=run_root).stdout
    assert events(live_run, "set") == []


def test_cuda_out_of_memory_is_an_alert_and_a_resumable_failure(run_root: Path, monkeypatch: pytest.MonkeyPatch):
    original = engine.models.CockpitRealESRGANModel.optimize_parameters

    def optimize_out_of_memory_test_double(self, current_iter: int) -> None:
        """Stands in for a GPU this machine lacks: the CUDA allocator's error at iteration 6."""
        if current_iter == 6:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (test double)")
        original(self, current_iter)

    monkeypatch.setattr(engine.models.CockpitRealESRGANModel, "optimize_parameters",
                        optimize_out_of_memory_test_double)
    assert engine_main([str(TINY_OPTIONS), "--root", str(run_root)]) == 1
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    (alert,) = [e for e in events(paths, "alert") if e["code"] == "oom"]
    assert "iteration 6 with batch_size_per_gpu 2" in alert["message"]
    assert "Tried to allocate 2.00 GiB" in alert["message"]
    assert "batch_size_per_gpu to 1" in alert["hint"]
    failed = events(paths, "status")[-1]
    assert failed["status"] == "failed" and failed["resumable_from"] == 4 and failed["hint"] == alert["hint"]

    monkeypatch.setattr(engine.models.CockpitRealESRGANModel, "optimize_parameters", original)
    assert run_engine(TINY_OPTIONS, root=run_root, auto_resume=True) == "finished"
    assert events(paths, "run")[-1]["start_iter"] == 4


def test_notify_runs_the_command_with_the_event_on_stdin(run_root: Path):
    srcockpit("--no-ui", "train", str(TINY_OPTIONS), "--set", "train.total_iter=2",
              "--notify", "cat >> notified.jsonl; echo 'no such webhook' >&2; exit 3", cwd=run_root)
    told = [json.loads(line) for line in (run_root / "notified.jsonl").read_text().splitlines()]
    assert told[-1]["type"] == "status" and told[-1]["status"] == "finished"
    paths = RunPaths(run_root / "experiments/tiny_cpu")
    warnings = [e["message"] for e in events(paths, "log") if e["level"] == "warning"]
    assert any("exited 3" in w and "no such webhook" in w for w in warnings)
    assert "notify:" in (paths.cockpit / "options.yml").read_text()


def test_each_alert_suggests_a_set_the_run_can_take():
    current = {"lr": 1e-4, "gan_weight": 0.1, "net_d_iters": 1}
    assert suggest("diverging", "l_g_pix rose 1.6x", current).question == \
        "l_g_pix rose 1.6x - halve the learning rate (lr=5e-05)?"
    assert suggest("nan", "", current).setting == parse_setting("lr=1e-5")
    assert suggest("d_collapse", "", current).setting.command == "set gan_weight=0.05"
    assert suggest("d_collapse", "", {"lr": 1e-4, "net_d_iters": 1}).setting.command == "set net_d_iters=2"
    assert suggest("color_shift:val", "", current).setting.key == "gan_weight"
    assert suggest("over_smoothing", "", {"lr": 1e-4, "percep_weight": 1.0}).setting.value == 2.0
    assert suggest("disk", "", current) is None
    with pytest.raises(SettingError, match="out of range"):
        parse_setting("net_d_iters=0")


@pytest.fixture
def cockpit_run(tmp_path: Path):
    """A recorded run whose engine is this test: a real ControlServer that reports a GAN run's settings."""
    run = LiveRun(tmp_path)
    run.server.close()
    run.server = ControlServer(run.paths.socket(), lambda: {"status": "running", "iter": 800,
                                                           "settings": {"lr": 1e-4, "gan_weight": 0.1}})
    yield run
    run.close()


def test_a_key_offers_the_alerts_mitigation_and_sends_it(cockpit_run):
    cockpit_run.append("alert", code="diverging", level="warning", message="l_g_pix rose 1.6x over the last 200 "
                       "iterations", hint="reduce the learning rate; check the data")
    cockpit_run.append("set", key="gan_weight", value=0.05, previous=0.1, iter=790)  # an earlier change, replayed
    app = make_app(cockpit_run.paths.root.parent.parent, cockpit_run.paths, save_settings=False)

    async def drive() -> list[str]:
        async with app.run_test(size=(150, 46), notifications=True) as pilot:
            await settle_dashboard(pilot)
            assert "set gan_weight=0.05 (was 0.1) at iteration 790" in [line[2] for line in app.screen.state.logs]
            await pilot.press("a")
            assert await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert app.screen.question == ("l_g_pix rose 1.6x over the last 200 iterations - halve the learning "
                                           "rate (lr=5e-05)? [y/n]")
            await pilot.press("y")
            got: list[str] = []
            assert await pilot_wait_for(pilot, lambda: got.extend(cockpit_run.received()) or bool(got)), \
                [str(toast.render()) for toast in app.screen.query("Toast")]
            return got

    assert asyncio.run(drive()) == ["set lr=5e-05"]


def schedule(scheduler: dict, warmup: int = -1) -> object:
    """basicsr's BaseModel with two real Adam optimizers (generator, discriminator) under the named schedule."""
    from basicsr.models.base_model import BaseModel

    model = BaseModel({"num_gpu": 0, "is_train": True, "train": {"scheduler": dict(scheduler)}})
    model.optimizers = [torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr) for lr in (1e-4, 2e-4)]
    model.setup_schedulers()
    model.warmup = warmup
    return model


def lrs_over(model, iterations: range) -> list[list[float]]:
    seen = []
    for current in iterations:
        model.update_learning_rate(current, warmup_iter=model.warmup)
        seen.append([optimizer.param_groups[0]["lr"] for optimizer in model.optimizers])
    return seen


@pytest.mark.parametrize(("scheduler", "warmup"), [
    ({"type": "MultiStepRestartLR", "milestones": [6], "gamma": 0.5, "restarts": [8], "restart_weights": [1]}, -1),
    ({"type": "CosineAnnealingRestartLR", "periods": [10, 10], "restart_weights": [1, 0.5]}, -1),
    ({"type": "MultiStepLR", "milestones": [20], "gamma": 0.5}, 8),
])
def test_set_lr_scales_every_optimizer_and_the_schedule_goes_on_from_it(scheduler: dict, warmup: int):
    untouched, changed = schedule(scheduler, warmup), schedule(scheduler, warmup)
    lrs_over(untouched, range(1, 5))
    lrs_over(changed, range(1, 5))
    factor = 2.5e-5 / changed.get_current_learning_rate()[0]
    assert engine.models.apply_setting(changed, "lr", 2.5e-5) == pytest.approx(2.5e-5 / factor)
    assert changed.get_current_learning_rate()[0] == pytest.approx(2.5e-5)
    expected = [[lr * factor for lr in step] for step in lrs_over(untouched, range(5, 19))]
    assert lrs_over(changed, range(5, 19)) == [pytest.approx(step) for step in expected]
    assert changed.overrides == {"lr": 2.5e-5}
