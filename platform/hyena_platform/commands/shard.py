"""`hyena shard JOB.yaml [--set key=value ...] [--overwrite]`: FASTA -> Parquet shards + manifest.

See hyena_platform.data.shard_job for the job file.
"""

from __future__ import annotations

import argparse

from hyena_platform.commands.common import add_job_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output directory if it already holds shards or files")


def run(args: argparse.Namespace) -> int:
    from hyena_platform.config import load_config
    from hyena_platform.data.shard_job import ShardJob, run_shard

    job = load_config(ShardJob, args.job, args.overrides)
    return run_shard(job, overwrite=job.overwrite or args.overwrite)
