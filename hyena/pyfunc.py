"""A checkpoint directory as an MLflow ``python_function`` model, without importing MLflow.

MLflow's loader-module protocol: a registered version's MLmodel names this module as
``loader_module`` and MLflow calls ``_load_pyfunc(data_path)`` with the checkpoint directory
kept in the model's ``data/`` (our safetensors format, never a pickle); the returned object's
``predict(model_input, params)`` answers ``mlflow.pyfunc.load_model(...).predict`` and
``mlflow models serve``. The model artifact carries this package (MLflow ``code_paths``), so a
serving environment needs only torch, numpy, safetensors and pandas.

Input: a table with a ``sequence`` column of DNA strings (A C G T N, IUPAC codes, either case).
``params["output"]`` chooses what comes back, one row per sequence:

- ``log_likelihood`` (causal LMs): ``log_likelihood``, the natural-log probability of each base
  given the bases before it, the first conditioned on [SEP] exactly as ``hyena score`` reads a
  chromosome's start (NaN at N); ``mean_log_likelihood`` over the non-N bases; ``bases``.
- ``embedding``: the final hidden states (HyenaDNA sec. 4: features for downstream tasks) pooled
  over the bases (``params["pooling"]``: ``mean`` or ``last``); no special tokens.
- ``class_probabilities`` (fine-tuned classification heads, hyena.heads): softmax over the
  classes (sigmoid for multi-label heads), per sequence or per base for token heads, and the
  most likely label; ``prediction`` for regression heads (the predicted values).

Sequences of equal length share a forward pass (at most ``params["batch_size"]``); lengths never
mix in a batch and nothing is padded, so a row's numbers depend on the other rows of the request
only through float rounding of the batched matrix products (~1e-7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from hyena.tokenizer import N, SEP, Tokenizer, TokenizerError

POOLINGS = ("mean", "last")
DEFAULT_BATCH_SIZE = 8


class PredictError(ValueError):
    """A request the model cannot answer: a bad sequence, an unknown output or parameter."""


# ------------------------------------------------------------------------------------ outputs
# Each output maps (model, same-length token ids (B, L), params) to one dict per row. A new
# model kind (a regression head, ...) adds a function here and a line in `supported_outputs`.


def _log_likelihood(model: torch.nn.Module, ids: torch.Tensor, params: dict) -> list[dict]:
    inputs = torch.cat([torch.full_like(ids[:, :1], SEP), ids[:, :-1]], dim=1)  # [SEP] + x[:-1]
    logp = torch.log_softmax(model(inputs).logits.float(), dim=-1)  # (B, L, V)
    per_base = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # (B, L)
    per_base = per_base.masked_fill(ids == N, float("nan")).numpy()
    rows = []
    for row in per_base:
        known = row[~np.isnan(row)]
        rows.append({"log_likelihood": row, "bases": int(row.size),
                     "mean_log_likelihood": float(known.mean()) if known.size else float("nan")})
    return rows


def _embedding(model: torch.nn.Module, ids: torch.Tensor, params: dict) -> list[dict]:
    from hyena.embedding import embed  # the library's pooling: final LayerNorm output, bases only

    vectors = embed(model, list(ids), pooling=params["pooling"], batch_size=ids.shape[0])  # (B, D)
    return [{"embedding": vector} for vector in vectors.numpy()]


def _class_probabilities(model: torch.nn.Module, ids: torch.Tensor, params: dict) -> list[dict]:
    from hyena.heads import probabilities

    logits = model(ids).logits  # (B, C) sequence head or (B, L, C) token head
    probs = probabilities(logits, model.head_config.problem_type).numpy()
    names = class_labels(model)
    return [{"probabilities": p, "label": names[int(p.argmax())] if p.ndim == 1 else [names[int(i)] for i in p.argmax(-1)]}
            for p in probs]


def _prediction(model: torch.nn.Module, ids: torch.Tensor, params: dict) -> list[dict]:
    values = model(ids).logits.float().numpy()  # regression: (B, T) per sequence or (B, L, T) per base
    return [{"prediction": v} for v in values]


OUTPUTS: dict[str, Callable[[torch.nn.Module, torch.Tensor, dict], list[dict]]] = {
    "log_likelihood": _log_likelihood,
    "embedding": _embedding,
    "class_probabilities": _class_probabilities,
    "prediction": _prediction,
}
OUTPUT_COLUMNS = {"log_likelihood": ("log_likelihood", "bases", "mean_log_likelihood"), "embedding": ("embedding",),
                  "class_probabilities": ("probabilities", "label"), "prediction": ("prediction",)}


def supported_outputs(model: torch.nn.Module) -> tuple[str, ...]:
    """The outputs this model answers, the default first."""
    head = getattr(model, "head_config", None)  # hyena.heads task models
    if head is not None:
        return ("prediction" if head.problem_type == "regression" else "class_probabilities", "embedding")
    if hasattr(model, "lm_head"):
        return ("log_likelihood", "embedding")
    return ("embedding",)


def class_labels(model: torch.nn.Module) -> list[str]:
    """The head's label names, else "0", "1", ..."""
    head = model.head_config
    return list(head.label_names) or [str(i) for i in range(head.num_labels)]


