"""The validation-image viewer (dashboard key i): LR | output | GT panes, keys, missing files, lazy import."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runs"))

from tui_helpers import FIXTURE_ROOT, fixture_run, frozen_clock, settle_dashboard, sync, wait_for

from engine.protocol import SCHEMA_VERSION, RunPaths, encode_event
from tui.app import make_app
from tui.screens.dashboard import DashboardScreen
from tui.screens.images import crop_box

SIZE = (150, 46)
NAMES = ("astronaut", "chelsea")
ITERS = (100, 200)


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCOCKPIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("SRCOCKPIT_IMAGES", raising=False)


def write_image_run(root: Path, name: str = "vis_run") -> RunPaths:
    """A finished run with real PNGs: an x2 validation set of two photo crops and outputs at two iterations."""
    import skimage.data as data

    photos = {"astronaut": data.astronaut()[40:104, 180:276], "chelsea": data.chelsea()[60:140, 150:230]}
    gt_dir, lq_dir = root / "datasets" / "tiny" / "GT", root / "datasets" / "tiny" / "LR"
    paths = RunPaths(root / "experiments" / name)
    for folder in (gt_dir, lq_dir):
        folder.mkdir(parents=True)
    for image_name, pixels in photos.items():
        gt = Image.fromarray(pixels)
        lq = gt.resize((gt.width // 2, gt.height // 2), Image.Resampling.BICUBIC)
        gt.save(gt_dir / f"{image_name}.png")
        lq.save(lq_dir / f"{image_name}.png")
        for it, resample in zip(ITERS, (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC), strict=True):
            out = paths.root / "visualization" / image_name / f"{image_name}_{it}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            lq.resize(gt.size, resample).save(out)
    options = {"scale": 2, "root_path": str(root), "datasets": {
        "train": {"name": "train", "dataroot_gt": "datasets/train"},
        "val": {"name": "tiny", "dataroot_gt": "datasets/tiny/GT", "dataroot_lq": "datasets/tiny/LR"}}}
    events = [{"type": "header", "schema_version": SCHEMA_VERSION, "source": "engine"},
              {"type": "run", "name": name, "stage": "l1", "start_iter": 0, "total_iter": 200, "world_size": 1,
               "device": "cpu", "options": options},
              {"type": "status", "status": "running", "iter": 0}]
    for it, value in zip(ITERS, (27.5, 28.25), strict=True):
        events.append({"type": "val", "iter": it, "dataset": "tiny", "metrics": {"psnr": value, "ssim": 0.8},
                       "settings": {"psnr": {"crop_border": 2, "test_y_channel": True}},
                       "images": [f"experiments/{name}/visualization/{n}/{n}_{it}.png" for n in NAMES],
                       "image_psnr": {n: value + k for k, n in enumerate(NAMES)}})  # as the engine scores them
    events.append({"type": "status", "status": "finished", "iter": 200})
    paths.events.parent.mkdir(parents=True, exist_ok=True)
    paths.events.write_bytes(b"".join(encode_event({"v": SCHEMA_VERSION, "t": 1767261600.0 + k, **e})
                                      for k, e in enumerate(events)))
    return paths


async def open_viewer(pilot):
    from tui.screens.images import ImagesScreen

    await settle_dashboard(pilot)
    await pilot.press("i")
    assert await wait_for(pilot, lambda: isinstance(pilot.app.screen, ImagesScreen) and pilot.app.screen.frame)
    await pilot.pause()
    return pilot.app.screen


async def shown(pilot, name: str, iteration: int):
    assert await wait_for(pilot, lambda: (f := pilot.app.screen.frame) and (f.name, f.iter) == (name, iteration))
    await pilot.pause()
    return pilot.app.screen.frame


@sync
async def test_viewer_shows_lr_output_gt_and_keys_cycle(tmp_path):
    pytest.importorskip("textual_image")
    from textual_image.widget import HalfcellImage

    paths = write_image_run(tmp_path)
    app = make_app(tmp_path, paths, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_viewer(pilot)
        assert screen.renderer == "halfcell"  # headless: no terminal to ask, no escape sequences
        frame = await shown(pilot, "astronaut", 200)  # opens on the first image at the latest iteration
        visual = paths.root / "visualization"
        assert frame.out.path == visual / "astronaut" / "astronaut_200.png"
        assert frame.gt.path == tmp_path / "datasets" / "tiny" / "GT" / "astronaut.png"
        assert frame.lr.path == tmp_path / "datasets" / "tiny" / "LR" / "astronaut.png"
        assert frame.scale == 2 and frame.dataset_psnr == 28.25
        assert frame.psnr == 28.25  # the engine's figure for this image at this iteration
        for kind in ("lr", "out", "gt"):
            image = screen.query_one(f"#image-{kind}", HalfcellImage)
            assert image.display and isinstance(image.image, Image.Image)
            assert not screen.query_one(f"#missing-{kind}").display
            assert image.region.width > 10 and image.region.height > 5  # it really takes room on screen
        sizes = {screen.query_one(f"#image-{k}", HalfcellImage).image.size for k in ("lr", "out", "gt")}
        assert len(sizes) == 1  # the same crop in all three panes
        assert "iter 200" in str(screen.query_one("#label-out").content)
        title = str(screen.query_one("#img-title").content)
        assert "astronaut (1/2)" in title and "PSNR 28.25 dB" in title and "tiny mean 28.25" in title

        await pilot.press("down")  # already the latest
        await shown(pilot, "astronaut", 200)
        await pilot.press("up")
        frame = await shown(pilot, "astronaut", 100)
        assert frame.out.path == visual / "astronaut" / "astronaut_100.png"
        assert frame.dataset_psnr == 27.5
        await pilot.press("right")  # next image, same iteration
        frame = await shown(pilot, "chelsea", 100)
        assert frame.gt.path.name == "chelsea.png" and frame.out.path.name == "chelsea_100.png"
        assert frame.psnr == 28.5
        await pilot.press("n")  # wraps around
        await shown(pilot, "astronaut", 100)
        await pilot.press("p", "down")
        await shown(pilot, "chelsea", 200)

        before = screen.query_one("#image-out", HalfcellImage).image.size
        await pilot.press("plus")
        assert screen.zoom == 2.0
        after = screen.query_one("#image-out", HalfcellImage).image.size
        assert after[0] <= before[0] and after[1] <= before[1]
        await pilot.press("minus", "minus")
        assert screen.zoom == 0.5

        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


@sync
async def test_missing_files_give_a_message_in_place():
    from tui.screens.images import ImagesScreen

    app = make_app(FIXTURE_ROOT, fixture_run("finetune_x2_gan"), clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:  # the recorded log names PNGs that were never written
        screen = await open_viewer(pilot)
        assert isinstance(screen, ImagesScreen)
        frame = screen.frame
        assert frame.name == "baby" and frame.out.image is None
        out = str(screen.query_one("#missing-out").content)
        assert screen.query_one("#missing-out").display
        assert "missing" in out and f"baby_{frame.iter}.png" in out
        assert "dataroot_gt" in str(screen.query_one("#missing-gt").content)
        assert "dataroot_lq" in str(screen.query_one("#missing-lr").content)
        for kind in ("lr", "out", "gt"):
            assert not screen.query(f"#image-{kind}") or not screen.query_one(f"#image-{kind}").display
        latest = frame.iter
        await pilot.press("up")  # the earlier val iterations are listed all the same
        frame = await shown(pilot, "baby", latest - 500)
        assert f"baby_{latest - 500}.png" in str(screen.query_one("#missing-out").content)
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


def test_crop_is_shared_and_lr_is_nearest_upscaled():
    from tui.screens.images import Frame, Pane, crop_box, crop_pictures

    lr = Image.new("RGB", (20, 10))
    lr.putdata([(x * 12, y * 25, 0) for y in range(10) for x in range(20)])
    gt = lr.resize((40, 20), Image.Resampling.BICUBIC)
    frame = Frame("a", "set", 1, Pane(None, image=lr), Pane(None, image=gt), Pane(None, image=gt), scale=2)
    assert crop_box((40, 20), (10, 8), 1.0) == (15, 6, 25, 14)
    pictures = crop_pictures(frame, (10, 8), 1.0)
    assert pictures["out"].tobytes() == gt.crop((15, 6, 25, 14)).tobytes()
    up = pictures["lr"]
    assert up.size == (10, 8)
    assert up.tobytes() == lr.resize((40, 20), Image.Resampling.NEAREST).crop((15, 6, 25, 14)).tobytes()
    zoomed = crop_pictures(frame, (12, 12), 4.0)["lr"]  # 3x3 output pixels, each 4x4 on screen; LR 2x2 -> 8x8
    assert zoomed.size == (12, 12) and len({zoomed.getpixel((x, y)) for x in range(8) for y in range(8)}) == 1


@sync
async def test_the_same_moved_crop_steps_through_the_iterations_and_help_lists_the_keys(tmp_path):
    pytest.importorskip("textual_image")
    from textual_image.widget import HalfcellImage

    from tui.screens.dialogs import HelpScreen

    paths = write_image_run(tmp_path)
    app = make_app(tmp_path, paths, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=(90, 30)) as pilot:  # panes narrower than the 96 px photo: the crop can move
        screen = await open_viewer(pilot)
        await shown(pilot, "astronaut", 200)
        out = screen.query_one("#image-out", HalfcellImage)
        centred = out.image.tobytes()
        await pilot.press("shift+right", "shift+right")
        await pilot.pause()
        moved = out.image.tobytes()
        assert moved != centred and screen.shift == (0.2, 0.0)
        await pilot.press("home")  # the first validation, the same moved crop
        frame = await shown(pilot, "astronaut", 100)
        assert screen.shift == (0.2, 0.0)
        box = crop_box(frame.out.image.size, screen.view_pixels(), screen.zoom, screen.shift)
        assert out.image.tobytes() == frame.out.image.crop(box).tobytes()
        await pilot.press("end")
        await shown(pilot, "astronaut", 200)
        assert out.image.tobytes() == moved
        await pilot.press("0")
        await pilot.pause()
        assert out.image.tobytes() == centred

        await pilot.press("question_mark")
        assert await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        from rich.console import Console

        console = Console(width=120, record=True, color_system=None)
        for widget in app.screen.query("Static"):
            console.print(widget.content)
        shown_text = console.export_text()
        for words in ("before and after", "shift+arrows", "home / end"):
            assert words in shown_text, shown_text


def test_a_moved_crop_stays_inside_the_image():
    assert crop_box((40, 20), (10, 8), 1.0, (0.1, 0.0)) == (19, 6, 29, 14)
    assert crop_box((40, 20), (10, 8), 1.0, (0.5, 0.5)) == (30, 12, 40, 20)  # clamped at the far corner
    assert crop_box((40, 20), (10, 8), 1.0, (-0.5, -0.5)) == (0, 0, 10, 8)


def test_renderer_is_chosen_without_asking_the_terminal():
    from tui.screens.images import pick_renderer

    assert pick_renderer(True, {}) == "halfcell"
    assert pick_renderer(True, {"SRCOCKPIT_IMAGES": "unicode"}) == "unicode"
    assert pick_renderer(False, {"TERM": "xterm-kitty"}) == "tgp"
    assert pick_renderer(False, {"TERM": "xterm-kitty", "TMUX": "/tmp/tmux"}) == "halfcell"
    assert pick_renderer(False, {"TERM_PROGRAM": "WezTerm"}) == "sixel"
    assert pick_renderer(False, {"TERM": "xterm-256color"}) == "halfcell"


ROOT = Path(__file__).resolve().parent.parent


def test_importing_the_cockpit_never_imports_textual_image():
    code = ("import sys\nimport tui.app, tui.screens.dashboard, tui.screens.run_list\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual_image', 'PIL')\n"
            "             or m == 'tui.screens.images'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip().splitlines()[-1] == "[]"


def run_on_a_pty(code: str, stderr_too: bool = False) -> tuple[str, str]:
    """Run python code with a pseudo-terminal as stdin/stdout (and stderr, where Textual draws, if stderr_too):
    (what it wrote to the terminal, its stderr)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # no pixel size, like many
    chunks = []
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave,
                                stderr=slave if stderr_too else subprocess.PIPE, text=True, cwd=ROOT)
        os.close(slave)  # the child's copy stays open: reading the master ends (EIO) when the child exits
        slave = -1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # read as it writes: a full terminal buffer would block the child
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunks.append(os.read(master, 65536))
                except OSError:
                    break
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        _, stderr = proc.communicate(timeout=10)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0, stderr
    return b"".join(chunks).decode(errors="replace"), stderr or ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_loading_textual_image_on_a_terminal_sends_no_query_once_prepared():
    """On a tty textual-image asks the terminal about Sixel/TGP and its cell size when imported (each question
    waits up to 0.1 s for an answer); once Textual reads stdin those answers would arrive as keys. So the
    questions are asked by prepare_image_widgets, before Textual starts, and the viewer's load asks nothing."""
    pytest.importorskip("textual_image")
    ours = ("import sys\nfrom tui.screens.images import load_image_widget, prepare_image_widgets\n"
            "prepare_image_widgets()\nsys.stdout.write('PREPARED')\nsys.stdout.flush()\n"
            "print(load_image_widget('halfcell').__name__, file=sys.stderr)\n")
    written, stderr = run_on_a_pty(ours)
    asked, _, after = written.partition("PREPARED")
    assert "\x1b[" in asked and "\x1b" not in after and stderr.split() == ["HalfcellImage"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_the_cockpit_asks_textual_image_questions_before_textual_takes_the_terminal(tmp_path: Path):
    pytest.importorskip("textual_image")
    code = ("import sys\nfrom pathlib import Path\nfrom tui.app import make_app\n"
            "async def leave(pilot):\n    await pilot.exit(None)\n"
            f"make_app(Path({str(tmp_path)!r}), save_settings=False).run(auto_pilot=leave)\n")
    written, _ = run_on_a_pty(code, stderr_too=True)
    alternate_screen = written.index("\x1b[?1049h")  # Textual starts: from here on it reads stdin
    assert "\x1b[c" in written[:alternate_screen]  # textual-image's Sixel question (device attributes)


@pytest.fixture(scope="module")
def demo_stage1(tmp_path_factory) -> Path:
    """The demo's real stage 1 (engine.demo.Demo.step_stage1: its option file and overrides, --fast
    shortened to 4 iterations, validations at 2 and 4) on the tiny dataset, from a seeded 32/32 start."""
    import dataclasses

    import torch

    from engine.data.subimages import paired_subimages
    from engine.demo import FAST, Demo
    from engine.jobs import Job
    from engine.srvgg import SRVGGArch, save_checkpoint
    from tests.conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("demo-images")
    write_tiny_dataset(root)
    demo = Demo(root, fast=True)
    demo.settings = dataclasses.replace(FAST, warmup_iters=4, warmup_every=2)
    train = demo.paths.data / "train"  # the tiny pairs, cropped as the demo's data step crops its own
    crops = paired_subimages(train / "GTmod12", train / "LRbicx2", demo.paths.train_crops, scale=2, gt_crop=64)
    demo.paths.weights.mkdir()
    torch.manual_seed(7)
    save_checkpoint(demo.paths.transferred, SRVGGArch(num_feat=32, num_conv=32, upscale=2).build().state_dict())
    val = demo.paths.data / "val"
    demo.record["steps"]["data"] = {"val_gt": str(val / "GTmod12"), "val_lq": str(val / "LRbicx2"),
                                    "crops_gt": str(crops.gt_dir), "crops_lq": str(crops.lq_dir),
                                    "crops_meta_info": str(crops.meta_info)}
    with Job(demo.paths.job, "demo") as job:
        figures = demo.step_stage1(job)
    assert figures.get("run"), figures
    return root


def test_the_demo_scores_each_saved_image_with_basicsr(demo_stage1):
    from engine.protocol import ValEvent, load_events

    paths = RunPaths(demo_stage1 / "experiments" / "demo_stage1_l1")
    vals = [e for e in load_events(paths.events).events if isinstance(e, ValEvent)]
    assert [v.iter for v in vals] == [2, 4]
    for val in vals:
        names = {Path(p).parent.name for p in val.images}
        assert names == {"astronaut", "coffee"} and set(val.image_psnr) == names  # every saved image scored
        assert all(Path(p).is_file() for p in val.images)
        # basicsr's dataset PSNR is the mean of the per-image ones it summed: the same figures
        assert sum(val.image_psnr.values()) / len(names) == pytest.approx(val.metrics["psnr"], abs=1e-9)
    assert oct((paths.root / "visualization").stat().st_mode & 0o777) == oct(0o700)
    saved = Path(vals[-1].images[0])
    assert (oct(saved.parent.stat().st_mode & 0o777), oct(saved.stat().st_mode & 0o777)) == (oct(0o700), oct(0o600))


@sync
async def test_the_demo_viewer_shows_its_real_validation_images(demo_stage1, monkeypatch):
    pytest.importorskip("textual_image")
    from textual_image.widget import HalfcellImage

    from engine.protocol import ValEvent, load_events

    monkeypatch.chdir(demo_stage1)
    paths = RunPaths(demo_stage1 / "experiments" / "demo_stage1_l1")
    last = [e for e in load_events(paths.events).events if isinstance(e, ValEvent)][-1]
    app = make_app(demo_stage1, paths, clock=frozen_clock, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_viewer(pilot)
        frame = await shown(pilot, "astronaut", 4)
        assert frame.out.path == paths.root / "visualization" / "astronaut" / "astronaut_4.png"
        assert frame.gt.path.parent.name == "GTmod12" and frame.lr.path.parent.name == "LRbicx2"
        assert frame.psnr == last.image_psnr["astronaut"]  # the engine's figure, not one computed here
        for kind in ("lr", "out", "gt"):
            picture = screen.query_one(f"#image-{kind}", HalfcellImage).image
            assert isinstance(picture, Image.Image) and picture.size[0] > 10
        out = screen.query_one("#image-out", HalfcellImage).image
        assert len(out.getcolors(maxcolors=1 << 16) or []) > 50  # a real photo's output, not a blank pane
        assert f"PSNR {last.image_psnr['astronaut']:.2f} dB" in str(screen.query_one("#img-title").content)
        await pilot.press("up")  # the same crop one validation earlier
        frame = await shown(pilot, "astronaut", 2)
        assert frame.out.path.name == "astronaut_2.png" and frame.psnr is not None


def test_a_ranking_in_the_demos_process_scores_the_validations_saved_outputs(demo_stage1):
    """basicsr saved the EMA network's outputs when it validated at iteration 4, the checkpoint's: scoring that
    checkpoint's params_ema later in the same process (the demo's ranking) runs no network, and its figures are
    those of running it, to the last bit."""
    from engine import score_memo
    from engine.evaluate import evaluate_model, load_pairs
    from engine.metrics import standard_figures
    from engine.rank import build_net
    from engine.srvgg import read_checkpoint

    models = RunPaths(demo_stage1 / "experiments" / "demo_stage1_l1").models
    val = demo_stage1 / "datasets" / "demo" / "val"
    pairs = load_pairs(val / "GTmod12", val / "LRbicx2")
    net, calls = build_net(read_checkpoint(models / "net_g_4.pth", "params_ema")), []
    net.register_forward_hook(lambda *_: calls.append(1))
    remembered = evaluate_model(net, pairs, figures=standard_figures(2, 2))
    assert calls == []
    score_memo.forget()
    fresh = evaluate_model(net, pairs, figures=standard_figures(2, 2))
    assert len(calls) == len(pairs)
    assert [(s.psnr, s.ssim) for s in fresh.images] == [(s.psnr, s.ssim) for s in remembered.images]
    assert [s.figures["sharpness"] for s in fresh.images] == [s.figures["sharpness"] for s in remembered.images]
