"""The small scoring job that the scoring integration tests run: 256-base windows (stride 128),
one half-CPU replica and one writer, 4096-base chunks, the log_prob track, no MLflow run."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_score_job(path: Path, model_dir: Path, output: Path, regions: list[str], fasta: Path | None = None) -> Path:
    """The job file at `path`: `regions` of the bundled genome (or of `fasta`) scored into `output`."""
    path.write_text(yaml.safe_dump({
        "model": {"uri": str(model_dir)}, "data": {"fasta": [str(fasta)]} if fasta else {},
        "target": {"regions": regions}, "window": {"size": 256, "stride": 128},
        "compute": {"replicas": 1, "cpus_per_replica": 0.5, "writers": 1, "cpus_per_writer": 0.25},
        "output": {"path": str(output), "chunk_size": 4096, "track": "log_prob", "bin_size": 1000},
        "tracking": {"log_run": False},
    }))
    return path
