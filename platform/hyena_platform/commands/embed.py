"""`hyena embed JOB.yaml [--set key=value ...] [--overwrite] [--fresh]`: embeddings on Ray.

Inputs: FASTA records, BED regions of a FASTA, or a table with a sequence and an id column.
Output: Parquet files under OUT/embeddings/ (one row per sequence, or per base with
embedding.pooling: none) and OUT/_manifest.json. Rerunning resumes per chunk.
"""

from __future__ import annotations

import argparse

from hyena_platform.commands.common import add_flags, add_job_arguments
from hyena_platform.progress import EmbeddingProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    add_flags(parser, {
        "--overwrite": "replace results of a different model or config in output.path (the same job always resumes)",
        "--fresh": "start over: delete this job's finished chunks instead of resuming",
    })


def run(args: argparse.Namespace) -> int:
    from hyena_platform.embed.config import load_job
    from hyena_platform.embed.pipeline import run_embed

    job = load_job(args.job, args.overrides)
    result = run_embed(job, source=args.job, overwrite=args.overwrite, fresh=args.fresh,
                       progress=EmbeddingProgress())
    if result.chunks_embedded:
        print(f"embedded {result.sequences:,} sequence(s) in {result.seconds:.1f} s")
    else:
        print("every chunk was already embedded")
    print(f"embeddings {result.output / 'embeddings'}  (Parquet)")
    print(f"manifest   {result.manifest}")
    if result.run_id:
        print(f"MLflow run {result.run_id}")
    return 0

