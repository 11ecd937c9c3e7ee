"""Labelled examples in memory: the splits of a task, and what every data source shares
(a carved valid split, length checks and cropping, content hashing, class weights). Pure numpy."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hyena_platform.errors import InputError

SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class Split:
    """The examples of one split. Sequence tasks: `labels` (N,) int64 class ids or (N, C)
    float32 (multi-label 0/1, regression targets). Token tasks: one label array per example."""

    tokens: list[np.ndarray]  # uint8 official ids, one array per example
    labels: Any
    ids: list[str]  # where each example came from ("file:row 3", "chrI:0-1024")

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, index: Sequence[int]) -> "Split":
        labels = [self.labels[i] for i in index] if isinstance(self.labels, list) else self.labels[np.asarray(index, dtype=np.int64)]
        return Split([self.tokens[i] for i in index], labels, [self.ids[i] for i in index])


@dataclass
class TaskData:
    task: str  # sequence | token
    problem_type: str  # single_label_classification | multi_label_classification | regression
    label_names: tuple[str, ...]
    splits: dict[str, Split]
    content_hash: str  # sha256 of the input files' bytes (the dataset's identity)
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


# --------------------------------------------------------------------------------------------
# Splits, lengths, hashing


def ensure_valid(splits: dict[str, Split], fraction: float, seed: int) -> dict[str, Split]:
    """Carve a valid split from train (seeded) when there is none."""
    if len(splits.get("valid", Split([], [], []))):
        return splits
    train = splits["train"]
    n = len(train)
    n_valid = max(1, int(round(n * fraction))) if n > 1 else 0
    order = np.random.default_rng(seed).permutation(n)
    return {**splits, "valid": train.subset(sorted(order[:n_valid])), "train": train.subset(sorted(order[n_valid:]))}


def fit_lengths(split: Split, max_tokens: int, crop: str, *, split_name: str) -> Split:
    """Sequences longer than the model: an error naming the first, or cropped as asked."""
    out_tokens, labels = [], split.labels
    token_labels = isinstance(labels, list)
    new_labels = [] if token_labels else labels
    for i, t in enumerate(split.tokens):
        sl = slice(None)
        if len(t) > max_tokens:
            if crop == "none":
                raise InputError(f"{split.ids[i]}: sequence of {len(t):,} bases is longer than the model's "
                                 f"{max_tokens:,}; set data.crop: keep_start, keep_end or keep_center to crop "
                                 f"it, or use a model with a larger l_max")
            extra = len(t) - max_tokens
            start = {"keep_start": 0, "keep_end": extra, "keep_center": extra // 2}[crop]
            sl = slice(start, start + max_tokens)
        out_tokens.append(t[sl])
        if token_labels:
            new_labels.append(labels[i][sl])
    return Split(out_tokens, new_labels, split.ids)


def hash_files(paths: Sequence[str]) -> str:
    """sha256 over the files' names (relative order) and bytes: the dataset's content identity."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def class_counts(labels: np.ndarray, num_labels: int) -> np.ndarray:
    return np.bincount(labels[labels >= 0].ravel(), minlength=num_labels)


def balanced_class_weights(split: Split, num_labels: int) -> np.ndarray:
    """n / (C * count_c) (scikit-learn's 'balanced'), over train labels (tokens: every base)."""
    labels = np.concatenate([np.asarray(x).ravel() for x in split.labels]) if isinstance(split.labels, list) else split.labels
    counts = class_counts(labels.astype(np.int64), num_labels).astype(np.float64)
    weights = counts.sum() / (num_labels * np.maximum(counts, 1))
    return weights.astype(np.float32)
