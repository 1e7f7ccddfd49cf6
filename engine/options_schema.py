"""basicsr 1.4.2 / realesrgan 0.3.0 option files, declared: one strict pydantic model per section.

Validate only: the models check a copy of the dict and their output is thrown away, so basicsr
still receives the options exactly as written. Each field is a key basicsr or realesrgan reads
(a grep of opt[...] / opt.get(...) in their models, data and train code) or one parse_options adds;
`examples` holds the hint shown when the value is wrong. Sections whose keys depend on a registered
class (network_g, the losses, the scheduler) are checked by engine.options_check against models
built from that class's constructor.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

NAME_MAX = 200
NAME_HINT = "write one plain folder name, e.g. name: my_run (letters, digits, '_', '-', '.')"
SEED_MAX = 2**32 - 1  # numpy's seed range; basicsr seeds numpy, random and torch with it


def fail(message: str, hint: str = "") -> PydanticCustomError:
    """An error whose text is ours (passed as context, so braces in it are not a template)."""
    return PydanticCustomError("srcockpit", "{message}", {"message": message, "hint": hint})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def name_problem(name: Any) -> str | None:
    """Why `name` cannot be a folder under experiments/ (it is one path component, nothing else), or None."""
    if not isinstance(name, str):
        return f"must be text, got {name!r}"
    if name in ("", ".", ".."):
        return f"{name!r} is not a folder name: the run would write into (or move) experiments/ itself or above it"
    if "/" in name or "\\" in name or "\0" in name:
        return f"{name!r} holds a '/', '\\' or NUL: the run must stay one folder under experiments/"
    if name.startswith("-") or name.strip() != name:
        return f"{name!r} starts with '-' or has spaces at an end (a command line would misread it)"
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long, at most {NAME_MAX}"
    return None


def _name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise fail(problem, NAME_HINT)
    return value


def _path_text(value: str) -> str:
    if not value.strip() or "\0" in value:
        raise fail(f"{value!r} is not a path", "write a path, or ~ for none")
    return value


def _real(value: Any) -> Any:
    """A number as YAML wrote it (an int stays an int, so messages quote the value as written)."""
    if not _number(value):
        raise PydanticCustomError("float_type", "must be a number")
    return value


def _positive(value: int) -> int:
    if value <= 0:
        raise fail(f"must be a positive whole number, got {value}", "write a whole number above 0")
    return value


def _not_negative(value: float) -> float:
    if value < 0:
        raise fail(f"must be 0 or more, got {value}", "e.g. 0")
    return value


def _positive_number(value: float) -> float:
    if not value > 0 or math.isinf(value):
        raise fail(f"must be a positive number, got {value}", "e.g. !!float 1e-4")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise fail(f"must be a finite number, got {value}", "write a number, e.g. 0.5")
    return value


def _probability(value: float) -> float:
    if not 0 <= value <= 1:
        raise fail(f"is a probability, must lie in [0, 1], got {value}", "write a number between 0 and 1")
    return value


def _fraction(value: float) -> float:
    if not 0 <= value < 1:
        raise fail(f"must lie in [0, 1), got {value}", "e.g. 0.999")
    return value


def _count(value: Any) -> float:
    """An iteration count basicsr int()s or only uses in %: 5000 or !!float 5e3."""
    if not _number(value) or (isinstance(value, float) and not value.is_integer()):
        raise fail(f"must be a whole number (got {value!r})", "write a whole number, e.g. 5000")
    return value


def _positive_count(value: Any) -> float:
    if _count(value) <= 0:
        raise fail(f"must be a positive number of iterations, got {value}", "e.g. 5000")
    return value


def _warmup(value: Any) -> float:
    if _count(value) < -1:
        raise fail(f"must be -1 (no warm-up) or a number of iterations, got {value}", "warmup_iter: -1")
    return value


def _iterations(value: Any) -> list[float]:
    if not isinstance(value, list) or not value or not all(_number(v) and v > 0 and float(v).is_integer()
                                                          for v in value):
        raise fail(f"must be a list of positive iteration numbers, got {value!r}", "e.g. [100000, 200000]")
    if value != sorted(value):
        raise fail(f"must be increasing, got {value}", f"write {sorted(value)}")
    return value


def _length(n: int) -> AfterValidator:
    def check(value: list[Any]) -> list[Any]:
        if len(value) != n:
            raise fail(f"must list {n} numbers, got {len(value)}", f"write {n} numbers, e.g. {[0.5] * n}")
        return value
    return AfterValidator(check)


def _ordered(value: list[float]) -> list[float]:
    if value[0] > value[1]:
        raise fail(f"is a range [low, high], got low > high: {value}", f"write {sorted(value)}")
    return value


def _num_gpu(value: Any) -> Any:
    if value != "auto" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise fail(f"must be auto or a whole number of GPUs (0: the CPU), got {value!r}", "num_gpu: auto")
    return value


def _seed(value: int) -> int:
    if not 0 <= value <= SEED_MAX:
        raise fail(f"must lie in [0, {SEED_MAX}] (numpy's seed range), got {value}", "e.g. manual_seed: 0")
    return value


def _template(value: str) -> str:
    try:
        value.format("name")
    except (IndexError, KeyError, ValueError):
        raise fail(f"{value!r} must hold one {{}} where the file name goes", "filename_tmpl: '{}'") from None
    return value


def _port(value: int) -> int:
    if not 0 < value < 65536:
        raise fail(f"must be a port number in [1, 65535], got {value}", "port: 29500")
    return value


def _adam(value: Any) -> Any:
    if value != "Adam":
        raise fail(f"optimizer {value!r}: basicsr 1.4.2 builds only Adam", "type: Adam")
    return value


Name = Annotated[str, AfterValidator(_name)]
PathText = Annotated[str, AfterValidator(_path_text)]
Positive = Annotated[int, AfterValidator(_positive)]
Real = Annotated[float, PlainValidator(_real)]
NotNegative = Annotated[Real, AfterValidator(_not_negative), AfterValidator(_finite)]
PositiveNumber = Annotated[Real, AfterValidator(_positive_number)]
Number = Annotated[Real, AfterValidator(_finite)]
Prob = Annotated[Real, AfterValidator(_probability)]
Fraction = Annotated[Real, AfterValidator(_fraction)]
Count = Annotated[float, PlainValidator(_count)]
PositiveCount = Annotated[float, PlainValidator(_positive_count)]
Probs3 = Annotated[list[Prob], _length(3)]
Range = Annotated[list[Number], _length(2), AfterValidator(_ordered)]
Iterations = Annotated[list[float], PlainValidator(_iterations)]


class Section(BaseModel):
    """A mapping of known keys, each of its declared type (no coercion: "32" is not 32)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class IoBackend(Section):
    type: Literal["disk", "lmdb", "memcached"] = Field(examples=["type: disk"])
    db_paths: list[PathText] | PathText | None = None
    client_keys: list[str] | str | None = None
    server_list_cfg: PathText | None = None
    client_cfg: PathText | None = None
    sys_path: PathText | None = None


