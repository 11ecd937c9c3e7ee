"""`hyena vep JOB.yaml [--set key=value ...] [--overwrite] [--fresh]`: variant effects on Ray.

Rerunning the same job resumes: chunks already written are skipped (--fresh starts over). An
output directory holding results of another model, VCF or config is refused unless --overwrite
(or output.overwrite: true).
"""

from __future__ import annotations

import argparse

from hyena_platform.commands.common import add_job_arguments
from hyena_platform.progress import VariantProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results of a different model, VCF or config in output.path "
                             "(the same job always resumes)")
    parser.add_argument("--fresh", action="store_true",
                        help="start over: delete this job's finished chunks instead of resuming")
    parser.add_argument("--ray-logs", action="store_true", help="forward Ray's worker logs to this terminal")
    parser.add_argument("--ray-progress", action="store_true",
                        help="show Ray Data's progress bars instead of one line per few chunks")


def run(args: argparse.Namespace) -> int:
    from hyena_platform.vep.config import load_job
    from hyena_platform.vep.pipeline import run_vep

    job = load_job(args.job, args.overrides)
    result = run_vep(job, source=args.job, overwrite=args.overwrite, fresh=args.fresh,
                     progress=None if args.ray_progress else VariantProgress(),
                     ray_logs=args.ray_logs, ray_progress=args.ray_progress)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(result.reasons.items())) or "none"
    print(f"\n{result.records:,} records, {result.rows:,} ALT alleles: {result.scored:,} scored, skipped: {skipped}")
    if result.chunks_scored:
        t = result.timings
        print(f"scored {result.extra['rows_scored']:,} variants in {t['score_wall_s']:.1f} s "
              f"({result.extra['rows_scored'] / t['score_wall_s']:,.0f} variants/s; task time model "
              f"{t['model_s']:.1f} s, read {t['read_s']:.1f} s, write {t['write_s']:.1f} s)")
    else:
        print("every chunk was already scored; the VCF was rewritten")
    print(f"parquet  {result.parquet}")
    if result.vcf:
        print(f"vcf      {result.vcf}" + (f"  (+ {result.index.name})" if result.index else
                                          "  (not tabix-indexed: the input VCF is not sorted)"))
    print(f"manifest {result.manifest}")
    if result.run_id:
        print(f"MLflow run {result.run_id} in {result.tracking_uri}")
    return 0