# --------------------------------------------------------------------------------- the model


class HyenaPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: a loaded model and its ``predict``."""

    def __init__(self, model: torch.nn.Module, source: str = "<model>"):
        self.model = model.eval()
        self.source = source
        self.outputs = supported_outputs(model)
        self.tokenizer = Tokenizer()

    @property
    def default_params(self) -> dict[str, Any]:
        return {"output": self.outputs[0], "pooling": "mean", "batch_size": DEFAULT_BATCH_SIZE}

    def predict(self, model_input: Any, params: dict[str, Any] | None = None):
        """A pandas DataFrame, one row per input sequence, in input order."""
        import pandas as pd

        params = self._check_params(params)
        sequences = _sequences(model_input)
        ids = [self._encode(s, i) for i, s in enumerate(sequences)]
        rows: list[dict | None] = [None] * len(ids)
        fn = OUTPUTS[params["output"]]
        with torch.inference_mode():
            for batch in _same_length_batches(ids, params["batch_size"]):
                stacked = torch.from_numpy(np.stack([ids[i] for i in batch])).long()
                for i, row in zip(batch, fn(self.model, stacked, params)):
                    rows[i] = row
        return pd.DataFrame(rows, columns=None if rows else list(OUTPUT_COLUMNS[params["output"]]))

    def _check_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        merged = {**self.default_params, **{k: v for k, v in (params or {}).items() if v is not None}}
        unknown = sorted(set(merged) - set(self.default_params))
        if unknown:
            raise PredictError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(self.default_params)}")
        if merged["output"] not in self.outputs:
            raise PredictError(f"output={merged['output']!r} is not available for this model; "
                               f"choose one of {', '.join(self.outputs)}")
        if merged["pooling"] not in POOLINGS:
            raise PredictError(f"pooling={merged['pooling']!r}; choose one of {', '.join(POOLINGS)}")
        if int(merged["batch_size"]) < 1:
            raise PredictError(f"batch_size={merged['batch_size']} must be >= 1")
        merged["batch_size"] = int(merged["batch_size"])
        return merged

    def _encode(self, sequence: Any, row: int) -> np.ndarray:
        if not isinstance(sequence, str) or not sequence:
            raise PredictError(f"row {row}: 'sequence' must be a non-empty DNA string, got {sequence!r:.40}")
        try:
            ids = self.tokenizer.encode(sequence)
        except TokenizerError as err:
            raise PredictError(f"row {row}: {err}") from None
        if ids.size > self.model.config.l_max:
            raise PredictError(f"row {row}: {ids.size} bases is longer than this model's l_max "
                               f"{self.model.config.l_max}; split the sequence into windows")
        return ids


def _sequences(model_input: Any) -> Sequence[Any]:
    """The ``sequence`` column of a DataFrame or dict, or a list of strings."""
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "columns") or isinstance(model_input, dict):
        if "sequence" not in model_input:
            have = list(model_input.columns if hasattr(model_input, "columns") else model_input)
            raise PredictError(f"the input needs a 'sequence' column; it has {have}")
        column = model_input["sequence"]
        return [column] if isinstance(column, str) else list(column)
    return list(model_input)


def _same_length_batches(ids: list[np.ndarray], batch_size: int) -> list[list[int]]:
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        by_length.setdefault(x.size, []).append(i)
    return [group[s:s + batch_size] for group in by_length.values() for s in range(0, len(group), batch_size)]


def load_checkpoint(path: str | Path) -> torch.nn.Module:
    """The model in a checkpoint directory of ours, on the CPU in eval mode: a fine-tuned task
    model (hyena.heads; config.json names its architecture) or a causal LM."""
    import json

    from hyena import heads
    from hyena.checkpoint import CONFIG_FILE, CheckpointError
    from hyena.model import from_pretrained

    config = Path(path) / CONFIG_FILE
    try:
        architecture = json.loads(config.read_text()).get("architecture") if config.is_file() else None
    except (OSError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{config}: not a readable JSON object ({err})") from None
    if architecture in {m.__name__ for m in heads.TASK_MODELS.values()}:
        return heads.from_pretrained(path)
    return from_pretrained(path)


def _load_pyfunc(data_path: str) -> HyenaPyfunc:
    """MLflow's loader-module entry point; `data_path` is the model's checkpoint directory."""
    return HyenaPyfunc(load_checkpoint(data_path), source=str(data_path))
