"""`hyena finetune JOB.yaml [--set key=value ...] [--fresh]`: fine-tune a pretrained HyenaDNA on a
labelled task on Ray Train, beside a k-mer baseline, tracked and registered in MLflow.

Resume rules as `hyena pretrain`: the same job (storage path and run name) resumes from its last
checkpoint; a finished run is reused; --fresh starts over.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hyena_platform.progress import format_duration
from hyena_platform.commands.pretrain import add_arguments  # noqa: F401 - the same flags: job, --set, --fresh, --ray-logs


def run(args: argparse.Namespace) -> int:
    from hyena_platform.finetune.config import load_finetune_job

    job = load_finetune_job(args.job, args.overrides)  # a config error stops here, before Ray or MLflow load
    from hyena_platform.finetune.launch import run_finetune

    result = run_finetune(job, source=args.job, fresh=args.fresh, progress=print_progress, ray_logs=args.ray_logs)
    if result.reused:
        print(f"run {result.run_name!r} had already finished; nothing to train (use --fresh to start over)")
    print()
    print(result.table())
    stop = " (stopped early)" if result.stopped_early else ""
    print(f"\nbest {result.metric} at step {result.best_step} of {result.steps}{stop}; * = the selection metric")
    print(f"registered {result.version_uri} (alias {result.model_uri})")
    print(f"MLflow run {result.run_id} in {result.tracking_uri}")
    return 0


def print_progress(event: dict[str, Any], stream=None) -> None:
    """One line per report: step, epoch, loss, examples/s; one per validation."""
    out = stream or sys.stdout
    if event.get("event") == "stopped":
        print(f"stopped: {event.get('message')}", file=out)
    if event.get("loss") is not None:
        print(f"step {event['step']}/{event['total_steps']}  epoch {event['epoch']:.2f}  loss {event['loss']:.4f}  "
              f"{event.get('examples_per_s') or 0:,.1f} seq/s  elapsed {format_duration(event.get('elapsed_s'))}",
              file=out)
    for v in event.get("val") or ():
        metric = event["metric"]
        shown = "  ".join(f"{k} {x:.4f}" for k, x in v.items() if k != "step")
        print(f"  valid at step {v['step']}: {shown}  (best {metric} {event.get('best_value') or 0:.4f})", file=out)
    if event.get("test"):
        print("  test (best checkpoint): " + "  ".join(f"{k} {x:.4f}" for k, x in event["test"].items()), file=out)
    out.flush()
