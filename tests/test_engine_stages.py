"""Training in stages: stage 2 starts from stage 1's best checkpoint; each stage is its own visible run."""

from __future__ import annotations

from pathlib import Path

from engine.protocol import RunPaths, read_events
from tests.conftest import TINY_OPTIONS, srcockpit


def test_two_stages_hand_on_the_best_checkpoint(run_root: Path):
    stage1 = run_root / "stage1.yml"
    stage1.write_text(TINY_OPTIONS.read_text().replace("name: tiny_cpu", "name: tiny_stage1"))
    result = srcockpit("--no-ui", "train", str(stage1), str(TINY_OPTIONS), "--set", "train.total_iter=4",
                       "--set", "val.val_freq=2", "--set", "logger.save_checkpoint_freq=2", cwd=run_root)
    first, second = RunPaths(run_root / "experiments/tiny_stage1"), RunPaths(run_root / "experiments/tiny_cpu")
    runs = [[e for e in read_events(p.events) if e["type"] == "run"][-1] for p in (first, second)]
    assert [r["stage"] for r in runs] == ["1/2", "2/2"]
    assert "(stage 2/2)" in result.stdout

    # stage 2 loaded the best of stage 1's checkpoints (by validation PSNR, net_g or EMA)
    options = runs[1]["options"]["path"]
    best_file, entry = Path(options["pretrain_network_g"]), options["param_key_g"]
    assert best_file.parent == first.models and entry in ("params", "params_ema")
    vals = [e for e in read_events(first.events) if e["type"] == "val"]
    assert {v["iter"] for v in vals} >= {int(best_file.stem.split("_")[-1])}
    # basicsr's own log of stage 2 says it loaded exactly that file and entry into net_g
    log = next(second.root.glob("train_tiny_cpu_*.log")).read_text()
    assert f"Loading SRVGGNetCompact model from {best_file}, with param key: [{entry}]" in log

    # rerun with --auto-resume: both stages are finished and kept
    again = srcockpit("--no-ui", "train", str(stage1), str(TINY_OPTIONS), "--auto-resume", "--set",
                      "train.total_iter=4", "--set", "val.val_freq=2", "--set", "logger.save_checkpoint_freq=2",
                      cwd=run_root)
    assert "run tiny" not in again.stdout
