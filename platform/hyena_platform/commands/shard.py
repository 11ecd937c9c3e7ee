"""`hyena shard JOB.yaml [--set key=value ...] [--overwrite]`: FASTA -> Parquet shards + manifest.

The job file holds a `data:` section (hyena_platform.data.config.DataConfig), the `output`
directory or URI (s3://, gs://, ... anything pyarrow supports) and optionally the Ray address.
Training and scoring jobs then read the shards with ``data: {shards: OUTPUT}``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field

from hyena_platform.cli import add_job_arguments
from hyena_platform.data.config import DataConfig


@dataclass(frozen=True)
class ShardJob:
    """A `hyena shard` job file."""

    output: str
    data: DataConfig = field(default_factory=DataConfig)
    overwrite: bool = False  # replace an existing (complete or interrupted) shard directory
    address: str | None = None  # Ray cluster; None: $RAY_ADDRESS, else a local Ray


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output directory if it already holds shards or files")


def run(args: argparse.Namespace) -> int:
    from hyena_platform.config import load_config

    job = load_config(ShardJob, args.job, args.overrides)
    return shard(job, overwrite=job.overwrite or args.overwrite)


def shard(job: ShardJob, *, overwrite: bool = False) -> int:
    from hyena_platform.data.pipeline import check_output, genome_layout, write_shards
    from hyena_platform.local_ray import check_address

    check_address(job.address)
    layout = genome_layout(job.data)  # every input check before Ray starts
    check_output(job.output, overwrite=overwrite)
    bases = layout.split_bases()
    print(f"sharding {len(layout.records)} record(s), " +
          ", ".join(f"{split} {n:,} bp" for split, n in bases.items()) +
          f", in chunks of {job.data.chunk_size:,} -> {job.output}")
    _init_ray(job.address)
    t0 = time.perf_counter()
    manifest = write_shards(job.data, job.output, overwrite=overwrite)
    dt = time.perf_counter() - t0
    total = sum(bases.values())
    print(f"wrote {manifest.num_chunks} chunks in {len(manifest.files)} Parquet file(s) in {dt:.1f} s "
          f"({total / dt / 1e6:.1f} Mb/s)")
    print(f"content hash {manifest.content_hash}")
    print(f"use it with:  data: {{shards: {job.output}}}")
    return 0


def _init_ray(address: str | None) -> None:
    import logging

    import ray
    import ray.data

    # Ray Data logs a task's exception with its whole stack before re-raising it; a user error
    # (a bad FASTA character) is reported by the CLI as one line instead.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    if ray.is_initialized():
        return
    from hyena_platform import local_ray

    local_ray.init(address or os.environ.get("RAY_ADDRESS"), logging_level="WARNING", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
