"""`hyena finetune JOB.yaml [--set key=value ...] [--fresh]`: fine-tune a pretrained HyenaDNA on a
labelled task on Ray Train, beside a k-mer baseline, tracked and registered in MLflow.

Resume rules as `hyena pretrain`: the same job (storage path and run name) resumes from its last
checkpoint; a finished run is reused; --fresh starts over.
"""

from __future__ import annotations

import argparse

from hyena_platform.progress import FinetuneProgress
from hyena_platform.commands.pretrain import add_arguments  # noqa: F401 - the same flags: job, --set, --fresh, --ray-logs


def run(args: argparse.Namespace) -> int:
    from hyena_platform.finetune.config import load_finetune_job

    job = load_finetune_job(args.job, args.overrides)  # a config error stops here, before Ray or MLflow load
    from hyena_platform.finetune.launch import run_finetune

    result = run_finetune(job, source=args.job, fresh=args.fresh, progress=FinetuneProgress(), ray_logs=args.ray_logs)
    if result.reused:
        print(f"run {result.run_name!r} had already finished; nothing to train (use --fresh to start over)")
    print()
    print(result.table())
    stop = " (stopped early)" if result.stopped_early else ""
    print(f"\nbest {result.metric} at step {result.best_step} of {result.steps}{stop}; * = the selection metric")
    print(f"registered {result.version_uri} (alias {result.model_uri})")
    print(f"MLflow run {result.run_id} in {result.tracking_uri}")
    return 0

