"""The comparison report (engine/report.py, `srcockpit report`) from a real tiny run."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import TINY_RUN as RUN


def _valset(tiny_run: Path) -> str:
    val = tiny_run / "datasets" / "demo" / "val"
    return f"{val / 'GTmod12'}:{val / 'LRbicx2'}"


def test_report_from_a_real_run(tiny_run: Path, run_copy: Path, tmp_path: Path) -> None:
    from engine.evaluate import evaluate_model, load_pairs
    from engine.rank import build_net, promote, rank_run
    from engine.report import build_report, memory_estimate
    from engine.srvgg import read_checkpoint

    ranked = rank_run(run_copy, original=None)
    finetuned = promote(ranked, tmp_path / "weights" / "finetuned.pth")
    transferred = run_copy / "models" / "net_g_4.pth"
    out = tmp_path / "report"
    result = build_report({"finetuned": finetuned, "original": "ncnn", "transferred": transferred},
                          _valset(tiny_run), out, timing_runs=1, frame=(27, 48), samples=2, crop=32)
    assert (result.json_path, result.markdown_path, result.html_path) == (
        out / "report.json", out / "report.md", out / "report.html")
    for path in (result.json_path, result.markdown_path, result.html_path):
        assert path.is_file()
    assert set(result.criteria) == {"transferred", "finetuned"}
    data = json.loads((out / "report.json").read_text())
    assert list(data["models"]) == ["nearest", "bicubic", "original", "transferred", "fine-tuned"]
    for name, model in data["models"].items():
        assert np.isfinite(model["psnr"]) and 0 < model["ssim"] <= 1, name
        assert "stage" in model
    models = data["models"]
    assert models["original"]["parameters"] == 600_652 and "ncnn" in models["original"]["stage"]
    assert models["transferred"]["parameters"] == models["fine-tuned"]["parameters"] == 301_356
    assert "rank 1/4" in models["fine-tuned"]["stage"] and RUN in models["fine-tuned"]["stage"]
    assert data["valset"]["images"] == ["astronaut", "coffee"] and data["valset"]["scale"] == 2
    assert data["settings"]["crop_border"] == 2 and data["settings"]["test_y_channel"] is True
    # the same numbers as evaluate.py and as the ranking, for the same weights
    pairs = load_pairs(*(Path(p) for p in _valset(tiny_run).split(":")))
    direct = evaluate_model(build_net(read_checkpoint(transferred)), pairs, crop_border=2)
    assert models["transferred"]["psnr"] == direct.psnr and models["transferred"]["ssim"] == direct.ssim
    assert models["fine-tuned"]["psnr"] == ranked.best.psnr and models["fine-tuned"]["ssim"] == ranked.best.ssim
    nearest = next(r for r in ranked.references if r.label == "nearest")
    assert models["nearest"]["psnr"] == nearest.psnr
    # LPIPS: computed only with its backbone weights; here it must say why not
    if importlib.util.find_spec("lpips") is None:
        assert data["settings"]["lpips"].startswith("not available: the lpips package is not installed")
        assert all(m["lpips"] is None for m in models.values())
    # timings: stated device, threads, sizes; one number per architecture and size, shared by its models
    assert data["timing"]["device"] == "cpu" and data["timing"]["threads"] >= 1
    assert data["timing"]["sizes"]["frame"].startswith("27x48")
    assert data["timing"]["per"].startswith("architecture")
    for name in ("original", "transferred", "fine-tuned"):
        timing = models[name]["timing"]
        assert timing["valset"]["input"] == "24x24" and timing["frame"]["input"] == "27x48"
        assert timing["frame"]["median_ms"] > 0
        assert timing["frame"]["runs"] == 1 and timing["frame"]["conclusive"] is False
    assert models["original"]["timing"]["timed_as"] == "original"
    assert models["transferred"]["timing"] == models["fine-tuned"]["timing"]  # one 32/32 network timed
    assert models["fine-tuned"]["timing"]["timed_as"] == "transferred"
    assert "inconclusive (1 runs < 5)" in result.markdown_path.read_text()  # one run is no figure to compare
    # memory: fp32 params + input + the largest layer's input and output, at 270x480
    h, w = 270, 480
    small = 4 * 301_356 + 4 * (3 * h * w + 2 * 32 * h * w)
    assert models["fine-tuned"]["memory"]["total_bytes"] == small
    assert memory_estimate(read_checkpoint(finetuned))["total_bytes"] == small
    assert models["original"]["memory"]["total_bytes"] == 4 * 600_652 + 4 * (3 * h * w + 2 * 64 * h * w)
    # criteria, checked against the numbers
    for name in ("transferred", "fine-tuned"):
        rows = {row["criterion"]: row for row in data["criteria"][name]}
        floor = models["original"]["psnr"] - 2.0
        assert rows["PSNR >= original - 2.0 dB"]["status"] == ("PASS" if models[name]["psnr"] >= floor else "FAIL")
        assert rows["SSIM >= 0.88"]["status"] == ("PASS" if models[name]["ssim"] >= 0.88 else "FAIL")
        assert rows["parameters ~0.30M"]["status"] == "PASS"
        assert rows["memory footprint < 50 MB (estimate)"]["status"] == "PASS"
        assert "estimate" in rows["memory footprint < 50 MB (estimate)"]["value"]
    assert "original" not in data["criteria"]
    # samples: 2 images x 6 tiles (LR nearest, bicubic, 3 models, GT), embedded in the HTML, beside the Markdown
    html = (out / "report.html").read_text()
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(embedded) == 12 and "<img src=\"images/" not in html
    tile = cv2.imdecode(np.frombuffer(base64.b64decode(embedded[-1]), np.uint8), cv2.IMREAD_COLOR)
    assert tile.shape == (32, 32, 3)
    assert np.array_equal(cv2.cvtColor(tile, cv2.COLOR_BGR2RGB), _gt_crop(pairs.gt[1], data["samples"][1]))
    markdown = (out / "report.md").read_text()
    linked = re.findall(r"\]\((images/[^)]+\.png)\)", markdown)
    assert len(linked) == 12 and all((out / link).is_file() for link in linked)
    assert data["samples"][0]["tiles"] == ["LR (nearest)", "bicubic", "original", "transferred", "fine-tuned", "GT"]
    for text in (html, markdown):
        assert "PASS" in text and "N/A" in text
        assert "LPIPS" in text and "threads" in text


def _gt_crop(gt: np.ndarray, sample: dict) -> np.ndarray:
    top, left, size = sample["top"], sample["left"], sample["size"]
    return gt[top:top + size, left:left + size]


def test_criteria_pass_and_fail_on_the_numbers() -> None:
    from engine.report import ModelReport, check_criteria

    def model(psnr: float, ssim: float, params: int, memory: int) -> ModelReport:
        return ModelReport("m", "", "", "", params, psnr, ssim, [], memory={"total_bytes": memory, "input": "270x480",
                                                                            "parameters_bytes": 0,
                                                                            "activations_bytes": memory})

    original = model(31.0, 0.91, 600_652, 70_000_000)
    good = {r["criterion"]: r["status"] for r in check_criteria(model(29.0, 0.88, 301_356, 49_999_999), original)}
    assert good == {"PSNR >= original - 2.0 dB": "PASS", "SSIM >= 0.88": "PASS", "parameters ~0.30M": "PASS",
                    "memory footprint < 50 MB (estimate)": "PASS", "inference on QCS8550 <= 33 ms": "N/A"}
    bad = {r["criterion"]: r["status"] for r in check_criteria(model(28.99, 0.8799, 316_000, 50_000_000), original)}
    assert bad["PSNR >= original - 2.0 dB"] == bad["SSIM >= 0.88"] == bad["parameters ~0.30M"] == "FAIL"
    assert bad["memory footprint < 50 MB (estimate)"] == "FAIL"
    alone = check_criteria(model(29.0, 0.9, 301_356, 1), None)
    assert alone[0]["status"] == "N/A" and "needs the original" in alone[0]["target"]


def test_cli_report(tiny_run: Path, run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    weights = run_copy / "models"
    out = tmp_path / "cli-report"
    assert main(["report", "--original", "none", "--transferred", str(weights / "net_g_4.pth"), "--finetuned",
                 str(weights / "net_g_8.pth"), "--valset", _valset(tiny_run), "-o", str(out), "--timing-runs", "0",
                 "--samples", "1", "--job", str(tmp_path / "job")]) == 0
    printed = capsys.readouterr().out
    assert "fine-tuned" in printed and "N/A PSNR >= original - 2.0 dB" in printed and "LPIPS" in printed
    data = json.loads((out / "report.json").read_text())
    assert set(data["models"]) == {"nearest", "bicubic", "transferred", "fine-tuned"} and data["timing"] is None
    events = [json.loads(line) for line in (tmp_path / "job" / "cockpit" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["status"] == "finished" and any(e["type"] == "result" for e in events)
    record = [e for e in events if e["type"] == "result"][-1]  # the job runner's record: the report's files
    assert record["report"] == str(out / "report.json") and record["html"] == str(out / "report.html")


def test_cli_report_bad_input_exits_2(tiny_run: Path, run_copy: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    weights = str(run_copy / "models" / "net_g_8.pth")
    assert main(["report", "--finetuned", weights, "--valset", "missing/GT:missing/LQ", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.replace(str(Path.cwd()) + "/", "")
    assert "validation GT folder missing/GT does not exist" in err
    assert main(["report", "--finetuned", weights, "-o", str(tmp_path / "r")]) == 2
    assert "no validation set given" in capsys.readouterr().err
    assert main(["report", "--valset", _valset(tiny_run), "-o", str(tmp_path / "r")]) == 2
    assert "no small model to report on" in capsys.readouterr().err
    assert main(["report", "--finetuned", "nope.pth", "--valset", _valset(tiny_run), "-o", str(tmp_path / "r")]) == 2
    assert "--finetuned nope.pth: no such file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _recorded(flags: list[str]) -> dict:
    """report.json's content as build_report writes it, with figures of the size the demo records."""
    figures = {"niqe": 5.31, "color_shift": 4.12, "chroma_shift": 1.4, "checkerboard": 0.031, "sharpness": 0.93}
    clean = {"niqe": None, "color_shift": 0.41, "chroma_shift": 0.12, "checkerboard": 0.0021, "sharpness": 0.88}
    model = {"stage": "", "parameters": 301_356, "psnr": 30.1, "ssim": 0.9, "lpips": None, "timing": {}, "memory": {}}
    return {"created": "now", "timing": None, "criteria": {}, "samples": [],
            "valset": {"name": "demo_val", "images": ["a"], "scale": 2, "gt_dir": "GT", "lq_dir": "LQ"},
            "settings": {"crop_border": 2, "test_y_channel": True, "metrics": "basicsr", "lpips": "not available"},
            "models": {"bicubic": {**model, "stage": "baseline", "parameters": 0, "figures": clean},
                       "transferred": {**model, "figures": clean, "flags": []},
                       "fine-tuned": {**model, "figures": figures, "flags": flags}}}


