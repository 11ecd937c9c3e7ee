"""`hyena pretrain JOB.yaml [--set key=value ...] [--fresh]`: pretrain on Ray Train, track in MLflow.

Rerunning the same job (same checkpoint.storage_path and run name) resumes from its last
checkpoint; a finished run is reused; --fresh starts over.
"""

from __future__ import annotations

import argparse

from hyena_platform.commands.common import add_flags, add_job_arguments
from hyena_platform.progress import TrainingProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    add_flags(parser, {
        "--fresh": "start over: delete this run's checkpoints (only files Ray Train wrote in storage_path/name; "
                   "refused if it holds others) and start a new MLflow run",
        "--ray-logs": "forward Ray's worker and controller logs to this terminal",
    })


def run(args: argparse.Namespace) -> int:
    from hyena_platform.train.config import load_job

    job = load_job(args.job, args.overrides)  # a config error stops here, before Ray or MLflow load
    from hyena_platform.train.launch import run_pretrain

    result = run_pretrain(job, source=args.job, fresh=args.fresh, progress=TrainingProgress(),
                          ray_logs=args.ray_logs)
    if result.reused:
        print(f"run {result.run_name!r} had already finished; nothing to train (use --fresh to start over)")
    print()
    print(result.table())
    tps = f"{result.tokens_per_s:,.0f}" if result.tokens_per_s else "-"
    print(f"\nregistered {result.version_uri} (alias {result.model_uri}); median {tps} tokens/s")
    print(f"MLflow run {result.run_id} in {result.tracking_uri}")
    print(f"checkpoint {result.checkpoint_path}")
    return 0
