"""The export step registry: a step registered here (one module + one line) runs in the pipeline and its job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.export import steps as registry
from engine.export.steps import StepSpec
from engine.export.steps.context import ExportContext, Outcome, outcome
from engine.protocol import read_events


def count_nodes(ctx: ExportContext) -> Outcome:
    """A throwaway export target: reads the float ONNX model an earlier step made, writes a file beside it."""
    import onnx

    nodes = len(onnx.load(str(ctx.made["float_model"])).graph.node)
    note = ctx.out / f"{ctx.stem}_nodes.txt"
    note.write_text(f"{nodes}\n")
    ctx.roles.append((note, "node count of the float model"))
    ctx.figures["count_nodes"] = {"nodes": nodes}
    ctx.made["node_note"] = note
    return outcome(f"{nodes} nodes", nodes=nodes)


@pytest.fixture
def counted() -> StepSpec:
    spec = registry.register(StepSpec("count_nodes", "Count ONNX nodes", f"{__name__}:count_nodes",
                                      ("float_model",), ("node_note",)), after="onnx")
    yield spec
    registry.unregister(spec.name)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from engine.srvgg import SRVGGArch, save_checkpoint

    torch.manual_seed(0)
    net = SRVGGArch(num_feat=4, num_conv=1, upscale=2).build()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", net.state_dict())


def test_a_registered_step_runs_in_the_job_and_lands_in_the_manifest(counted, checkpoint, tmp_path):
    from engine.job_runner import run_job

    out = tmp_path / "out"
    steps = []
    result = run_job(out, "export", {"checkpoint": str(checkpoint), "out": str(out), "size": "8x8", "calib": "builtin",
                                     "only": ["load", "onnx", "count_nodes", "manifest"]}, result=steps.append)
    assert [report.name for report in steps] == ["load", "onnx", "count_nodes", "manifest"]
    assert (out / "tiny_nodes.txt").read_text().strip() == str(result["figures"]["count_nodes"]["nodes"])
    events = list(read_events(out / "cockpit" / "events.jsonl"))
    step = next(event for event in events if event["type"] == "result" and event.get("step") == "count_nodes")
    assert step["title"] == "Count ONNX nodes" and step["index"] == 3 and step["total"] == 4
    assert step["nodes"] > 0 and step["status"] == "done"
    last = [event for event in events if event["type"] == "progress"][-1]  # the last one is never throttled
    assert (last["done"], last["total"]) == (4, 4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "tiny_nodes.txt" in [entry["path"] for entry in manifest["artefacts"]]


def test_a_step_whose_needs_no_earlier_step_makes_is_refused_before_any_folder(counted, checkpoint, tmp_path):
    from engine.export import export_checkpoint

    with pytest.raises(ValueError, match=r"count_nodes.*float_model"):
        export_checkpoint(checkpoint, tmp_path / "out", size=(8, 8), calib="builtin", only=("load", "count_nodes"))
    assert not (tmp_path / "out").exists()


def test_step_names_and_labels_need_no_heavy_import():
    code = ("import sys, engine.export.steps as s; s.labels(); "
            "print(sorted(m for m in ('numpy', 'torch', 'onnx', 'cv2') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"
