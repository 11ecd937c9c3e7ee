"""The pretraining job: one YAML file -> a tree of frozen job sections (hyena_platform.config).

Sections: ``model`` (ModelSection), ``data`` (hyena_platform.data.config.DataConfig), ``train``
(TrainSection), ``scaling`` (ScalingSection), ``checkpoint`` (CheckpointSection), ``tracking``
(hyena_platform.tracking.TrackingConfig). Each component receives only its own section.

`load_job` is strict: unknown keys, wrong types and inconsistent values raise ConfigError naming
the file, the dotted key and the valid choices (the generic rules live in hyena_platform.config;
the cross-section checks, such as stage length vs the model's l_max or the global batch vs
workers x micro-batch, live here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from hyena import HyenaConfig
from hyena.config import VARIANTS, ConfigValueError

from hyena_platform.config import from_mapping, kind_field, load_config, section, to_dict
from hyena_platform.data.config import DataConfig
from hyena_platform.errors import ConfigError
from hyena_platform.submission import SubmissionSection, submission_field
from hyena_platform.tracking import TrackingConfig
from hyena_platform.train.schedule import ScheduleError, Stage, plan_stages


@section
class ModelSection:
    """What to train: a released variant plus field overrides, full fields, or a checkpoint.

    - ``variant: tiny-1k`` and optionally ``overrides: {d_model: 64}``;
    - ``variant: null`` and ``overrides:`` with HyenaConfig fields (defaults fill the rest);
    - ``init_from:`` a checkpoint directory (``config.json`` + ``model.safetensors``), or a
      registered model ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``, to continue pretraining.
    """

    variant: str | None = Field(None, description=(
        "a released variant (tiny-1k ... large-1m); null with full fields or init_from"))
    overrides: dict[str, Any] = Field(default_factory=dict, description="HyenaConfig fields over the variant's")
    init_from: str | None = Field(None, description="checkpoint dir or models:/NAME@ALIAS to continue pretraining")

    def validate(self) -> None:
        if self.variant is not None and self.variant not in VARIANTS:
            raise ValueError(
                f"model.variant={self.variant!r} is not a released variant; valid choices: {', '.join(VARIANTS)}"
            )
        valid = HyenaConfig.field_names()
        for key in self.overrides:
            if key not in valid:
                raise ValueError(f"model.overrides.{key} is not a HyenaConfig field; valid fields: {', '.join(valid)}")
        if self.init_from is not None and self.variant is not None:
            raise ValueError(
                "model.init_from and model.variant are exclusive: the architecture comes from the checkpoint; "
                "set model.variant to null"
            )
        if self.init_from is not None:
            fixed = sorted(set(self.overrides) - _REGULARISATION_FIELDS)
            if fixed:
                raise ValueError(
                    f"model.overrides.{fixed[0]} cannot change a model loaded with model.init_from; only "
                    f"{', '.join(sorted(_REGULARISATION_FIELDS))} may be overridden"
                )
        if self.variant is None and self.init_from is None and not self.overrides:
            raise ValueError(
                f"set model.variant (one of {', '.join(VARIANTS)}), model.overrides (HyenaConfig fields) "
                "or model.init_from (a checkpoint directory or models:/NAME@ALIAS)"
            )
        if self.init_from is None:
            self.hyena_config()  # field values are checked by HyenaConfig itself

    def hyena_config(self) -> HyenaConfig:
        """The architecture, for a job that does not start from a checkpoint."""
        if self.init_from is not None:
            raise ValueError("the architecture of an init_from model is read from its checkpoint")
        try:
            if self.variant is not None:
                return HyenaConfig.variant(self.variant, **self.overrides)
            return HyenaConfig.from_dict(dict(self.overrides))
        except (ConfigValueError, TypeError) as err:
            raise ValueError(f"model.overrides: {err}") from None


# Fields that do not change the architecture or the weights' meaning.
_REGULARISATION_FIELDS = {"embed_dropout", "resid_dropout", "hyena_dropout"}


@section
class StageSpec:
    """An explicit warm-up stage. ``micro_batch`` null = the train.micro_batch policy."""

    length: int
    steps: int
    micro_batch: int | None = None


@section
class OptimizerSection:
    """AdamW with HyenaDNA's weight-decay groups, linear warm-up then cosine decay (Nguyen et al.
    2023, appendix A.2), and how a worker runs its steps: the fields the pretraining and the
    fine-tuning `train:` sections share (train.loop.build_optimizer reads them)."""

    lr: float = Field(6e-4, description="peak AdamW learning rate (warm-up, cosine to min_lr_ratio x lr)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    weight_decay: float = Field(0.1, description="none on the implicit-filter MLP, biases and norms (HyenaDNA's groups)")
    warmup_fraction: float = Field(0.01, description="linear lr warm-up, fraction of all steps")
    min_lr_ratio: float = Field(0.1, description="cosine floor, fraction of lr")
    grad_clip: float = Field(1.0, description="max global grad norm; 0 disables")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on GPU, fp32 on CPU")
    activation_checkpointing: bool = Field(False, description="recompute block activations in backward (less memory)")
    seed: int = Field(0, description="model or head init, dropout and data order")
    log_every: int = Field(10, description="steps between reports to the driver (per-step metrics are all logged)")

    def validate(self) -> None:
        if self.log_every < 1:
            raise ValueError(f"train.log_every must be >= 1, got {self.log_every}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("train.weight_decay and train.grad_clip must be >= 0")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"train.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def check_counts(section: Any, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    """ValueError naming the first of `required` below 1, or of `optional` set (not null) below 1."""
    for key in required:
        if getattr(section, key) < 1:
            raise ValueError(f"train.{key} must be >= 1, got {getattr(section, key)}")
    for key in optional:
        value = getattr(section, key)
        if value is not None and value < 1:
            raise ValueError(f"train.{key} must be >= 1 or null, got {value}")


@section
class TrainSection(OptimizerSection):
    """The HyenaDNA recipe (Nguyen et al. 2023, appendix A.2) and its warm-up."""

    steps: int | None = Field(None, description="optimizer steps in total (null with explicit stages: their sum)")
    global_batch: int = Field(256, description="sequences per optimizer step, the same in every stage")
    micro_batch: int = Field(8, description="sequences per forward per worker at the target length (memory budget)")
    target_length: int | None = Field(None, description="tokens per window in the last stage; null = model l_max - 2")
    start_length: int = Field(64, description="first stage length; doubled until target_length")
    warmup_stage_steps: int | None = Field(None, description="steps per warm-up stage; null = half the run, shared")
    stages: tuple[StageSpec, ...] | None = Field(None, description="explicit stages instead of the doubling")
    val_every: int | None = Field(None, description="periodic validation every N steps (plus at each stage end)")
    val_windows: int = Field(64, description="held-out windows per validation")
    baseline_orders: tuple[int, ...] = Field((1, 3, 5, 7), description="k of the order-k Markov baselines")

    def validate(self) -> None:
        check_counts(self, ("global_batch", "micro_batch", "start_length", "val_windows"),
                           ("steps", "target_length", "warmup_stage_steps", "val_every"))
        super().validate()
        for k in self.baseline_orders:
            if not 0 <= k <= 10:
                raise ValueError(f"train.baseline_orders: order {k} is outside 0..10 (5^(k+1) counts)")
        if self.stages is not None and not self.stages:
            raise ValueError("train.stages is empty; list {length, steps} stages or set it to null")


@section
class ScalingSection:
    """Ray Train workers. Leave CPUs for Ray Data: cpus_per_worker x num_workers < cluster CPUs."""

    num_workers: int = Field(2, description="Ray Train workers (one per GPU on a GPU cluster)")
    use_gpu: bool = Field(False, description="true: each worker gets gpus_per_worker GPUs")
    cpus_per_worker: float = Field(1.0, description="fractional values are fine (0.5 on a 2-core laptop)")
    gpus_per_worker: float = Field(1.0, description="only with use_gpu")
    threads_per_worker: int | None = Field(None, description=(
        "torch.set_num_threads; null = max(1, floor(cpus_per_worker))"))
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="auto: nccl on GPU, gloo on CPU")
    address: str | None = Field(None, description="Ray cluster address; null = RAY_ADDRESS or a local Ray")

    def validate(self) -> None:
        from hyena_platform.local_ray import check_address

        check_address(self.address, key="scaling.address")
        if self.num_workers < 1:
            raise ValueError(f"scaling.num_workers must be >= 1, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"scaling.cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.use_gpu and self.gpus_per_worker <= 0:
            raise ValueError(f"scaling.gpus_per_worker must be > 0 with use_gpu, got {self.gpus_per_worker}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ValueError(f"scaling.threads_per_worker must be >= 1, got {self.threads_per_worker}")
        if self.backend == "nccl" and not self.use_gpu:
            raise ValueError("scaling.backend=nccl needs scaling.use_gpu=true; use gloo (or auto) on CPU")

    @property
    def torch_threads(self) -> int:
        return self.threads_per_worker or max(1, int(self.cpus_per_worker))

    @property
    def torch_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "nccl" if self.use_gpu else "gloo"


@section
class CheckpointSection:
    """Ray Train checkpoints: where, how often, how many; and the worker-failure budget."""

    every_steps: int = Field(500, description="optimizer steps between checkpoints")
    keep: int = Field(3, description="checkpoints kept (the newest K)")
    storage_path: str = Field("runs", description=(
        "local directory (relative to the working directory) or a URI (s3://...)"))
    name: str | None = Field(None, description="run name; null = the job file's name. Same name = resume.")
    max_failures: int = Field(3, description="worker-group restarts from the last checkpoint before giving up")

    def validate(self) -> None:
        if self.every_steps < 1 or self.keep < 1:
            raise ValueError("checkpoint.every_steps and checkpoint.keep must be >= 1")
        if self.max_failures < -1:
            raise ValueError("checkpoint.max_failures must be >= 0 (or -1 for unlimited)")
        if self.name is not None and not _NAME.fullmatch(self.name):
            raise ValueError(
                f"checkpoint.name={self.name!r}: use letters, digits, '.', '_' and '-' only"
            )

    def run_name(self, source: str | Path | None, default: str) -> str:
        """`name`, else the job file's stem (jobs/pretrain_local.yaml -> pretrain_local), else `default`."""
        if self.name:
            return self.name
        stem = Path(source).stem if source else default
        return re.sub(r"[^A-Za-z0-9._-]", "-", stem) or default


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@section
class PretrainJob:
    kind: Literal["pretrain"] = kind_field("pretrain")
    model: ModelSection
    data: DataConfig
    train: TrainSection
    scaling: ScalingSection
    checkpoint: CheckpointSection
    tracking: TrackingConfig
    submission: SubmissionSection = submission_field("hyena pretrain")

    def run_name(self, source: str | Path | None = None) -> str:
        return self.checkpoint.run_name(source, "pretrain")

    def stages(self, l_max: int) -> tuple[Stage, ...]:
        """The resolved warm-up for a model of maximum length `l_max`."""
        t = self.train
        target = t.target_length if t.target_length is not None else l_max - 2
        explicit = [(s.length, s.steps, s.micro_batch) for s in t.stages] if t.stages else None
        return plan_stages(
            global_batch=t.global_batch, micro_batch=t.micro_batch, num_workers=self.scaling.num_workers,
            target_length=target, l_max=l_max, steps=t.steps, start_length=t.start_length,
            warmup_stage_steps=t.warmup_stage_steps, explicit=explicit,
        )

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> PretrainJob:
    """Read, override and validate a pretraining job file; ConfigError on any problem."""
    job = load_config(PretrainJob, path, overrides)
    check_job(job, source=str(path))
    return job


def job_from_mapping(data: dict[str, Any], *, source: str = "<job>") -> PretrainJob:
    job = from_mapping(PretrainJob, data, source=source)
    check_job(job, source=source)
    return job


def check_job(job: PretrainJob, *, source: str, l_max: int | None = None) -> tuple[Stage, ...] | None:
    """Cross-section checks. `l_max` is needed for init_from models (known only once loaded)."""
    if l_max is None:
        if job.model.init_from is not None:
            return None
        l_max = job.model.hyena_config().l_max
    try:
        return job.stages(l_max)
    except ScheduleError as err:
        raise ConfigError(f"{source}: {err}") from None
