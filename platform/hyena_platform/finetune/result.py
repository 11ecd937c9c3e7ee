"""What a fine-tuning run leaves behind: the best checkpoint's metrics on valid and test beside
the k-mer baseline's, read back from MLflow for a reused run; and the model card its registered
version carries (task, labels, metrics vs the baseline, base-model lineage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hyena_platform import tracking
from hyena_platform.finetune.kmer import describe
from hyena_platform.finetune.metrics import METRICS
from hyena_platform.finetune.paired import PairedComparison
from hyena_platform.model_card import ModelCard
from hyena_platform.train.result import MODEL_VERSION_TAG, RegisteredVersion


PAIRED_PREFIX = "paired/test/"  # the run's metrics of the paired comparison (PairedComparison.to_metrics)


@dataclass
class FinetuneResult(RegisteredVersion):
    run_id: str
    run_name: str
    tracking_uri: str
    model_name: str
    model_version: int
    alias: str
    metric: str
    problem_type: str
    model_metrics: dict[str, dict[str, float]]  # valid/test -> metric -> value (best checkpoint)
    baseline_metrics: dict[str, dict[str, float]]
    steps: int
    best_step: int | None
    stopped_early: bool
    checkpoint_path: str
    data_hash: str
    reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    baseline_features: str = ""  # what the baseline counts (FinetuneJob.baseline_features)
    paired: PairedComparison | None = None  # the model's test rows against the baseline's

    def table(self) -> str:
        """Model (best checkpoint) beside the k-mer baseline, valid and test, what the baseline
        counted, and the paired comparison on test."""
        table = metrics_table(self.problem_type, self.metric, self.model_metrics, self.baseline_metrics)
        return (table + (f"\nk-mer: {self.baseline_features}" if self.baseline_features else "")
                + (self._paired_lines() if self.paired else ""))

    def _paired_lines(self) -> str:
        return "".join(f"\n{head}{line}" for head, line in zip(("test, row by row: ", "  "), self.paired.lines()))


def metrics_table(problem_type: str, metric: str, model: dict, baseline: dict) -> str:
    cols = [("model", "valid"), ("model", "test"), ("k-mer", "valid"), ("k-mer", "test")]
    lines = [f"{'metric':<10}" + "".join(f"{f'{who} {split}':>13}" for who, split in cols)]
    for m in METRICS[problem_type]:
        cells = []
        for who, split in cols:
            value = ((model if who == "model" else baseline).get(split) or {}).get(m)
            cells.append(f"{value:13.4f}" if value is not None and np.isfinite(value) else f"{'-':>13}")
        lines.append(f"{m + ('*' if m == metric else ''):<10}" + "".join(cells))
    return "\n".join(lines)


def baseline_from_run(tcfg, run_id: str, problem_type: str) -> dict[str, dict[str, float]]:
    """The k-mer baseline's valid/test metrics logged in the run ({} if not yet fitted)."""
    metrics = tracking.get_run(tcfg, run_id).data.metrics
    out = {s: {k: metrics[f"baseline/{s}/{k}"] for k in METRICS[problem_type] if f"baseline/{s}/{k}" in metrics}
           for s in ("valid", "test")}
    return out if out["test"] else {}


def reused_result(tcfg, run, *, name: str, metric: str, problem_type: str) -> FinetuneResult:
    """The result of a run that had already finished (nothing was trained)."""
    metrics = run.data.metrics
    names = METRICS[problem_type]
    model_metrics = {s: {k: metrics[f"{p}/{k}"] for k in names if f"{p}/{k}" in metrics}
                     for s, p in (("valid", "best_valid"), ("test", "test"))}
    return FinetuneResult(
        run_id=run.info.run_id, run_name=name, tracking_uri=tcfg.uri, model_name=tcfg.register_as,
        model_version=int(run.data.tags[MODEL_VERSION_TAG]), alias=tcfg.alias, metric=metric,
        problem_type=problem_type, model_metrics=model_metrics,
        baseline_metrics=baseline_from_run(tcfg, run.info.run_id, problem_type),
        steps=int(run.data.params.get("resolved.steps", 0)), best_step=int(run.data.tags.get("hyena.best_step", 0)),
        stopped_early=False, checkpoint_path=run.data.tags.get("hyena.last_checkpoint", ""),
        data_hash=run.data.tags.get("hyena.data_hash", ""), reused=True,
        baseline_features=baseline_features_from_params(run.data.params),
        paired=PairedComparison.from_metrics(metric, {k.removeprefix(PAIRED_PREFIX): v for k, v in metrics.items()
                                                      if k.startswith(PAIRED_PREFIX)}))


def baseline_features_from_params(params: dict[str, str]) -> str:
    """FinetuneJob.baseline_features of a logged run ("" without a baseline); runs from before
    task.strands existed read forward."""
    if params.get("baseline.enabled", "True") != "True":
        return ""
    return describe(params.get("task.type", "sequence"), params.get("task.strands", "forward"),
                    int(params.get("baseline.max_k", 6)), int(params.get("baseline.context", 96)))


def finetune_card(*, title: str, task: str, model_config: dict, head_config: dict, parameters: int,
                  data: dict[str, Any], data_hash: str, splits: dict[str, int], label_names: tuple[str, ...],
                  metric: str, model_metrics: dict, baseline: dict, lineage: dict[str, Any],
                  baseline_features: str = "", example_sequence: str = "",
                  paired: PairedComparison | None = None) -> ModelCard:
    """The model card of a fine-tuned version: the task and its labels, the best checkpoint's
    valid/test metrics beside the k-mer baseline fitted on the same split (and compared with it
    row by row on test), the base model."""
    rows = []
    for who, source in (("k-mer baseline", baseline), ("model", model_metrics)):  # the summary shows the last
        for split in ("valid", "test"):
            if (source or {}).get(split):
                rows.append({"evaluated": f"{who}, {split}", **source[split]})
    return ModelCard(
        title=title, task=task, architecture={**model_config, **{f"head.{k}": v for k, v in head_config.items()}},
        parameters=parameters, data_hash=data_hash, data={**data, "labels": ", ".join(label_names)},
        splits={k: f"{n:,} examples" for k, n in splits.items()}, metrics=rows, lineage=lineage,
        example_sequence=example_sequence,
        metrics_note=f"The model row is the checkpoint with the best validation {metric} (the one registered). "
                     f"The k-mer baseline is logistic or ridge regression on {baseline_features or 'k-mer frequencies'}, "
                     "fitted on the same train split; a model that does not beat it has learned nothing the counts "
                     "did not know." + (f" Row by row on the same test rows: {'; '.join(paired.lines())}." if paired else ""),
    )
