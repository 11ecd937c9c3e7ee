"""`hyena predict JOB.yaml [--set key=value ...] [--overwrite]`: a fine-tuned sequence model over a
table, a FASTA or BED regions, as a Ray batch job writing Parquet (resumable by parts)."""

from __future__ import annotations

import argparse

from hyena_platform.commands.common import add_job_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace predictions of another model or input in the output directory")
    parser.add_argument("--ray-logs", action="store_true", help="forward Ray's logs to this terminal")


def run(args: argparse.Namespace) -> int:
    from hyena_platform.finetune.predict import load_predict_job, run_predict

    job = load_predict_job(args.job, args.overrides)
    result = run_predict(job, source=args.job, overwrite=args.overwrite, ray_logs=args.ray_logs)
    skipped = f" ({result.skipped_parts} already written)" if result.skipped_parts else ""
    print(f"predicted {result.rows:,} sequences with {result.model} into {result.output}/parts "
          f"({result.parts} Parquet parts{skipped})")
    return 0