class DatasetOptions(Section):
    name: str | None = None
    type: str = Field(examples=["type: PairedImageDataset"])
    phase: str | None = None
    scale: Positive | None = None
    dataroot_gt: PathText | None = None
    dataroot_lq: PathText | None = None
    dataroot_flow: PathText | None = None
    meta_info: PathText | None = None
    meta_info_file: PathText | None = None
    filename_tmpl: Annotated[str, AfterValidator(_template)] | None = None
    io_backend: IoBackend | None = Field(None, examples=["io_backend: {type: disk}"])
    gt_size: Positive | None = None
    use_hflip: bool | None = None
    use_rot: bool | None = None
    use_flip: bool | None = None
    color: Literal["y"] | None = None
    mean: list[Number] | None = None
    std: list[Number] | None = None
    use_shuffle: bool | None = None
    num_worker_per_gpu: Annotated[int, AfterValidator(_not_negative)] | None = Field(
        None, examples=["num_worker_per_gpu: 4 (0: load in the training process)"])
    batch_size_per_gpu: Positive | None = None
    dataset_enlarge_ratio: Positive | None = None
    prefetch_mode: Literal["cpu", "cuda"] | None = Field(None, examples=["prefetch_mode: ~ (or cpu, cuda)"])
    num_prefetch_queue: Positive | None = None
    pin_memory: bool | None = None
    persistent_workers: bool | None = None
    cache_data: bool | None = None
    blur_kernel_size: Positive | None = None
    kernel_list: list[str] | None = None
    kernel_prob: list[Prob] | None = None
    blur_sigma: Range | None = None
    betag_range: Range | None = None
    betap_range: Range | None = None
    sinc_prob: Prob | None = None
    blur_kernel_size2: Positive | None = None
    kernel_list2: list[str] | None = None
    kernel_prob2: list[Prob] | None = None
    blur_sigma2: Range | None = None
    betag_range2: Range | None = None
    betap_range2: Range | None = None
    sinc_prob2: Prob | None = None
    final_sinc_prob: Prob | None = None
    num_frame: Positive | None = None
    interval_list: list[Positive] | None = None
    random_reverse: bool | None = None
    flip_sequence: bool | None = None
    test_mode: bool | None = None
    padding: str | None = None
    val_partition: str | None = None
    use_duf_downsampling: bool | None = None


