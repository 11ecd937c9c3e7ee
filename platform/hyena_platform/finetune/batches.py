"""Batches of labelled examples: the epoch order, each worker's share of a step, right padding.

Pure functions (numpy, torch), so the order and padding are tested without Ray. The order of an
epoch is a seeded permutation; step s of the epoch takes the global batch at s, and worker r the
r-th slice of it, so a resumed or restarted run sees exactly the batches it would have seen. With
`reverse_complement`, each training example of a step is read on the other strand with
probability 1/2 (a seeded coin per step and place in the global batch: the same on resume and
for any world size): a sequence label does not depend on the strand a genome was deposited on,
so the augmentation doubles the distinct training sequences (as pretraining's
`data.reverse_complement` does).
"""

from __future__ import annotations

import numpy as np
import torch

from hyena.heads import IGNORE_INDEX
from hyena.tokenizer import PAD, reverse_complement_ids
from hyena_platform.finetune.examples import Split


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
    """Full global batches per epoch (the remainder of an epoch is dropped, reshuffled next time)."""
    return num_examples // global_batch


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def worker_indices(num_examples: int, step: int, *, per_epoch: int, global_batch: int, rank: int, world: int,
                   seed: int) -> np.ndarray:
    """Example indices of worker `rank` for optimizer step `step` (0-based)."""
    epoch, within = divmod(step, per_epoch)
    order = epoch_order(num_examples, seed, epoch)
    per_worker = global_batch // world
    start = within * global_batch + rank * per_worker
    return order[start:start + per_worker]


def strand_flips(step: int, *, global_batch: int, rank: int, world: int, seed: int) -> np.ndarray:
    """Which of worker `rank`'s examples of step `step` are reverse-complemented (bool, B / world)."""
    coins = np.random.default_rng([seed, 1, step]).random(global_batch) < 0.5
    per_worker = global_batch // world
    return coins[rank * per_worker:(rank + 1) * per_worker]


def collate(split: Split, indices, *, task: str, problem_type: str,
            flip: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """input_ids (B, L) int64 right-padded with [PAD], attention_mask (B, L) bool, labels:
    sequence tasks (B,) int64 or (B, C) float32; token tasks (B, L) int64 with IGNORE_INDEX on
    padding. `flip` (B,) bool: reverse-complement those sequences (sequence tasks only)."""
    tokens = [split.tokens[i] for i in indices]
    if flip is not None:
        assert task == "sequence", "per-base labels would need their own reversal"
        tokens = [reverse_complement_ids(t) if f else t for t, f in zip(tokens, flip)]
    width = max(len(t) for t in tokens)
    ids = np.full((len(tokens), width), PAD, dtype=np.int64)
    mask = np.zeros((len(tokens), width), dtype=bool)
    for row, t in enumerate(tokens):
        ids[row, :len(t)] = t
        mask[row, :len(t)] = True
    if task == "token":
        labels = np.full((len(tokens), width), IGNORE_INDEX, dtype=np.int64)
        for row, i in enumerate(indices):
            labels[row, :len(split.labels[i])] = split.labels[i]
        y = torch.from_numpy(labels)
    elif problem_type == "single_label_classification":
        y = torch.from_numpy(np.asarray(split.labels)[np.asarray(indices)].astype(np.int64))
    else:
        y = torch.from_numpy(np.asarray(split.labels)[np.asarray(indices)].astype(np.float32))
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask), "labels": y}


class ExampleBatches:
    """A worker's batches for `train.loop.train_step`: step s gives `worker_indices(s)` collated.

    The batch of a step is a function of the step alone, so a resumed run (any rank, any world
    size) picks up at the checkpoint's step with the batches it would have seen. `current` and
    `consumed` are what `train.loop.save_checkpoint` records as the data position."""

    def __init__(self, split: Split, *, task: str, problem_type: str, per_epoch: int, global_batch: int,
                 rank: int, world: int, seed: int, reverse_complement: bool = False):
        self.split, self.task, self.problem_type = split, task, problem_type
        self.reverse_complement = reverse_complement
        self.per_epoch, self.global_batch, self.rank, self.world, self.seed = per_epoch, global_batch, rank, world, seed
        self.current = None  # the stage being trained (fine-tuning has one)
        self.consumed = 0  # batches taken so far in this attempt
        self._batches = None

    def batches_for(self, stage, step: int):
        if self._batches is None:
            self.current, self._batches = stage, self._from(step)
        return self._batches

    def _from(self, step: int):
        while True:
            indices = worker_indices(len(self.split), step, per_epoch=self.per_epoch, global_batch=self.global_batch,
                                     rank=self.rank, world=self.world, seed=self.seed)
            flip = (strand_flips(step, global_batch=self.global_batch, rank=self.rank, world=self.world,
                                 seed=self.seed) if self.reverse_complement else None)
            yield collate(self.split, indices, task=self.task, problem_type=self.problem_type, flip=flip)
            step += 1
