"""The laptop pretraining recipe: what `hyena demo` and jobs/pretrain_local.yaml train.

HyenaDNA tiny-1k as released (d_model 128, 2 Hyena layers; Nguyen et al. 2023), on one small
genome with 2 CPU cores and about five minutes: 600 optimizer steps of 16 windows, a short
sequence-length warm-up (10 steps each at 64, 128, 256 and 512, the rest at 1024), a higher
peak learning rate than the paper's 6e-4 (a small model and a small batch take more), no
embedding dropout (a few epochs of one genome do not overfit a 0.4 M-parameter model; dropout
only slows it), reverse-complement augmentation, and bf16 matrix products (the FFT
convolutions stay float32): on a CPU with AVX512-BF16 a step costs 1.5x less CPU than in
float32, which buys 600 steps for the CPU time of 400. docs/training.md lists the runs behind
each choice and the held-out bits per base against the k-mer baselines over three seeds;
tests/test_recipe.py keeps jobs/pretrain_local.yaml equal to these sections.
"""

from __future__ import annotations

import copy
from typing import Any

LAPTOP_RECIPE: dict[str, Any] = {
    "model": {"variant": "tiny-1k", "overrides": {"embed_dropout": 0.0}},
    "data": {"reverse_complement": True},
    "train": {
        "steps": 600, "global_batch": 16, "micro_batch": 8, "start_length": 64, "target_length": 1024,
        "warmup_stage_steps": 10, "lr": 2.0e-3, "warmup_fraction": 0.05, "min_lr_ratio": 0.05,
        "precision": "bf16", "log_every": 20, "val_windows": 32, "baseline_orders": [1, 3, 5, 7],
    },
    "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "threads_per_worker": 1},
}


def laptop_recipe() -> dict[str, Any]:
    """A fresh copy of the recipe's model, data, train and scaling sections (callers edit it)."""
    return copy.deepcopy(LAPTOP_RECIPE)