class Optimizer(Section):
    type: Annotated[str, PlainValidator(_adam)] = Field(examples=["type: Adam"])
    lr: PositiveNumber = Field(examples=["lr: !!float 1e-4"])
    betas: Annotated[list[Fraction], _length(2)] | None = Field(None, examples=["betas: [0.9, 0.99]"])
    weight_decay: NotNegative | None = None
    eps: PositiveNumber | None = None
    amsgrad: bool | None = None
    foreach: bool | None = None
    maximize: bool | None = None
    capturable: bool | None = None
    differentiable: bool | None = None
    fused: bool | None = None


class TrainOptions(Section):
    total_iter: PositiveCount = Field(examples=["total_iter: 100000"])
    warmup_iter: Annotated[float, PlainValidator(_warmup)] | None = None
    ema_decay: Fraction | None = Field(None, examples=["ema_decay: 0.999 (0: no EMA)"])
    optim_g: Optimizer = Field(examples=["optim_g: {type: Adam, lr: !!float 1e-4}"])
    optim_d: Optimizer | None = None
    scheduler: dict[str, Any] = Field(examples=["scheduler: {type: MultiStepLR, milestones: [100000], gamma: 0.5}"])
    pixel_opt: dict[str, Any] | None = None
    perceptual_opt: dict[str, Any] | None = None
    gan_opt: dict[str, Any] | None = None
    ldl_opt: dict[str, Any] | None = None
    feature_matching_opt: dict[str, Any] | None = None
    net_d_iters: Positive | None = None
    net_d_init_iters: Annotated[int, AfterValidator(_not_negative)] | None = None
    net_d_reg_every: Positive | None = None
    net_g_reg_every: Positive | None = None
    r1_reg_weight: NotNegative | None = None
    path_reg_weight: NotNegative | None = None
    mixing_prob: Prob | None = None
    dcn_lr_mul: NotNegative | None = None
    fix_flow: Annotated[int, AfterValidator(_not_negative)] | None = None
    flow_lr_mul: NotNegative | None = None
    lr_flow: NotNegative | None = None


class PathOptions(Section):
    pretrain_network_g: PathText | None = Field(None, examples=["pretrain_network_g: weights/net_g.pth (or ~)"])
    param_key_g: str | None = None
    strict_load_g: bool | None = None
    pretrain_network_d: PathText | None = None
    param_key_d: str | None = None
    strict_load_d: bool | None = None
    resume_state: PathText | None = None
    ignore_resume_networks: list[str] | None = None
    experiments_root: PathText | None = None
    models: PathText | None = None
    training_states: PathText | None = None
    log: PathText | None = None
    visualization: PathText | None = None
    results_root: PathText | None = None


class Wandb(Section):
    project: str | None = None
    resume_id: str | None = None
    entity: str | None = None


class LoggerOptions(Section):
    print_freq: PositiveCount = Field(examples=["print_freq: 100"])
    save_checkpoint_freq: PositiveCount = Field(examples=["save_checkpoint_freq: 5000"])
    use_tb_logger: bool | None = None
    wandb: Wandb | None = None


