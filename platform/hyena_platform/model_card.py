"""Model cards: the facts a registered version carries, rendered as Markdown.

A job that registers a model (pretraining, fine-tuning) fills a `ModelCard`; the tracking layer
writes `readme()` as the model's README.md artifact and `summary()` as the version's
description (the MLflow UI renders both as Markdown). Pure string work: no MLflow here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class ModelCard:
    title: str  # one line, e.g. "HyenaDNA tiny-1k pretrained on V. cholerae N16961"
    task: str  # "causal language model (pretraining)", "sequence classification", ...
    architecture: Mapping[str, Any]  # HyenaConfig.to_dict() (and head fields for fine-tuned models)
    parameters: int
    data_hash: str  # content hash of the training data
    data: Mapping[str, Any] = field(default_factory=dict)  # sources and split rules, as given
    splits: Mapping[str, Any] = field(default_factory=dict)  # split -> size or description
    # Final held-out metrics: one row per evaluation (e.g. per warm-up stage), model and
    # baselines side by side; the first key names the row.
    metrics: Sequence[Mapping[str, Any]] = ()
    metrics_note: str = ""  # how to read the metrics (units, which split, which baselines)
    lineage: Mapping[str, Any] = field(default_factory=dict)  # base model, run id, job file, ...
    example_sequence: str = ""  # a real sequence for the input example (bases only)

    def summary(self, outputs: Sequence[str] = ()) -> str:
        """The version description: what it is, its final numbers, where it came from."""
        lines = [f"**{self.title}**", "",
                 f"{self.task}; {_fmt_int(self.parameters)} parameters; "
                 f"d_model {self.architecture.get('d_model')}, n_layer {self.architecture.get('n_layer')}, "
                 f"l_max {self.architecture.get('l_max')}. Training data hash `{self.data_hash}`."]
        if self.metrics:
            lines += ["", _table(self.metrics[-1:])]
        if self.lineage:
            lines += ["", "Lineage: " + "; ".join(f"{k} {_fmt(v)}" for k, v in self.lineage.items()) + "."]
        if outputs:
            lines += ["", "pyfunc outputs (params `output`): " + ", ".join(f"`{o}`" for o in outputs) + "."]
        return "\n".join(lines)

    def readme(self, outputs: Sequence[str] = (), *, model_uri: str = "models:/NAME@ALIAS") -> str:
        """The README.md artifact of the MLflow Model."""
        arch = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in self.architecture.items())
        parts = [
            f"# {self.title}", "",
            f"Task: {self.task}. Parameters: {_fmt_int(self.parameters)} (unique: a tied LM head counts once).", "",
            "## Architecture", "", "HyenaDNA (Nguyen et al. 2023): pre-norm blocks of a Hyena operator and an MLP "
            "over single-nucleotide tokens.", "", "| field | value |", "|---|---|", arch, "",
            "## Training data", "", f"Content hash: `{self.data_hash}`", "",
        ]
        parts += [f"- {k}: {_fmt(v)}" for k, v in self.data.items()]
        if self.splits:
            parts += ["", "Splits:", ""] + [f"- {k}: {_fmt(v)}" for k, v in self.splits.items()]
        if self.metrics:
            parts += ["", "## Held-out metrics", "", _table(self.metrics)]
            if self.metrics_note:
                parts += ["", self.metrics_note]
        if self.lineage:
            parts += ["", "## Lineage", ""] + [f"- {k}: {_fmt(v)}" for k, v in self.lineage.items()]
        parts += ["", "## Use", "", "```python", "import mlflow, pandas as pd",
                  f'model = mlflow.pyfunc.load_model("{model_uri}")',
                  'model.predict(pd.DataFrame({"sequence": ["ACGTTGCA"]}), params={"output": '
                  f'"{outputs[0] if outputs else "log_likelihood"}"}})', "```", "",
                  "Outputs (params `output`): " + (", ".join(f"`{o}`" for o in outputs) or "-")
                  + "; `pooling` (`mean`, `last`) for embeddings; `batch_size`.",
                  "The weights are `data/checkpoint/` in hyena-platform's safetensors format "
                  "(`hyena.pyfunc.load_checkpoint` reads that directory); `code/hyena` is the model library "
                  "that wrote it.", ""]
        return "\n".join(parts)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join([head, *body])


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) or "-"
    return str(value)


def _fmt_int(value: int) -> str:
    return f"{value:,}"


def card_from_tags(model: Any, tags: Mapping[str, Any], description: str | None) -> ModelCard:
    """The card of a version registered without one: architecture and size from the model, the
    rest from the version's tags (data_hash; val_*/test_*/baseline_* metrics; base_model_* and
    run_id lineage), so that every registered version carries a README.md."""
    head = getattr(model, "head_config", None)
    architecture = dict(model.config.to_dict())
    if head is not None:
        architecture.update({f"head.{k}": v for k, v in head.to_dict().items()})
    task = (f"{getattr(model, 'task', '') or 'task'} prediction head, {head.problem_type}" if head is not None
            else "causal language model (next-base prediction)")
    tags = {k: str(v) for k, v in tags.items()}
    metrics = {k: _number(v) for k, v in tags.items() if k.startswith(("val_", "test_", "baseline_"))}
    lineage = {k: v for k, v in tags.items() if k.startswith("base_model") or k == "run_id"}
    return ModelCard(
        title=(description or "HyenaDNA model").splitlines()[0], task=task, architecture=architecture,
        parameters=sum(p.numel() for p in model.parameters()), data_hash=tags.get("data_hash", "not recorded"),
        metrics=[{"split": "held-out", **metrics}] if metrics else (), lineage=lineage,
        data={k: v for k, v in tags.items() if k in ("task_type", "problem_type", "label_names", "metric")},
    )


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
