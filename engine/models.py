"""Real-ESRGAN's models, made to run anywhere and to save what a resume needs.

Real-ESRGAN's RealESRGANModel/RealESRNetModel build DiffJPEG, USMSharp and the training-pair
queue with hard-coded `.cuda()` calls, so they cannot train on a CPU (laptops, CI, this test
suite). The subclasses here put them on the model's device and change nothing else in the
recipe. They are registered under their own names and the engine selects them (see
engine.options.MODEL_SUBSTITUTES); site-packages stays untouched.

They also write checkpoints the way a day-long run on a shared box needs (design.md section 4):
through a temporary name, fsynced, renamed, so a kill never leaves a torn file; and the training
state carries the random-number states, the best-metric record and the training-pair pool, so a
resumed run continues where it stopped instead of restarting its randomness.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torch.optim.swa_utils import get_ema_multi_avg_fn

import engine.metrics  # registers the artifact figures and a size-safe NIQE as basicsr metrics
import engine.perceptual  # noqa: F401  (registers the perceptual loss that takes --vgg-weights)
from engine.compat import load_basicsr
from engine.files import atomic_torch_save
from engine.states import plain_metrics, plain_numpy_state

load_basicsr()
from basicsr.models.sr_model import SRModel  # noqa: E402
from basicsr.models.srgan_model import SRGANModel  # noqa: E402
from basicsr.utils import DiffJPEG, USMSharp, get_root_logger  # noqa: E402
from basicsr.utils.registry import MODEL_REGISTRY  # noqa: E402
from realesrgan.models.realesrgan_model import RealESRGANModel  # noqa: E402
from realesrgan.models.realesrnet_model import RealESRNetModel  # noqa: E402

# The training-pair pool is saved with the state only up to this size; larger pools (the plan's
# 180 x 256 px pool is ~180 MB) refill after a resume, which only changes which pairs mix.
QUEUE_SAVE_LIMIT = 64 << 20


class ContiguousDiffJPEG(DiffJPEG):
    """basicsr's DiffJPEG, whose output is made contiguous.

    DiffJPEG returns a channels-last-strided tensor; Real-ESRGAN's feed_data resizes it (the layout
    stays) and hands it to basicsr's filter2D, whose .view() fails on such strides
    ("view size is not compatible with input tensor's size and stride").
    """

    def forward(self, x: torch.Tensor, quality: Any) -> torch.Tensor:
        return super().forward(x, quality).contiguous()


def rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextmanager
def rng_preserved() -> Iterator[None]:
    """Run a block (validation) without moving the training's random-number streams."""
    states = rng_states()
    try:
        yield
    finally:
        restore_rng_states(states)


def model_settings(model: Any) -> dict[str, float]:
    """What a `set` command may change on this model now, with the current values (engine.mitigations.KNOBS)."""
    found: dict[str, float] = {"lr": float(model.get_current_learning_rate()[0])}
    if getattr(model, "cri_gan", None) is not None:
        found["gan_weight"] = float(model.cri_gan.loss_weight)
    if getattr(model, "cri_perceptual", None) is not None:
        found["percep_weight"] = float(model.cri_perceptual.perceptual_weight)
    if hasattr(model, "net_d"):
        found["net_d_iters"] = int(model.net_d_iters)
    return found


def scale_learning_rate(model: Any, lr: float) -> None:
    """Every optimizer's lr times lr / (the generator's lr now), and the same factor on what basicsr's schedules
    start from (initial_lr: MultiStepRestartLR's restarts and the warm-up; base_lrs: CosineAnnealingRestartLR),
    so the schedule goes on from the new value instead of snapping back to the options' one."""
    group = model.optimizers[0].param_groups[0]
    reference = group["lr"] if group["lr"] > 0 else group.get("initial_lr", 0.0)
    factor = lr / reference if reference > 0 else None  # a schedule at 0 from 0: every optimizer gets lr itself
    for optimizer in model.optimizers:
        for one in optimizer.param_groups:
            one["lr"] = one["lr"] * factor if factor else lr
            if "initial_lr" in one:
                one["initial_lr"] = one["initial_lr"] * factor if factor else lr
    for scheduler in model.schedulers:
        scheduler.base_lrs = [base * factor if factor else lr for base in scheduler.base_lrs]


