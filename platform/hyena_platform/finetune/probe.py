"""Linear probing before fine-tuning (LP-FT): the head is fitted on the frozen backbone first.

A new linear head on pooled HyenaDNA states learns slowly under Adam: the pooled features are
strongly correlated and far from unit scale (on the species task, eight epochs of Adam on the
head alone reached validation MCC 0.75-0.83 where a standardised logistic regression on the same
frozen features reaches 0.95), and a few epochs of full fine-tuning land below the probe. Kumar
et al. 2022 ("Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution")
fit the head first on the frozen features (linear probing), then fine-tune everything from there.

`train.head_init: probe` does that inside the workers, before the first step of a fresh run:

    features = frozen pooled (or per-base) features of the train and valid splits, each worker
               scoring its share, gathered on all workers
    fit_into_head(model, ...)     # fit_probe: standardise; scikit-learn's logistic / ridge regression,
                                  # C on valid; install: the head's FeatureScaler buffers and decoder

Every worker fits the same probe on the same gathered rows, so the weights agree without a
broadcast. The head keeps the standardisation (hyena.heads.FeatureScaler), so the fine-tuned
model computes exactly what was fitted and is saved with it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from hyena.heads import IGNORE_INDEX
from hyena_platform.finetune.batches import collate
from hyena_platform.finetune.examples import Split
from hyena_platform.finetune.metrics import better, compute_metrics

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # inverse regularisation strengths, picked on valid
MAX_ROWS = 200_000  # per-base tasks: the probe fits on at most this many bases of a split (seeded)


@dataclass(frozen=True)
class Probe:
    """A linear model on standardised features: logits = coef @ ((x - mean) / scale) + intercept."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    coef: np.ndarray  # (num_labels, D)
    intercept: np.ndarray  # (num_labels,)
    C: float
    valid_metrics: dict[str, float]


@torch.no_grad()
def split_features(model, split: Split, indices: Sequence[int], *, task: str, problem_type: str, batch_size: int,
                   device: torch.device | str = "cpu", autocast: Callable = contextlib.nullcontext,
                   max_rows: int = MAX_ROWS, seed: int = 0, both_strands: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of the frozen model: one row per example (sequence tasks, the pooled
    state the head reads) or per labelled base (token tasks); at most `max_rows` (seeded sample).
    `both_strands` (sequence tasks trained with `train.reverse_complement`) adds a row for each
    example's reverse complement: the head must fit what training shows it, and a both-strands
    head sees a flipped example's two halves swapped."""
    assert task == "sequence" or not both_strands, "per-base labels are stranded (FinetuneJob.validate)"
    was_training = model.training
    model.eval()
    swap = both_strands and _flip_swaps_halves(model)
    feats, labels = [], []
    for flip in (False, True) if both_strands and not swap else (False,):
        for i in range(0, len(indices), batch_size):
            chunk = indices[i:i + batch_size]
            batch = collate(split, chunk, task=task, problem_type=problem_type,
                            flip=np.full(len(chunk), flip) if flip else None)
            x, y = _batch_features(model, batch, task, device, autocast)
            feats.append(x)
            labels.append(y)
    model.train(was_training)
    x, y = np.concatenate(feats), np.concatenate(labels)
    if swap:
        half = x.shape[1] // 2
        x, y = np.concatenate([x, np.concatenate([x[:, half:], x[:, :half]], axis=1)]), np.concatenate([y, y])
    if len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def _flip_swaps_halves(model) -> bool:
    """Whether a reverse-complemented example's features are its own with the halves swapped: a
    both-strands sequence head reads x and rc(x) and pools each read alike, so rc(x) gives the
    same two reads in the other order. Reading them again would double the probe's train-split
    feature pass for the same numbers. A pooler mixes the halves: no swap."""
    return model.task == "sequence" and model.head_config.strands == "both" and model.pooler is None


def _batch_features(model, batch: dict, task: str, device, autocast) -> tuple[np.ndarray, np.ndarray]:
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    with autocast():
        if task == "token":
            x, mask, _ = model.token_features(ids, mask)
        else:
            x, _ = model.pooled_features(ids, mask)
    y = batch["labels"]
    if task == "token":
        keep = mask.cpu() & y.ne(IGNORE_INDEX)
        x, y = x[keep.to(x.device)], y[keep]
    return x.float().cpu().numpy(), y.numpy()


def fit_probe(train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray], *, problem_type: str,
              num_labels: int, metric: str, class_weights: Sequence[float] | None = None,
              grid: Sequence[float] = C_GRID) -> Probe:
    """Standardise on train, fit one linear model per C, keep the best on valid by `metric`."""
    x, y = train
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6  # a constant feature stays constant (0) instead of dividing by 0
    z, zv = (x - mean) / scale, (valid[0] - mean) / scale
    best = None
    for C in grid:
        coef, intercept = _fit(z, y, C, problem_type, num_labels, class_weights)
        metrics = compute_metrics(problem_type, valid[1], _scores(zv @ coef.T + intercept, problem_type))
        if best is None or better(metric, metrics[metric], best.valid_metrics[metric]):
            best = Probe(mean, scale, coef, intercept, C, metrics)
    assert best is not None, "the C grid is never empty"
    return best


