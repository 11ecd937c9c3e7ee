"""The `hyena shard` job: FASTA -> Parquet shards + manifest, once, for training jobs to read.

The job file holds a `data:` section (DataConfig), the `output` directory or URI (s3://, gs://,
... anything pyarrow supports) and optionally the Ray address. Training jobs then read the
shards with ``data: {shards: OUTPUT}``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal, Sequence

from pydantic import Field

from hyena_platform.config import kind_field, load_config, section
from hyena_platform.data.config import DataConfig
from hyena_platform.ray_setup import start_ray


@section
class ShardJob:
    """A `hyena shard` job file."""

    output: str = Field(description="the shard directory or URI (s3://, gs://, ... anything pyarrow supports)")
    kind: Literal["shard"] = kind_field("shard")
    data: DataConfig
    overwrite: bool = Field(False, description="replace an existing (complete or interrupted) shard directory")
    address: str | None = Field(None, description="Ray cluster; None: $RAY_ADDRESS, else a local Ray")


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> ShardJob:
    """Read, override and validate a shard job file; ConfigError on any problem."""
    return load_config(ShardJob, path, overrides)


def run_shard(job: ShardJob, *, overwrite: bool = False) -> int:
    """Check every input, write the shards, print what was written; returns the exit code."""
    from hyena_platform.data.pipeline import check_output, genome_layout, write_shards
    from hyena_platform.local_ray import check_address

    check_address(job.address)
    layout = genome_layout(job.data)  # every input check before Ray starts
    check_output(job.output, overwrite=overwrite)
    bases = layout.split_bases()
    print(f"sharding {len(layout.records)} record(s), " +
          ", ".join(f"{split} {n:,} bp" for split, n in bases.items()) +
          f", in chunks of {job.data.chunk_size:,} -> {job.output}")
    start_ray(job.address)
    t0 = time.perf_counter()
    manifest = write_shards(job.data, job.output, overwrite=overwrite)
    dt = time.perf_counter() - t0
    total = sum(bases.values())
    print(f"wrote {manifest.num_chunks} chunks in {len(manifest.files)} Parquet file(s) in {dt:.1f} s "
          f"({total / dt / 1e6:.1f} Mb/s)")
    print(f"content hash {manifest.content_hash}")
    print(f"use it with:  data: {{shards: {job.output}}}")
    return 0
