"""Validation-image viewer (dashboard key i): LR (nearest-upscaled) | model output at an iteration | GT.

basicsr saves each validation output as visualization/<name>/<name>_<iter>.png when val.save_img is on;
the val events list them and the run event's options name the validation set (datasets.val.dataroot_gt
and dataroot_lq). The three panes show the same centre crop, sized to the terminal; +/- zoom it.

Pictures are drawn by textual-image. On import it asks the terminal about Sixel/TGP support and its cell
size, which cannot work once Textual reads stdin (the answers would be read as keys), so the cockpit
imports it before Textual starts (`prepare_image_widgets`, called by CockpitApp.run), as textual-image's
README says to (checked on textual-image 0.12.0). The renderer is chosen from the environment
(`pick_renderer`): Kitty gets the graphics protocol, known Sixel terminals Sixel, anything else (tmux,
headless tests) colored half blocks. SRCOCKPIT_IMAGES=tgp|sixel|halfcell|unicode overrides.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from PIL import Image as PILImage
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Label, Static
from textual.worker import get_current_worker

from engine.units import IMAGE_SUFFIXES
from tui.state import RunState

RENDERER_ENV = "SRCOCKPIT_IMAGES"
RENDERERS = ("tgp", "sixel", "halfcell", "unicode")
ZOOMS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
PANES = ("lr", "out", "gt")
CACHE_IMAGES = 12
PAN_STEP = 0.1  # shift+arrow moves the crop by this share of the image


# ----------------------------------------------------------------- renderer
def pick_renderer(headless: bool, environ: Mapping[str, str] | None = None) -> str:
    """The textual-image renderer for this terminal, without asking the terminal anything."""
    env = os.environ if environ is None else environ
    wanted = env.get(RENDERER_ENV, "").strip().lower()
    if wanted in RENDERERS:
        return wanted
    if headless:
        return "halfcell"
    if env.get("TMUX") or env.get("STY"):  # graphics need passthrough there: half blocks always work
        return "halfcell"
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if "kitty" in term or env.get("KITTY_WINDOW_ID"):
        return "tgp"  # textual-image's TGP uses Unicode placeholders, which only Kitty draws
    konsole = env.get("KONSOLE_VERSION", "")
    if (program == "WezTerm" or term.startswith(("foot", "mlterm", "contour"))
            or (konsole.isdigit() and int(konsole) >= 220400)):
        return "sixel"
    return "halfcell"


@functools.cache
def prepare_image_widgets() -> ModuleType | Exception:
    """textual_image.widget, imported once (its terminal queries run then), or the error its import met.

    Call it before App.run(): textual-image 0.12.0's README asks for the import before the app starts,
    as the queries cannot work once Textual reads stdin. A failed import is kept, not retried, so that
    no query is sent while Textual runs.
    """
    log = logging.getLogger("textual_image")
    level = log.level
    log.setLevel(logging.ERROR)  # its "assuming VT340 sizes" warning is no news to the user
    try:
        import textual_image.widget as widgets
    except Exception as error:  # not installed, no stdout (TerminalError), a changed textual-image
        return error
    finally:
        log.setLevel(level)
    return widgets


def load_image_widget(renderer: str) -> type[Widget]:
    """textual-image's widget class for `renderer` (the module from prepare_image_widgets).

    Raises ImportError (not installed) or another error its import met (no stdout, a changed API).
    """
    widgets = prepare_image_widgets()
    if isinstance(widgets, Exception):
        raise widgets
    return {"tgp": widgets.TGPImage, "sixel": widgets.SixelImage, "halfcell": widgets.HalfcellImage,
            "unicode": widgets.UnicodeImage}[renderer]


def pixels_per_cell(renderer: str) -> tuple[int, int]:
    """Image pixels one terminal cell shows at zoom 1."""
    if renderer == "halfcell":
        return 1, 2
    if renderer == "unicode":
        return 1, 1
    from textual_image._terminal import get_cell_size

    size = get_cell_size()
    return max(1, size.width), max(1, size.height)


# ----------------------------------------------------------------- data
@dataclass
class Pane:
    """One of the three pictures: the file, why there is none, the decoded image."""

    path: Path | None
    problem: str = ""
    image: PILImage.Image | None = None


@dataclass
class Frame:
    name: str
    dataset: str
    iter: int
    lr: Pane
    out: Pane
    gt: Pane
    scale: float = 1.0
    psnr: float | None = None  # this image's PSNR at this iteration (the engine's, by basicsr's calculate_psnr)
    dataset_psnr: float | None = None  # the dataset mean the val event logged
    panes: dict[str, Pane] = field(init=False)

    def __post_init__(self) -> None:
        self.panes = {"lr": self.lr, "out": self.out, "gt": self.gt}


class ValImages:
    """Where a run's validation images are: names, iterations, output/LR/GT files. Plain Python."""

    def __init__(self, run_root: Path, state: RunState, root: Path | None = None) -> None:
        self.run_root = run_root
        self.root = root or Path.cwd()
        self.state = state
        self.options: dict[str, Any] = dict(state.run.options)
        roots = [Path(self.options["root_path"])] if self.options.get("root_path") else []
        roots += [self.root, Path.cwd(), run_root.parent.parent]
        self.roots = list(dict.fromkeys(roots))
        self.visual_dirs = [run_root / "visualization"]
        self.from_events: dict[str, str] = {}  # image name -> dataset
        for dataset, val in state.vals.items():
            for image in val.images:
                path = Path(image)
                self.from_events.setdefault(path.parent.name, dataset)
                recorded = self.resolve(path.parent.parent)
                if recorded not in self.visual_dirs:
                    self.visual_dirs.append(recorded)
        on_disk = sorted({p.name for d in self.visual_dirs if d.is_dir() for p in d.iterdir() if p.is_dir()})
        self.names = [*self.from_events, *(n for n in on_disk if n not in self.from_events)]
        self._cache: OrderedDict[tuple[Path, float], PILImage.Image] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_run(cls, run_root: Path, state: RunState, root: Path | None = None) -> ValImages:
        return cls(run_root, state, root)

    # ----------------------------------------------------------------- where
    def resolve(self, path: Path) -> Path:
        """A path from the log or the options: absolute, or under the first root where it exists."""
        if path.is_absolute():
            return path
        for root in self.roots:
            if (root / path).exists():
                return root / path
        return self.roots[0] / path

    def dataset_of(self, name: str) -> str:
        return self.from_events.get(name) or next(iter(self.state.vals), "")

    def iterations(self, name: str) -> list[int]:
        """The iterations with an output on disk, and those whose val event saved images of `name`."""
        iters: set[int] = set()
        prefix = f"{name}_"
        for folder in self.visual_dirs:
            for path in (folder / name).glob(f"{name}_*.png"):
                tail = path.stem[len(prefix):]
                if tail.isdigit():
                    iters.add(int(tail))
        if name in self.from_events:
            val = self.state.vals.get(self.from_events[name])
            iters.update(p.iter for p in (val.points if val else []))
        return sorted(iters)

    def output_path(self, name: str, iteration: int) -> Path:
        candidates = [folder / name / f"{name}_{iteration}.png" for folder in self.visual_dirs]
        return next((p for p in candidates if p.is_file()), candidates[0])

    def dataset_options(self, dataset: str) -> dict[str, Any] | None:
        sets = self.options.get("datasets") or {}
        vals = [d for phase, d in sets.items() if isinstance(d, dict) and not str(phase).startswith("train")]
        return next((d for d in vals if d.get("name") == dataset), vals[0] if len(vals) == 1 else None)

    def source_pane(self, name: str, kind: str) -> Pane:
        """The LR (kind 'lq') or GT ('gt') file of image `name` in the validation set's folders."""
        dataset = self.dataset_of(name)
        opts = self.dataset_options(dataset)
        key = f"dataroot_{kind}"
        what = "LR" if kind == "lq" else "GT"
        if not opts or not opts.get(key):
            return Pane(None, f"{what} not found: the run's options name no {key} for validation set {dataset!r}")
        folder = self.resolve(Path(str(opts[key])))
        if not folder.is_dir():
            return Pane(None, f"{what} folder missing: {short(folder, self.root)}")
        stem = name
        template = str(opts.get("filename_tmpl") or "{}")
        if kind == "gt" and "{}" in template:  # the visualization is named after the LQ file
            before, after = template.split("{}", 1)
            if name.startswith(before) and name.endswith(after) and len(name) > len(before) + len(after):
                stem = name[len(before):len(name) - len(after)]
        for suffix in IMAGE_SUFFIXES:
            for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return Pane(candidate)
        return Pane(None, f"{what} missing: no {stem}.* in {short(folder, self.root)}")

    def image_psnr(self, name: str, dataset: str, iteration: int) -> float | None:
        """The PSNR the engine logged for this saved image (engine.metrics.saved_image_psnr)."""
        val = self.state.vals.get(dataset)
        return val.image_psnr.get(iteration, {}).get(name) if val else None

    def dataset_psnr(self, dataset: str, iteration: int) -> float | None:
        val = self.state.vals.get(dataset)
        for point in reversed(val.points if val else []):
            if point.iter == iteration and math.isfinite(point.psnr):
                return point.psnr
        return None

    # ----------------------------------------------------------------- loading (worker thread)
    def open(self, pane: Pane) -> Pane:
        if pane.path is None:
            return pane
        if not pane.path.is_file():
            pane.problem = pane.problem or f"missing: {short(pane.path, self.root)}"
            return pane
        try:
            key = (pane.path, pane.path.stat().st_mtime)
            with self._lock:
                image = self._cache.get(key)
                if image is not None:
                    self._cache.move_to_end(key)
            if image is None:
                with PILImage.open(pane.path) as raw:
                    image = raw.convert("RGB")
                with self._lock:
                    self._cache[key] = image
                    while len(self._cache) > CACHE_IMAGES:
                        self._cache.popitem(last=False)
            pane.image = image
        except (OSError, ValueError, PILImage.DecompressionBombError) as error:
            pane.problem = f"cannot read {short(pane.path, self.root)}: {error}"
        return pane

    def load(self, name: str, iteration: int) -> Frame:
        dataset = self.dataset_of(name)
        out = self.open(Pane(self.output_path(name, iteration)))
        lr = self.open(self.source_pane(name, "lq"))
        gt = self.open(self.source_pane(name, "gt"))
        if out.image is None and not out.problem.startswith("cannot"):
            out.problem = f"missing: {short(out.path, self.root)}" + (
                "" if self.state.vals.get(dataset) and self.state.vals[dataset].images else
                "\n(validation images are saved with val.save_img: true)")
        scale = float(self.options.get("scale") or 1)
        reference = out.image or gt.image
        if lr.image is not None and reference is not None:
            scale = reference.width / lr.image.width
        return Frame(name, dataset, iteration, lr, out, gt, scale=scale, psnr=self.image_psnr(name, dataset, iteration),
                     dataset_psnr=self.dataset_psnr(dataset, iteration))


