"""The fine-tuning job: one YAML file -> a tree of frozen job sections (hyena_platform.config).

Sections: ``model`` (the base checkpoint), ``task`` (head and problem type), ``data``
(FinetuneDataConfig), ``train`` (optimisation, early stopping), ``baseline`` (the k-mer
baseline), and the pretraining job's own ``scaling``, ``checkpoint``, ``tracking`` and
``submission`` sections (same meaning, same resume rules). Strict like every job file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from hyena_platform.config import apply_overrides, from_mapping, kind_field, load_yaml_mapping, section, to_dict
from hyena_platform.finetune.data_config import FinetuneDataConfig
from hyena_platform.finetune.kmer import BaselineConfig, describe
from hyena_platform.finetune.metrics import METRICS
from hyena_platform.submission import SubmissionSection
from hyena_platform.tracking import TrackingConfig
from hyena_platform.train.config import CheckpointSection, OptimizerSection, ScalingSection, check_counts

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
    """What the head predicts: per sequence or per base; classes, several labels or values.

    `strands` (hyena.heads.HeadConfig.strands): the model is causal, so with `forward` a base's
    state has read only the bases before it, half of what a per-base label needs (a gene's start
    codon lies downstream). `both` also reads the reverse complement and gives the head both
    reads' states, at twice the compute; the k-mer baseline of a token task then counts the
    bases on both sides too, so the bar stays fair."""

    type: Literal["sequence", "token"] = Field("sequence", description="one prediction per sequence, or per base")
    problem_type: ProblemType = Field("single_label_classification", description=(
        "or multi_label_classification, regression"))
    pooling: Literal["last", "mean"] = Field("last", description=(
        "sequence tasks: last real token (causal model) or mean"))
    strands: Literal["forward", "both"] = Field("forward", description=(
        "both: the head reads the sequence and its reverse complement (per base: the bases on both sides; "
        "2x compute); forward: the causal read only"))
    token_mlp: int = Field(0, description=(
        "sequence tasks: width of a dense + ReLU layer on every base's state before pooling (a learned "
        "k-mer profile, hyena.heads); 0: pool the states themselves"))
    head_dropout: float = Field(0.0, description="dropout on the pooled / per-token state before the head")

    def validate(self) -> None:
        if not 0 <= self.head_dropout < 1:
            raise ValueError(f"task.head_dropout must be in [0, 1), got {self.head_dropout}")
        if self.token_mlp < 0:
            raise ValueError(f"task.token_mlp must be a width >= 0 (0: none), got {self.token_mlp}")
        if self.token_mlp and self.type != "sequence":
            raise ValueError("task.token_mlp applies to sequence tasks only (a token task's head already reads "
                             "every base); remove it or set task.type: sequence")


@section
class FinetuneTrainSection(OptimizerSection):
    """Optimisation (HyenaDNA's AdamW groups and schedule), validation, early stopping."""

    # Fine-tuning's defaults for the optimizer fields (their meaning: OptimizerSection).
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    epochs: int = Field(3, description="passes over the train split (ignored when steps is set)")
    steps: int | None = Field(None, description="optimizer steps in total instead of epochs")
    batch_size: int = Field(16, description="sequences per optimizer step, all workers together")
    freeze_backbone: bool = Field(False, description="true: train the head only (linear probe)")
    head_init: Literal["random", "probe"] = Field("random", description=(
        "probe: before the first step, fit the head on the frozen backbone's standardised features "
        "(scikit-learn's logistic/ridge regression, C picked on valid), then fine-tune from it (LP-FT)"))
    reverse_complement: bool = Field(False, description=(
        "sequence tasks: read each training example on either strand (coin per example and step)"))
    class_weights: Literal["none", "balanced"] | tuple[float, ...] = Field("none", description=(
        "classification loss weights"))
    metric: str | None = Field(None, description=(
        "validation metric picking the best checkpoint; null: mcc / macro_f1 / pearson"))
    eval_every: int | None = Field(None, description="steps between validations; null = once per epoch")
    patience: int | None = Field(None, description=(
        "validations without improvement before stopping early; null = never"))
    eval_batch: int = Field(32, description="sequences per forward in validation and test")

    def validate(self) -> None:
        check_counts(self, ("epochs", "batch_size", "eval_batch"), ("steps", "eval_every", "patience"))
        super().validate()
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
    model: BaseModelSection
    task: TaskSection
    data: FinetuneDataConfig
    train: FinetuneTrainSection
    baseline: BaselineConfig
    scaling: ScalingSection = Field(default_factory=lambda: ScalingSection(num_workers=1))
    checkpoint: CheckpointSection
    tracking: FinetuneTrackingConfig
    submission: SubmissionSection

    def validate(self) -> None:
        metric = self.metric
        valid = METRICS[self.task.problem_type]
        if metric not in valid:
            raise ValueError(f"train.metric={metric!r} is not a {self.task.problem_type} metric; valid: {', '.join(valid)}")
        if self.task.type == "token" and self.task.problem_type != "single_label_classification":
            raise ValueError("token tasks from BED labels are classes: task.problem_type single_label_classification")
        if self.train.reverse_complement and self.task.type != "sequence":
            raise ValueError("train.reverse_complement applies to sequence tasks only (per-base labels are stranded)")
        if self.train.class_weights != "none" and self.task.problem_type != "single_label_classification":
            raise ValueError("train.class_weights applies to single-label classification only")
        if self.train.batch_size % self.scaling.num_workers:
            raise ValueError(f"train.batch_size={self.train.batch_size} must be a multiple of "
                             f"scaling.num_workers={self.scaling.num_workers}")

    @property
    def metric(self) -> str:
        from hyena_platform.finetune.metrics import DEFAULT_METRIC

        return self.train.metric or DEFAULT_METRIC[self.task.problem_type]

    @property
    def baseline_features(self) -> str:
        """What the k-mer baseline counts, in words (the progress, the table and the model card say it)."""
        return describe(self.task.type, self.task.strands, self.baseline.max_k, self.baseline.context)

    def run_name(self, source: str | Path | None = None) -> str:
        return self.checkpoint.run_name(source, "finetune")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_finetune_job(path: str | Path, overrides: Sequence[str] = ()) -> FinetuneJob:
    """Read, override and validate a fine-tuning job file; ConfigError on any problem."""
    data = load_yaml_mapping(path)
    apply_overrides(data, overrides, source=str(path))
    return from_mapping(FinetuneJob, data, source=str(path))
