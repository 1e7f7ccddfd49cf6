"""`srcockpit demo --fast`: the whole journey, end to end, from the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from engine.protocol import ValEvent, load_events
from tests.conftest import srcockpit


def test_fast_demo_runs_the_whole_journey_and_reuses_it(tmp_path: Path):
    root = tmp_path / "demo"
    first = srcockpit("--no-ui", "demo", "--fast", "--root", str(root), cwd=tmp_path, timeout=1800)
    record = json.loads((root / "demo.json").read_text())
    assert list(record["steps"]) == ["data", "original", "transfer", "stage1", "stage2", "rank", "report", "export"]

    report = json.loads((root / "report/report.json").read_text())
    models = report["models"]
    assert {"nearest", "bicubic", "original", "transferred", "fine-tuned"} <= set(models)
    # the point of the plan: fine-tuning recovers what the transfer lost
    assert models["fine-tuned"]["psnr"] > models["transferred"]["psnr"]
    assert models["original"]["parameters"] == 600_652 and models["fine-tuned"]["parameters"] == 301_356
    assert (root / "report/report.html").stat().st_size > 10_000

    best = record["steps"]["rank"]["best"]
    assert best["run"] in ("demo_stage1_l1", "demo_stage2_gan") and best["entry"] in ("params", "params_ema")
    assert json.loads((root / "weights/small-realesr-animevideox2v3-finetuned.json").read_text())["rank"] == 1

    manifest = json.loads((root / "export/manifest.json").read_text())
    assert manifest["figures"]["onnx"]["max_abs_error"] < 1e-5
    assert any(name.endswith("_ctx.onnx") for name in json.dumps(manifest["artefacts"]).split('"'))
    for stage in ("demo_stage1_l1", "demo_stage2_gan"):  # both stages save what the image viewer shows
        log = load_events(root / "experiments" / stage / "cockpit" / "events.jsonl")
        vals = [e for e in log.events if isinstance(e, ValEvent)]
        assert vals and all(v.images and set(v.image_psnr) == {Path(p).parent.name for p in v.images} for v in vals)
    assert "perceptual loss off" in first.stdout
    assert "export manifest" in first.stdout
    # the results themselves, not only paths: the report's scores per model and the export's figures
    for label in ("nearest", "bicubic", "original", "transferred", "fine-tuned"):
        row = next(line for line in first.stdout.splitlines() if line.strip().startswith(label + " "))
        assert f"{models[label]['psnr']:.3f}" in row and f"{models[label]['ssim']:.4f}" in row, row
    assert "QDQ vs float" in first.stdout and "HTP v73 context binary" in first.stdout
    assert "demo result: {" not in first.stdout and "summary demo: finished" in first.stdout

    # TensorBoard stays a fallback: both stages' scalars are in their tb_logger/ (the plan's logdir)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for stage, loss in (("demo_stage1_l1", "losses/l_pix"), ("demo_stage2_gan", "losses/l_g_pix")):
        events = EventAccumulator(str(root / "experiments" / stage / "tb_logger"))
        events.Reload()
        tags = events.Tags()["scalars"]
        assert loss in tags and any(t.startswith("metrics/") and t.endswith("/psnr") for t in tags), (stage, tags)

    again = srcockpit("--no-ui", "demo", "--fast", "--root", str(root), cwd=tmp_path, timeout=300)
    assert again.stdout.count("done earlier, reused") == 8