def _fit(z: np.ndarray, y: np.ndarray, C: float, problem_type: str, num_labels: int,
         class_weights: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """(coef (num_labels, D), intercept (num_labels,)) of one fit: multinomial logistic
    regression, one logistic regression per label, or ridge regression per target."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if problem_type == "single_label_classification":
        weights = None if class_weights is None else dict(enumerate(class_weights))
        clf = LogisticRegression(C=C, max_iter=2000, class_weight=weights).fit(z, y.astype(np.int64))
        coef, intercept = np.zeros((num_labels, z.shape[1])), np.zeros(num_labels)
        if clf.coef_.shape[0] == 1:  # sklearn's binary form, one logit w.x + b: logits -/+ (w.x + b) / 2
            coef[clf.classes_] = np.stack([-clf.coef_[0], clf.coef_[0]]) / 2
            intercept[clf.classes_] = np.array([-clf.intercept_[0], clf.intercept_[0]]) / 2
        else:
            coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
        intercept[np.setdiff1d(np.arange(num_labels), clf.classes_)] = -30.0  # absent from train: never predicted
        return coef, intercept
    y = y.reshape(len(y), -1).astype(np.float64)
    coef, intercept = np.zeros((y.shape[1], z.shape[1])), np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        known = ~np.isnan(y[:, j])  # NaN marks a missing label or target
        target = y[known, j]
        if problem_type == "regression":
            model = Ridge(alpha=1.0 / C).fit(z[known], target)
            coef[j], intercept[j] = model.coef_, model.intercept_
        elif np.unique(target).size < 2:  # one value only: a constant logit, no features
            p = np.clip(target.mean() if target.size else 0.5, 1e-4, 1 - 1e-4)
            intercept[j] = np.log(p / (1 - p))
        else:
            model = LogisticRegression(C=C, max_iter=2000).fit(z[known], target.astype(np.int64))
            coef[j], intercept[j] = model.coef_[0], model.intercept_[0]
    return coef, intercept


def _scores(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """What compute_metrics reads: class probabilities, or the predictions for regression."""
    if problem_type == "single_label_classification":
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if problem_type == "multi_label_classification":
        return 1.0 / (1.0 + np.exp(-logits))
    return logits


def fit_into_head(model, train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray], *,
                  problem_type: str, metric: str, class_weights: Sequence[float] | None = None) -> Probe:
    """`fit_probe` for the model's head, then `install` it there."""
    probe = fit_probe(train, valid, problem_type=problem_type, num_labels=model.head_config.num_labels,
                      metric=metric, class_weights=class_weights)
    install(model, probe)
    return probe


@torch.no_grad()
def install(model, probe: Probe) -> None:
    """Write the probe into the head: its FeatureScaler buffers and its decoder."""
    head = model.head
    assert model.head_config.standardize and model.head_config.transform == "identity" and head.decoder.bias is not None, \
        "a probe head is built with standardize=True, no transform, a bias (finetune.launch.build_start_model)"
    device = head.decoder.weight.device
    head.scaler.mean.copy_(torch.as_tensor(probe.mean, dtype=torch.float32, device=device))
    head.scaler.scale.copy_(torch.as_tensor(probe.scale, dtype=torch.float32, device=device))
    head.decoder.weight.copy_(torch.as_tensor(probe.coef, dtype=torch.float32, device=device))
    head.decoder.bias.copy_(torch.as_tensor(probe.intercept, dtype=torch.float32, device=device))