def apply_setting(model: Any, key: str, value: float) -> float:
    """Carry out `set key=value` between iterations (engine.mitigations checked it); returns the value before.
    The change is kept in model.overrides, which the training state carries (a resume continues with it)."""
    previous = model_settings(model)[key]
    if key == "lr":
        scale_learning_rate(model, value)
    elif key == "gan_weight":
        model.cri_gan.loss_weight = value
    elif key == "percep_weight":
        model.cri_perceptual.perceptual_weight = value
    elif key == "net_d_iters":
        model.net_d_iters = int(value)
    model.overrides = {**getattr(model, "overrides", {}), key: value}
    return previous


class _CockpitMixin:
    """What both cockpit models add to Real-ESRGAN's: device-safe set-up, atomic and complete saves."""

    def _init_cockpit(self, opt: dict[str, Any]) -> None:
        """Degraders and the pair pool on the model's device; the EMA network in the validation's layout."""
        if hasattr(self, "net_g_ema"):  # validated, never trained: the layout oneDNN runs faster on a CPU
            self.net_g_ema.to(memory_format=torch.channels_last)
        self.jpeger = ContiguousDiffJPEG(differentiable=False).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = opt.get("queue_size", 180)

    @torch.no_grad()
    def _dequeue_and_enqueue(self) -> None:
        if not hasattr(self, "queue_lr"):
            b, c, h, w = self.lq.size()
            if self.queue_size % b:
                raise ValueError(f"queue_size {self.queue_size} is not a multiple of the batch size {b}")
            self.queue_lr = torch.zeros(self.queue_size, c, h, w, device=self.device)
            _, c, h, w = self.gt.size()
            self.queue_gt = torch.zeros(self.queue_size, c, h, w, device=self.device)
            self.queue_ptr = 0
        super()._dequeue_and_enqueue()

    @torch.no_grad()
    def feed_data(self, data: dict[str, Any]) -> None:
        """Real-ESRGAN's, except that paired data and validation images are blurred with the 51x51 USM into
        gt_usm only where a loss reads it (about 15% of the demo's L1 iteration on a CPU)."""
        if self.is_train and self.opt.get("high_order_degradation", True):
            super().feed_data(data)
            return
        self.lq = data["lq"].to(self.device)
        if "gt" in data:
            self.gt = data["gt"].to(self.device)
            if self.is_train and self._losses_read_usm():  # validation never reads it
                self.gt_usm = self.usm_sharpener(self.gt)

    def _losses_read_usm(self) -> bool:
        raise NotImplementedError

    @torch.no_grad()
    def model_ema(self, decay: float = 0.999) -> None:
        """basicsr's EMA of the generator's parameters (decay * EMA + (1 - decay) * net_g, name by name), in one
        foreach call (torch.optim.swa_utils) instead of two ops per tensor: 1.9 -> 0.2 ms a CPU iteration."""
        current = dict(self.get_bare_model(self.net_g).named_parameters())
        average = dict(self.net_g_ema.named_parameters())
        get_ema_multi_avg_fn(decay)(list(average.values()), [current[name] for name in average], None)

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """basicsr's, except that DDP gets device_ids only on CUDA: gloo on CPU takes none (engine/dist.py)."""
        net = net.to(self.device)
        if self.opt["dist"]:
            device_ids = [torch.cuda.current_device()] if self.device.type == "cuda" else None
            return DistributedDataParallel(net, device_ids=device_ids,
                                           find_unused_parameters=self.opt.get("find_unused_parameters", False))
        if self.opt["num_gpu"] > 1:
            return DataParallel(net)
        return net

    def load_network(self, net: torch.nn.Module, load_path: str, strict: bool = True,
                     param_key: str | None = "params") -> None:
        """basicsr's, with weights_only=True stated: basicsr relies on torch's default, which older torch
        builds (TORCH_SPEC) set to a full unpickler that runs code from the file."""
        logger = get_root_logger()
        blob = torch.load(load_path, map_location="cpu", weights_only=True)
        if param_key is not None:
            if param_key not in blob and "params" in blob:
                param_key = "params"
                logger.info("Loading: params_ema does not exist, use params.")
            blob = blob[param_key]
        bare = self.get_bare_model(net)
        logger.info(f"Loading {bare.__class__.__name__} model from {load_path}, with param key: [{param_key}].")
        weights = {name.removeprefix("module."): value for name, value in blob.items()}
        self._print_different_keys_loading(bare, weights, strict)
        bare.load_state_dict(weights, strict=strict)

    def save_network(self, net: Any, net_label: str, current_iter: int, param_key: Any = "params") -> None:
        if self.opt.get("rank", 0) != 0:  # every rank holds the same weights; rank 0 writes them
            return
        current_iter = "latest" if current_iter == -1 else current_iter
        path = Path(self.opt["path"]["models"]) / f"{net_label}_{current_iter}.pth"
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        blob = {}
        for one, key in zip(nets, keys, strict=True):
            bare = self.get_bare_model(one)
            blob[key] = {name.removeprefix("module."): value.cpu().contiguous()
                         for name, value in bare.state_dict().items()}
        atomic_torch_save(blob, path)

    def training_state(self, epoch: int, current_iter: int) -> dict[str, Any]:
        state = {
            "epoch": epoch,
            "iter": current_iter,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "epoch_iter": getattr(self, "epoch_iter", 0),
            "rng": {**rng_states(), "numpy": plain_numpy_state(np.random.get_state())},
            "best_metric_results": plain_metrics(getattr(self, "best_metric_results", {})),
            "overrides": dict(getattr(self, "overrides", {})),  # plain numbers: weights_only loads them
        }
        if hasattr(self, "queue_lr") and (self.queue_lr.nbytes + self.queue_gt.nbytes) <= QUEUE_SAVE_LIMIT:
            state["queue"] = {"lr": self.queue_lr.cpu(), "gt": self.queue_gt.cpu(), "ptr": self.queue_ptr}
        return state

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        if current_iter == -1 or self.opt.get("rank", 0) != 0:
            return
        path = Path(self.opt["path"]["training_states"]) / f"{current_iter}.state"
        atomic_torch_save(self.training_state(epoch, current_iter), path)

    def resume_training(self, resume_state: dict[str, Any]) -> None:
        super().resume_training(resume_state)
        if resume_state.get("best_metric_results"):
            self.best_metric_results = resume_state["best_metric_results"]
        for key, value in resume_state.get("overrides", {}).items():
            if key == "lr":  # the optimizers' and schedulers' own states already carry it, decayed since
                self.overrides = {**getattr(self, "overrides", {}), key: value}
            elif key in model_settings(self):
                apply_setting(self, key, value)
        queue = resume_state.get("queue")
        if queue is not None:
            self.queue_lr = queue["lr"].to(self.device)
            self.queue_gt = queue["gt"].to(self.device)
            self.queue_ptr = queue["ptr"]


@MODEL_REGISTRY.register()
class CockpitRealESRGANModel(_CockpitMixin, RealESRGANModel):
    """RealESRGANModel (L1 + perceptual + GAN, second-order degradations, EMA), device-safe."""

    def __init__(self, opt: dict[str, Any]) -> None:
        SRGANModel.__init__(self, opt)
        self._init_cockpit(opt)

    def _losses_read_usm(self) -> bool:
        return any(self.opt.get(k) is not False for k in ("l1_gt_usm", "percep_gt_usm", "gan_gt_usm"))


@MODEL_REGISTRY.register()
class CockpitRealESRNetModel(_CockpitMixin, RealESRNetModel):
    """RealESRNetModel (the L1-only warm-up stage of Real-ESRGAN), device-safe."""

    def __init__(self, opt: dict[str, Any]) -> None:
        SRModel.__init__(self, opt)
        self._init_cockpit(opt)

    def _losses_read_usm(self) -> bool:
        return False  # RealESRNetModel trains on gt (SRModel's optimize_parameters): its gt_usm is never read
