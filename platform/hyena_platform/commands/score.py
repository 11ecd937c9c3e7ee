"""`hyena score JOB.yaml [--set key=value ...] [--overwrite] [--fresh]`: per-base scores on Ray.

Rerunning the same job resumes: chunks already written are skipped (--fresh starts over). An
output directory holding scores of another model or config is refused unless --overwrite (or
output.overwrite: true).
"""

from __future__ import annotations

import argparse

from hyena_platform.commands.common import add_flags, add_job_arguments
from hyena_platform.progress import ScoringProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    add_flags(parser, {
        "--overwrite": "replace results of a different model or config in output.path (the same job always resumes)",
        "--fresh": "start over: delete this job's finished chunks instead of resuming",
        "--ray-logs": "forward Ray's worker logs to this terminal",
        "--ray-progress": "show Ray Data's progress bars instead of one line per few chunks",
    })

def run(args: argparse.Namespace) -> int:
    from hyena_platform.score.config import load_job
    from hyena_platform.score.pipeline import run_score

    job = load_job(args.job, args.overrides)
    result = run_score(job, source=args.job, overwrite=args.overwrite, fresh=args.fresh,
                       progress=None if args.ray_progress else ScoringProgress(),
                       ray_logs=args.ray_logs, ray_progress=args.ray_progress)
    print()
    print(result.table())
    if result.chunks_scored:
        print(f"\nscored {result.bases_scored:,} bases in {result.timings['score_wall_s']:.1f} s "
              f"({result.bases_per_s:,.0f} bases/s; task time read {result.timings['read_s']:.1f} s, "
              f"model {result.timings['model_s']:.1f} s, write {result.timings['write_s']:.1f} s)")
    else:
        print("\nevery chunk was already scored; coverage checked, exports rewritten")
    print(f"scores   {result.output / 'scores'}  (Parquet, partitioned by chrom)")
    if result.track:
        print(f"track    {result.track}")
    if result.bins:
        print(f"bins     {result.bins}")
    print(f"manifest {result.manifest}")
    if result.run_id:
        print(f"MLflow run {result.run_id} in {result.tracking_uri}")
    return 0