class Metric(Section):
    model_config = ConfigDict(strict=True, extra="allow")  # the keyword arguments of its calculate_* function

    type: str = Field(examples=["type: calculate_psnr"])
    crop_border: Annotated[int, AfterValidator(_not_negative)] | None = Field(None, examples=["crop_border: 2"])
    test_y_channel: bool | None = None
    better: Literal["higher", "lower"] | None = None


class ValOptions(Section):
    val_freq: PositiveCount = Field(examples=["val_freq: 5000"])
    save_img: bool | None = None
    suffix: str | None = None
    pbar: bool | None = None
    metrics: dict[str, Metric] | None = None
    num_val_samples: Positive | None = None
    flip_seq: bool | None = None
    center_frame_only: bool | None = None


class DistParams(Section):
    backend: Literal["nccl", "gloo", "mpi"] | None = None
    port: Annotated[int, AfterValidator(_port)] | None = None


class SrcockpitOptions(Section):
    """srcockpit's own opt-in speed-ups (engine/speed.py) and the notify command (engine/notify.py); basicsr
    ignores this top-level section."""

    notify: str | None = None

    channels_last: bool | None = None
    autocast: Literal["bf16", "fp16"] | None = None
    compile: bool | None = None
    usm: Literal["dense", "separable"] | None = None
    crop_pad_size: Positive | None = None


class Options(Section):
    name: Name
    model_type: str = Field(examples=["model_type: RealESRGANModel"])
    scale: Positive | None = None
    num_gpu: Annotated[Any, PlainValidator(_num_gpu)] = None
    manual_seed: Annotated[int, AfterValidator(_seed)] | None = None
    is_train: bool | None = None
    dist: bool | None = None
    rank: int | None = None
    world_size: int | None = None
    auto_resume: bool | None = None
    root_path: str | None = None
    debug: bool | None = None
    datasets: dict[str, DatasetOptions] = Field(examples=["datasets: {train: {...}, val: {...}}"])
    network_g: dict[str, Any] = Field(examples=["network_g: {type: SRVGGNetCompact, ...}"])
    network_d: dict[str, Any] | None = None
    path: PathOptions
    train: TrainOptions
    val: ValOptions | None = None
    logger: LoggerOptions
    dist_params: DistParams | None = None
    find_unused_parameters: bool | None = None
    gt_size: Positive | None = None
    queue_size: Positive | None = None
    high_order_degradation: bool | None = None
    l1_gt_usm: bool | None = None
    percep_gt_usm: bool | None = None
    gan_gt_usm: bool | None = None
    gt_usm: bool | None = None
    resize_prob: Probs3 | None = None
    resize_range: Range | None = None
    gaussian_noise_prob: Prob | None = None
    noise_range: Range | None = None
    poisson_scale_range: Range | None = None
    gray_noise_prob: Prob | None = None
    jpeg_range: Range | None = None
    second_blur_prob: Prob | None = None
    resize_prob2: Probs3 | None = None
    resize_range2: Range | None = None
    gaussian_noise_prob2: Prob | None = None
    noise_range2: Range | None = None
    poisson_scale_range2: Range | None = None
    gray_noise_prob2: Prob | None = None
    jpeg_range2: Range | None = None
    srcockpit: SrcockpitOptions | None = None


class DatasetsSection(BaseModel):
    """The datasets of an options file and nothing else (for `srcockpit data check`)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    datasets: dict[str, DatasetOptions] = Field(examples=["datasets: {train: {...}, val: {...}}"])


class MultiStepScheduler(Section):
    type: str
    milestones: Iterations = Field(examples=["milestones: [100000, 200000]"])
    gamma: PositiveNumber | None = Field(None, examples=["gamma: 0.5"])
    restarts: list[Count] | None = None
    restart_weights: list[NotNegative] | None = None


class CosineScheduler(Section):
    type: str
    periods: Iterations = Field(examples=["periods: [total_iter]"])
    restart_weights: list[NotNegative] | None = None
    eta_min: NotNegative | None = None


SCHEDULERS: dict[str, type[Section]] = {"MultiStepLR": MultiStepScheduler, "MultiStepRestartLR": MultiStepScheduler,
                                        "CosineAnnealingRestartLR": CosineScheduler}
