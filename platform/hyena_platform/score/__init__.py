"""Batch scoring on Ray: per-base log-likelihood tracks of whole chromosomes, resumable.

    from hyena_platform.score import load_job, run_score
    result = run_score(load_job("jobs/score_local.yaml"))   # `hyena score jobs/score_local.yaml`

Modules (pure ones first; only `pipeline` imports Ray, and only when called):

- `config`: `ScoreJob` and its sections (the `score.yaml` schema), `load_job`.
- `tiling`: the windowing maths (window W, stride S: every base scored exactly once, from at
  least W - S upstream bases except at a chromosome's start; a both-strands per-base model in
  centred windows, at least (W - S) / 2 bases each side), chunk planning, strand mapping.
- `scorer`: `score_batch` (log P(ref | upstream), entropy, probabilities, class probabilities)
  and `ChunkScorer`, the model replica Ray Data's actor pool runs.
- `kmer`: the k-mer chain of the `bits_saved` column.
- `plan`: every input check before work starts (regions, model URI, window vs l_max), the
  fingerprint's contents.
- `chunk_files`: per-chunk Parquet files (write, then rename), `_manifest.json`.
- `finalize`: coverage check, per-bin summaries, bedGraph / bigWig tracks.
- `pipeline`: `run_score` and the Ray Data pipeline (`ScoreReplica`, `ChunkWriter` actors).
- `mlflow_run`: the MLflow scoring run, linked to the model version (through `tracking`).
"""

from hyena_platform.score.config import ScoreJob, job_from_mapping, load_job


def run_score(job: ScoreJob, **kwargs):
    """See `hyena_platform.score.pipeline.run_score` (imported on call: Ray loads only then)."""
    from hyena_platform.score.pipeline import run_score as _run_score

    return _run_score(job, **kwargs)


__all__ = ["ScoreJob", "job_from_mapping", "load_job", "run_score"]