def test_report_tables_show_the_figures_and_mark_the_artifacts() -> None:
    """The report's Markdown and HTML on recorded figures: NIQE and every artifact figure beside PSNR/SSIM, and
    the marked model's reasons in its row (red in the HTML), the clean one 'none'."""
    from html import escape

    from engine.report_html import MODEL_HEADER, render_html, render_markdown

    flags = ["colour shift 4.12 > 3.0 grey levels", "chroma shift 1.40 > 1.0 grey levels"]
    data = _recorded(flags)
    markdown = render_markdown(data, [])
    for heading in ("NIQE", "colour shift", "chroma shift", "checkerboard", "sharpness", "artifacts"):
        assert heading in MODEL_HEADER and f" {heading} |" in markdown
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "| 5.31 | 4.12 | 1.40 | 3.10% | 0.93 |" in rows["fine-tuned"] and "; ".join(flags) in rows["fine-tuned"]
    assert "| - | 0.41 | 0.12 | 0.21% | 0.88 |" in rows["transferred"] and rows["transferred"].endswith("| none |")
    assert rows["bicubic"].endswith("| - |")
    assert "colour shift > 3.0" in markdown and "checkerboard > 1%" in markdown  # the limits, from engine/health.py
    html = render_html(data, [])
    assert f"<td class='text FAIL'>{escape('; '.join(flags))}</td>" in html and "<td class='text'>none</td>" in html


