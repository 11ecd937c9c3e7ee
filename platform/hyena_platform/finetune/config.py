"""The fine-tuning job: one YAML file -> a tree of frozen job sections (hyena_platform.config).

Sections: ``model`` (the base checkpoint), ``task`` (head and problem type), ``data``
(FinetuneDataConfig), ``train`` (optimisation, early stopping), ``baseline`` (the k-mer
baseline), and the pretraining job's own ``scaling``, ``checkpoint``, ``tracking`` and
``submission`` sections (same meaning, same resume rules). Strict like every job file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from hyena_platform.config import apply_overrides, from_mapping, kind_field, load_yaml_mapping, section, to_dict
from hyena_platform.finetune.data_config import FinetuneDataConfig
from hyena_platform.finetune.kmer import BaselineConfig
from hyena_platform.finetune.metrics import METRICS
from hyena_platform.submission import SubmissionSection
from hyena_platform.tracking import TrackingConfig
from hyena_platform.train.config import CheckpointSection, ScalingSection

ProblemType = Literal["single_label_classification", "multi_label_classification", "regression"]
_DROPOUT_FIELDS = ("embed_dropout", "resid_dropout", "hyena_dropout")


@section
class BaseModelSection:
    """The pretrained model to start from: a checkpoint directory (any layout hyena reads) or a
    registered model ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``."""

    init_from: str = Field("", description="required: checkpoint directory or models:/NAME@ALIAS")
    overrides: dict[str, float] = Field(default_factory=dict, description="dropouts only: embed/resid/hyena_dropout")

    def validate(self) -> None:
        if not self.init_from:
            raise ValueError("model.init_from is required: a checkpoint directory or models:/NAME@ALIAS")
        for key in self.overrides:
            if key not in _DROPOUT_FIELDS:
                raise ValueError(f"model.overrides.{key}: only {', '.join(_DROPOUT_FIELDS)} may change when "
                                 "fine-tuning a pretrained model")


@section
class TaskSection:
    """What the head predicts: per sequence or per base; classes, several labels or values."""

    type: Literal["sequence", "token"] = Field("sequence", description="one prediction per sequence, or per base")
    problem_type: ProblemType = Field("single_label_classification", description=(
        "or multi_label_classification, regression"))
    pooling: Literal["last", "mean"] = Field("last", description=(
        "sequence tasks: last real token (causal model) or mean"))
    head_dropout: float = Field(0.0, description="dropout on the pooled / per-token state before the head")

    def validate(self) -> None:
        if not 0 <= self.head_dropout < 1:
            raise ValueError(f"task.head_dropout must be in [0, 1), got {self.head_dropout}")


@section
class FinetuneTrainSection:
    """Optimisation (HyenaDNA's AdamW groups and schedule), validation, early stopping."""

    epochs: int = Field(3, description="passes over the train split (ignored when steps is set)")
    steps: int | None = Field(None, description="optimizer steps in total instead of epochs")
    batch_size: int = Field(16, description="sequences per optimizer step, all workers together")
    lr: float = Field(1e-4, description="peak AdamW learning rate (warm-up, cosine to min_lr_ratio x lr)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    weight_decay: float = Field(0.01, description="none on the implicit filter, biases and norms (HyenaDNA's groups)")
    warmup_fraction: float = Field(0.05, description="linear lr warm-up, fraction of all steps")
    min_lr_ratio: float = Field(0.1, description="cosine floor, fraction of lr")
    grad_clip: float = Field(1.0, description="0 disables")
    freeze_backbone: bool = Field(False, description="true: train the head only (linear probe)")
    class_weights: Literal["none", "balanced"] | tuple[float, ...] = Field("none", description=(
        "classification loss weights"))
    metric: str | None = Field(None, description=(
        "validation metric picking the best checkpoint; null: mcc / macro_f1 / pearson"))
    eval_every: int | None = Field(None, description="steps between validations; null = once per epoch")
    patience: int | None = Field(None, description=(
        "validations without improvement before stopping early; null = never"))
    eval_batch: int = Field(32, description="sequences per forward in validation and test")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on GPU, fp32 on CPU")
    activation_checkpointing: bool = Field(False, description=(
        "recompute block activations in backward (less memory)"))
    seed: int = Field(0, description="head init, batch order, dropout")
    log_every: int = Field(10, description="steps between reports to the driver")

    def validate(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("steps", "eval_every", "patience"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"train.{key} must be >= 1 or null, got {value}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("train.lr must be > 0; train.weight_decay and train.grad_clip >= 0")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("train.warmup_fraction must be in [0, 1) and train.min_lr_ratio in [0, 1]")
        if isinstance(self.class_weights, tuple) and any(w <= 0 for w in self.class_weights):
            raise ValueError("train.class_weights: every weight must be > 0")


@section
class FinetuneTrackingConfig(TrackingConfig):
    """`tracking:` as for pretraining, with the fine-tuning experiment and model name by default."""

    experiment: str = Field("hyena-finetune", description="MLflow experiment of the fine-tuning runs")
    register_as: str = Field("hyenadna-finetuned", description="name it after the task: hyenadna-species, ...")


@section
class FinetuneJob:
    kind: Literal["finetune"] = kind_field("finetune")
    model: BaseModelSection = Field(default_factory=BaseModelSection)
    task: TaskSection = Field(default_factory=TaskSection)
    data: FinetuneDataConfig = Field(default_factory=FinetuneDataConfig)
    train: FinetuneTrainSection = Field(default_factory=FinetuneTrainSection)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    scaling: ScalingSection = Field(default_factory=lambda: ScalingSection(num_workers=1))
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    tracking: FinetuneTrackingConfig = Field(default_factory=FinetuneTrackingConfig)
    submission: SubmissionSection = Field(default_factory=SubmissionSection)

    def validate(self) -> None:
        metric = self.metric
        valid = METRICS[self.task.problem_type]
        if metric not in valid:
            raise ValueError(f"train.metric={metric!r} is not a {self.task.problem_type} metric; valid: {', '.join(valid)}")
        if self.task.type == "token" and self.task.problem_type != "single_label_classification":
            raise ValueError("token tasks from BED labels are classes: task.problem_type single_label_classification")
        if self.train.class_weights != "none" and self.task.problem_type != "single_label_classification":
            raise ValueError("train.class_weights applies to single-label classification only")
        if self.train.batch_size % self.scaling.num_workers:
            raise ValueError(f"train.batch_size={self.train.batch_size} must be a multiple of "
                             f"scaling.num_workers={self.scaling.num_workers}")

    @property
    def metric(self) -> str:
        from hyena_platform.finetune.metrics import DEFAULT_METRIC

        return self.train.metric or DEFAULT_METRIC[self.task.problem_type]

    def run_name(self, source: str | Path | None = None) -> str:
        if self.checkpoint.name:
            return self.checkpoint.name
        stem = Path(source).stem if source else "finetune"
        return re.sub(r"[^A-Za-z0-9._-]", "-", stem) or "finetune"

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_finetune_job(path: str | Path, overrides: Sequence[str] = ()) -> FinetuneJob:
    """Read, override and validate a fine-tuning job file; ConfigError on any problem."""
    data = load_yaml_mapping(path)
    apply_overrides(data, overrides, source=str(path))
    return from_mapping(FinetuneJob, data, source=str(path))
