"""Scores of a task model over a split, for the validation/test metrics (pure torch + numpy)."""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import numpy as np
import torch

from hyena.heads import probabilities
from hyena_platform.finetune.batches import collate
from hyena_platform.finetune.examples import Split
from hyena_platform.finetune.metrics import compute_metrics


@torch.no_grad()
def split_scores(model: torch.nn.Module, split: Split, indices: Sequence[int], *, task: str, problem_type: str,
                 batch_size: int, device: torch.device | str = "cpu",
                 autocast: Callable = contextlib.nullcontext) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of the examples at `indices`: sequence tasks one row per example, token
    tasks one row per real base (padding dropped). Scores are class probabilities (softmax or
    sigmoid) or regression predictions."""
    was_training = model.training
    model.eval()
    labels, scores = [], []
    for i in range(0, len(indices), batch_size):
        batch = collate(split, indices[i:i + batch_size], task=task, problem_type=problem_type)
        with autocast():
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).logits
        p = probabilities(logits, problem_type).cpu()
        if task == "token":
            mask = batch["attention_mask"]
            labels.append(batch["labels"][mask].numpy())
            scores.append(p[mask].numpy())
        else:
            labels.append(batch["labels"].numpy())
            scores.append(p.numpy())
    model.train(was_training)
    if not labels:
        return np.zeros((0,)), np.zeros((0, 1))
    return np.concatenate(labels), np.concatenate(scores)


def split_metrics(labels: np.ndarray, scores: np.ndarray, problem_type: str) -> dict[str, float]:
    return compute_metrics(problem_type, labels, scores)