def crop_box(size: tuple[int, int], view: tuple[int, int], zoom: float,
             shift: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int, int, int]:
    """The crop of an image of `size` that fills `view` display pixels at `zoom`: centred, moved by
    `shift` (fractions of the image's width and height) and kept inside the image."""
    width, height = size
    crop_w = min(width, max(1, round(view[0] / zoom)))
    crop_h = min(height, max(1, round(view[1] / zoom)))
    left = min(width - crop_w, max(0, (width - crop_w) // 2 + round(shift[0] * width)))
    top = min(height - crop_h, max(0, (height - crop_h) // 2 + round(shift[1] * height)))
    return left, top, left + crop_w, top + crop_h


def crop_pictures(frame: Frame, view: tuple[int, int], zoom: float,
                  shift: tuple[float, float] = (0.0, 0.0)) -> dict[str, PILImage.Image | None]:
    """The three display pictures: the same region of output, GT and the nearest-upscaled LR."""
    reference = frame.out.image or frame.gt.image
    lr = frame.lr.image
    if reference is not None:
        size = reference.size
    elif lr is not None:
        size = (round(lr.width * frame.scale), round(lr.height * frame.scale))
    else:
        return dict.fromkeys(PANES)
    box = crop_box(size, view, zoom, shift)
    crop_size = (box[2] - box[0], box[3] - box[1])
    shown = (max(1, min(view[0], round(crop_size[0] * zoom))), max(1, min(view[1], round(crop_size[1] * zoom))))
    resample = PILImage.Resampling.NEAREST if zoom >= 1 else PILImage.Resampling.BOX
    pictures: dict[str, PILImage.Image | None] = {}
    for kind in ("out", "gt"):
        image = frame.panes[kind].image
        if image is None:
            pictures[kind] = None
            continue
        region = image.crop(box)  # a GT of another size still gets the same region (PIL pads past the edge)
        pictures[kind] = region if region.size == shown else region.resize(shown, resample)
    if lr is None:
        pictures["lr"] = None
    else:
        sx, sy = size[0] / lr.width, size[1] / lr.height
        upscaled = lr.resize(crop_size, PILImage.Resampling.NEAREST,
                             box=(box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy))
        pictures["lr"] = upscaled if upscaled.size == shown else upscaled.resize(shown, resample)
    return pictures


# ----------------------------------------------------------------- screen
class ImagesScreen(Screen[None]):
    """LR | output | GT of one validation image at one iteration."""

    DEFAULT_CSS = """
    ImagesScreen { layout: vertical; }
    ImagesScreen #img-title { height: 1; padding: 0 1; background: $panel; }
    ImagesScreen #img-panes { height: 1fr; }
    ImagesScreen .img-pane { width: 1fr; height: 100%; border: round $primary-darken-1; }
    ImagesScreen .img-label { width: 100%; height: 1; padding: 0 1; text-style: bold; color: $accent; }
    ImagesScreen .img-file { width: 100%; height: 1; padding: 0 1; color: $text-muted; }
    ImagesScreen .img-view { height: 1fr; width: 100%; align: center middle; }
    ImagesScreen .img-view > .img-picture { width: auto; height: auto; }
    ImagesScreen .img-missing { width: 100%; height: auto; padding: 1 1; color: $warning; text-align: center; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right,n", "image(1)", "next image"),
        Binding("left,p", "image(-1)", "previous image"),
        Binding("down", "iteration(1)", "later iter"),
        Binding("up", "iteration(-1)", "earlier iter"),
        Binding("home", "iteration(-1_000_000)", "first iter", show=False),
        Binding("end", "iteration(1_000_000)", "last iter", show=False),
        Binding("plus,equals_sign", "zoom(1)", "zoom in", key_display="+"),
        Binding("minus", "zoom(-1)", "zoom out", key_display="-"),
        Binding("shift+left", "pan(-1, 0)", "pan", show=False),
        Binding("shift+right", "pan(1, 0)", "pan", show=False),
        Binding("shift+up", "pan(0, -1)", "pan", show=False),
        Binding("shift+down", "pan(0, 1)", "pan", show=False),
        Binding("0", "pan(0, 0)", "centre", show=False),
        Binding("escape,q", "close", "close"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(self, catalog: ValImages, name: str | None = None, iteration: int | None = None) -> None:
        super().__init__(name="val-images")
        self.catalog = catalog
        self.index = catalog.names.index(name) if name in catalog.names else 0
        self.iteration = iteration
        self.zoom_index = ZOOMS.index(1.0)
        self.shift = (0.0, 0.0)  # the crop's move from the centre, kept across images and iterations
        self.frame: Frame | None = None
        self.busy = False
        self.renderer = "halfcell"
        self.render_problem = ""
        self.image_class: type[Widget] | None = None

    @property
    def name_shown(self) -> str:
        return self.catalog.names[self.index] if self.catalog.names else ""

    @property
    def zoom(self) -> float:
        return ZOOMS[self.zoom_index]

    def compose(self) -> ComposeResult:
        self.renderer = pick_renderer(self.app.is_headless)
        try:
            self.image_class = load_image_widget(self.renderer)
        except ImportError:
            self.render_problem = "pictures need the textual-image package (pip install textual-image)"
        except Exception as error:  # a terminal without stdout, a changed textual-image API
            self.render_problem = f"cannot draw pictures here: {error.__class__.__name__}: {error}"
        yield Static(id="img-title")
        with Horizontal(id="img-panes"):
            for kind in PANES:
                with Vertical(classes="img-pane", id=f"pane-{kind}"):
                    yield Label(id=f"label-{kind}", classes="img-label")
                    yield Label(id=f"file-{kind}", classes="img-file")
                    with Container(classes="img-view", id=f"view-{kind}"):
                        if self.image_class is not None:
                            yield self.image_class(id=f"image-{kind}", classes="img-picture")
                        yield Static(id=f"missing-{kind}", classes="img-missing")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def on_resize(self) -> None:
        self.call_after_refresh(self.show)

    # ----------------------------------------------------------------- keys
    def action_image(self, step: int) -> None:
        if self.catalog.names:
            self.index = (self.index + step) % len(self.catalog.names)
            self.load()

    def action_iteration(self, step: int) -> None:
        iters = self.catalog.iterations(self.name_shown)
        if not iters:
            return
        current = self.iteration if self.iteration in iters else iters[-1]
        self.iteration = iters[max(0, min(len(iters) - 1, iters.index(current) + step))]
        self.load()

    def action_zoom(self, step: int) -> None:
        self.zoom_index = max(0, min(len(ZOOMS) - 1, self.zoom_index + step))
        self.show()

    def action_pan(self, dx: int, dy: int) -> None:
        """Move the crop by a tenth of the image (0, 0: back to the centre); every iteration shows it."""
        if dx == dy == 0:
            self.shift = (0.0, 0.0)
        else:
            self.shift = tuple(max(-0.5, min(0.5, s + PAN_STEP * d)) for s, d in zip(self.shift, (dx, dy),
                                                                                     strict=True))
        self.show()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_help(self) -> None:
        from tui.screens.dialogs import KEYS_IMAGES, HelpScreen

        self.app.push_screen(HelpScreen(KEYS_IMAGES, "keys: validation images"))

    # ----------------------------------------------------------------- loading
    def load(self) -> None:
        iters = self.catalog.iterations(self.name_shown)
        if iters and self.iteration not in iters:
            self.iteration = iters[-1]
        if not iters:
            self.iteration = None
        self.busy = True
        self._load(self.name_shown, self.iteration if self.iteration is not None else -1)

    @work(thread=True, exclusive=True, group="val-images", exit_on_error=False)
    def _load(self, name: str, iteration: int) -> None:
        worker = get_current_worker()
        frame = self.catalog.load(name, iteration)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._loaded, frame)

    def _loaded(self, frame: Frame) -> None:
        if frame.name != self.name_shown or frame.iter != (self.iteration if self.iteration is not None else -1):
            return  # a newer key press is on its way
        self.frame = frame
        self.busy = False
        self.show()

    # ----------------------------------------------------------------- drawing
    def view_pixels(self) -> tuple[int, int]:
        view = self.query_one("#view-out", Container).content_size
        per_cell = pixels_per_cell(self.renderer) if self.image_class is not None else (1, 2)
        return max(1, view.width) * per_cell[0], max(1, view.height - 1) * per_cell[1]

    def show(self) -> None:
        frame = self.frame
        if frame is None or not self.is_mounted:
            return
        self.query_one("#img-title", Static).update(self.title_text(frame))
        pictures = (crop_pictures(frame, self.view_pixels(), self.zoom, self.shift) if self.image_class
                    else dict.fromkeys(PANES))
        scale = f"×{frame.scale:g}" if frame.scale and frame.scale != 1 else ""
        labels = {"lr": f"LR {scale} nearest".replace("  ", " "), "gt": "GT",
                  "out": f"output · iter {frame.iter:,}" if frame.iter >= 0 else "output"}
        for kind in PANES:
            pane = frame.panes[kind]
            self.query_one(f"#label-{kind}", Label).update(labels[kind])
            label = self.query_one(f"#file-{kind}", Label)
            label.update(short(pane.path, self.catalog.root, label.content_size.width))
            missing = self.query_one(f"#missing-{kind}", Static)
            picture = pictures.get(kind)
            if self.image_class is not None:
                widget = self.query_one(f"#image-{kind}")
                widget.display = picture is not None
                widget.image = picture  # type: ignore[attr-defined]
            problem = pane.problem or ("" if picture is not None else self.render_problem or "no picture")
            missing.update(problem)
            missing.display = picture is None

    def title_text(self, frame: Frame) -> Text:
        names, iters = self.catalog.names, self.catalog.iterations(frame.name)
        text = Text()
        text.append(frame.name, style="bold")
        text.append(f" ({self.index + 1}/{len(names)})", style="dim")
        if frame.dataset:
            text.append(f" · {frame.dataset}")
        if frame.iter >= 0:
            where = f" ({iters.index(frame.iter) + 1}/{len(iters)})" if frame.iter in iters else ""
            text.append(f" · iter {frame.iter:,}")
            text.append(where, style="dim")
        text.append(f" · zoom {self.zoom:g}×")
        if frame.psnr is not None:
            text.append(f" · PSNR {frame.psnr:.2f} dB", style="bold")
        if frame.dataset_psnr is not None:
            text.append(f" · {frame.dataset or 'set'} mean {frame.dataset_psnr:.2f} dB", style="dim")
        return text


def short(path: Path | None, root: Path, width: int = 0) -> str:
    """A path relative to the cockpit's root (or the current folder), its end kept when it is too long."""
    if path is None:
        return ""
    text = str(path)
    for base in (root, Path.cwd()):
        try:
            text = str(path.relative_to(base))
            break
        except ValueError:
            continue
    return "…" + text[len(text) - width + 1:] if 1 < width < len(text) else text


__all__ = ["ImagesScreen", "ValImages", "crop_box", "crop_pictures", "load_image_widget", "pick_renderer",
           "prepare_image_widgets"]