def test_report_marks_a_model_with_a_colour_shift(tiny_run: Path, run_copy: Path, tmp_path: Path) -> None:
    """A real report: the trained network with its blue channel lifted 8 grey levels (its last conv's blue biases)
    is marked; nearest and bicubic carry the same figures, measured the same way."""
    import torch

    from engine.report import build_report
    from engine.srvgg import read_checkpoint, save_checkpoint

    state = read_checkpoint(run_copy / "models" / "net_g_8.pth")
    last = f"body.{max(int(key.split('.')[1]) for key in state)}"
    nearest = {k: torch.zeros_like(v) if k.startswith(f"{last}.") else v for k, v in state.items()}
    blue = dict(nearest, **{f"{last}.bias": torch.tensor([0.0] * 8 + [8.0] * 4) / 255})
    paths = {name: save_checkpoint(tmp_path / f"{name}.pth", weights)
             for name, weights in (("transferred", nearest), ("finetuned", blue))}
    result = build_report(paths, _valset(tiny_run), tmp_path / "report", timing_runs=0, samples=1, crop=16)
    models = result.data["models"]
    assert models["fine-tuned"]["figures"]["color_shift"] == pytest.approx(8.0, abs=0.1)
    assert models["fine-tuned"]["flags"][0].startswith("colour shift 8.0")
    assert models["transferred"]["flags"] == [] and models["transferred"]["figures"] == models["nearest"]["figures"]
    assert models["bicubic"]["figures"]["checkerboard"] < 0.1 and models["bicubic"]["figures"]["niqe"] is None
    assert "colour shift 8.0" in result.html_path.read_text()


