"""`hyena sweep SWEEP.yaml [--set key=value ...] [--fresh]`: a pretraining sweep, each trial a real
run tracked in MLflow under one parent run; prints the trials ranked against the k-mer baselines.

Rerunning the same sweep reuses the finished trials (each is an ordinary resumable pretraining
run); --fresh starts every trial over.
"""

from __future__ import annotations

import argparse

from hyena_platform.commands.common import add_flags, add_job_arguments
from hyena_platform.progress import TrainingProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    add_flags(parser, {
        "--fresh": "start over: every trial deletes its own checkpoints (as `hyena pretrain --fresh`) and "
                   "the sweep gets a new parent MLflow run",
    })


def run(args: argparse.Namespace) -> int:
    from hyena_platform.train.sweep import load_sweep, run_sweep

    sweep = load_sweep(args.job, args.overrides)  # every trial's job is validated before any run
    result = run_sweep(sweep, args.job, fresh=args.fresh, trial_progress=TrainingProgress(indent="  "))
    best = result.best
    print()
    print(f"sweep {result.name!r}: {len(result.results)} trials, best first "
          "(margin = bits per base below the best k-mer chain on the same held-out windows)")
    print(result.table())
    print(f"\nbest: trial {best.trial.number} ({best.trial.label()}): {best.bits_per_base:.4f} bits/base, "
          f"{best.margin:+.4f} vs k={best.best_kmer[0]}; registered {best.version_uri} = {result.best_uri}")
    print(f"MLflow parent run {result.parent_run_id} in {result.tracking_uri}")
    return 0