def test_a_sample_tile_is_the_whole_images_output_computed_from_its_window_alone(tmp_path):
    """sample_tiles runs each network on the window plus the context its convolutions see, not the whole photo:
    the tile must be the one cropped from the whole image's output, inside the image and at its corners."""
    import torch

    from engine.evaluate import upscale
    from engine.rank import build_net
    from engine.report import window_output
    from engine.srvgg import SRVGGArch
    from tests.fixtures_weights import original_x2

    torch.manual_seed(0)
    small = build_net(SRVGGArch(num_feat=8, num_conv=12, upscale=2).build().state_dict())
    lq = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    for net in (build_net(original_x2()), small):
        whole = upscale(net, lq, scale=2, device="cpu")
        for top, left, size in ((20, 30, 16), (0, 0, 24), (46, 66, 24)):
            tile = window_output(net, lq, top, left, size, 2, torch.device("cpu"))
            expected = whole[top * 2:(top + size) * 2, left * 2:(left + size) * 2]
            assert tile.shape == expected.shape == (size * 2, size * 2, 3)
            assert np.abs(tile.astype(int) - expected).max() <= 1  # float sums in another order: one grey level
            assert np.mean(tile == expected) > 0.999


def test_a_report_that_times_the_frame_alone_says_so(tiny_run: Path, tmp_path: Path) -> None:
    """The demo's report (time_valset=False): the 270x480-style frame timed, the valset's column a dash."""
    from engine.report import build_report

    out = tmp_path / "report"
    checkpoint = tiny_run / "experiments" / RUN / "models" / "net_g_4.pth"
    build_report({"transferred": checkpoint}, _valset(tiny_run), out, timing_runs=1, frame=(27, 48), samples=1,
                 crop=32, time_valset=False)
    data = json.loads((out / "report.json").read_text())
    assert list(data["timing"]["sizes"]) == ["frame"]
    timing = data["models"]["transferred"]["timing"]
    assert "valset" not in timing and timing["frame"]["input"] == "27x48"
    html = (out / "report.html").read_text()
    assert "sizes: frame 27x48 LR input (HxW)" in html and "valset 24x24" not in html
