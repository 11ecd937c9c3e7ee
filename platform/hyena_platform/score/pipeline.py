"""The scoring job on Ray Data, end to end: plan -> read -> score (actor pool) -> write -> check.

    chunk specs --map_batches(ScoreReplica: actor pool of model replicas, CPU or GPU)-->
                read the chunk's FASTA span, cut its windows, score them in batches of
                compute.batch_size, reassemble the scores by position
                --map_batches(ChunkWriter: small actor pool)--> one Parquet file per chunk
                (write, fsync, rename) --> driver: progress; then coverage check, bins, track,
                manifest, MLflow run

A row is one chunk from end to end, so a chunk's scores are assembled by position in one place
and written as one file; replicas receive the weights once through the object store. Reading
happens in the replica (a chunk's span is a few milliseconds of pyfaidx) so that no task
workers start mid-run; writing has its own actors so that a GPU replica never waits on
Parquet compression. Chunks whose file already exists are skipped, which makes a rerun after a
kill resume where it stopped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hyena_platform.batch import (
    Progress, check_resources, init_ray, max_rss_mb, run_attempt, run_locked, run_pool,
)
from hyena_platform.outputs import now
from hyena_platform.result_set import MANIFEST_NAME, claim_for_run, manifest_header
from hyena_platform.score.chunk_files import (
    check_output, chunk_table, finished_chunks, score_output, unpack_scores, write_chunk, write_manifest,
)
from hyena_platform.score.config import ScoreJob
from hyena_platform.score.finalize import FinalizeResult, finalize
from hyena_platform.score.plan import ResolvedModel, ScorePlan, plan_job
from hyena_platform.score.mlflow_run import tracking_finish, tracking_start
from hyena_platform.score.result import ScoreResult
from hyena_platform.score.tiling import CENTRED, Chunk, centred_margins
from hyena_platform.write_gate import write_permit, writers_allowed


def run_score(job: ScoreJob, *, source: str = "<job>", overwrite: bool = False, fresh: bool = False,
              progress: Progress | None = None, model: ResolvedModel | None = None,
              ray_logs: bool = False, ray_progress: bool | None = None) -> ScoreResult:
    """Score `job`: every input check first, then the Ray pipeline, then the coverage check.

    Rerunning the same job resumes (finished chunks are skipped) unless `fresh`; a different
    model or config in the same output.path is refused unless `overwrite` (or output.overwrite).
    `progress` receives events (start, chunk, finalize); `ray_progress` turns Ray Data's own
    progress bars on or off (None: leave Ray Data's setting).
    """
    emit = progress or (lambda event: None)
    return run_locked(
        job.output.path, job=f"hyena score {source}", plan=lambda: plan_job(job, source=source, model=model),
        output=score_output,
        body=lambda plan, out, root, t_start: _score_locked(job, plan, out, root, overwrite=overwrite, fresh=fresh,
                                                            emit=emit, ray_logs=ray_logs,
                                                            ray_progress=ray_progress, t_start=t_start))


def _score_locked(job: ScoreJob, plan: ScorePlan, out: Any, root: Path, *, overwrite: bool, fresh: bool,
                  emit: Progress, ray_logs: bool, ray_progress: bool | None, t_start: float) -> ScoreResult:
    previous = check_output(root, plan.identity, overwrite=overwrite or job.output.overwrite,
                            model_uri=plan.model.resolved_uri)
    previous = claim_for_run(out, previous, fresh=fresh, job="hyena score")
    run = tracking_start(plan, root) if job.tracking.log_run else None
    manifest = _manifest(plan, root, previous, run)

    def body(attempt: dict[str, Any]) -> tuple[ScoreResult, FinalizeResult]:
        return _score(job, plan, root, manifest, attempt, run, emit=emit, ray_logs=ray_logs,
                      ray_progress=ray_progress, t_start=t_start)

    result, _ = run_attempt(manifest, lambda: write_manifest(root, manifest), run, body,
                            lambda run, done: tracking_finish(run, *done))
    return result


def _score(job: ScoreJob, plan: ScorePlan, root: Path, manifest: dict[str, Any], attempt: dict[str, Any],
           run: tuple[Any, str] | None, *, emit: Progress, ray_logs: bool, ray_progress: bool | None,
           t_start: float) -> tuple[ScoreResult, FinalizeResult]:
    """Score the chunks not written yet, then finalize; `attempt` and `manifest` record it."""
    done = finished_chunks(root, plan.chunks)
    pending = [c for c in plan.chunks if c.index not in done]
    emit({"event": "start", "chunks": len(plan.chunks), "pending": len(pending),
          "bases": plan.bases, "pending_bases": sum(c.bases for c in pending),
          "window": plan.window, "stride": plan.stride, "model": plan.model.resolved_uri,
          "output": str(root)})
    t0 = time.perf_counter()
    timings = {"read_s": 0.0, "model_s": 0.0, "write_s": 0.0}
    peak_rss = None
    if pending:
        init_ray(job.address, ray_logs, ray_progress)
        check_resources(job.compute, job.address)
        timings.update(_execute(plan, pending, root, emit))
        peak_rss = timings.pop("replica_max_rss_mb")
    timings["score_wall_s"] = time.perf_counter() - t0
    emit({"event": "finalize"})
    fin = finalize(root, plan.regions, plan.chunks, tracks=track_columns(job),
                   track_format=job.output.track_format, bin_size=job.output.bin_size)
    timings["finalize_s"] = fin.seconds
    timings["total_s"] = time.perf_counter() - t_start
    bases_scored = sum(c.bases for c in pending)
    attempt.update(status="complete", finished=now(), chunks_scored=len(pending),
                   chunks_skipped=len(plan.chunks) - len(pending), bases_scored=bases_scored,
                   timings=timings, replica_max_rss_mb=peak_rss,
                   bases_per_s=bases_scored / timings["score_wall_s"] if pending else None)
    manifest.update(status="complete", chromosomes=[s.to_dict() for s in fin.chromosomes],
                    timings=_total_timings(manifest["attempts"]), files=_files(root, fin))
    path = write_manifest(root, manifest)
    result = ScoreResult(root, path, fin.track, fin.bins, plan.model.resolved_uri,
                         manifest["chromosomes"], len(plan.chunks), len(pending), bases_scored,
                         timings, run_id=run[1] if run else None,
                         tracking_uri=run[0].uri if run else None,
                         extra={"replica_max_rss_mb": peak_rss}, tracks=fin.tracks,
                         baseline=plan.kmer.describe() if plan.kmer is not None else None)
    return result, fin


def _manifest(plan: ScorePlan, root: Path, previous: dict[str, Any] | None,
              run: tuple[Any, str] | None) -> dict[str, Any]:
    job = plan.job
    window = {"size": plan.window, "stride": plan.stride, "start_token": "[SEP]",
              "min_context": plan.window - plan.stride + 1,
              "definition": "hyena_platform.score.tiling (module docstring)"}
    if plan.layout == CENTRED:  # bases each side of every base in its window (off a chromosome's ends)
        before, after = centred_margins(plan.window, plan.stride)
        window.update(layout=CENTRED, min_context=before + 1, min_context_after=after)
    baseline = {"baseline": plan.kmer.describe()} if plan.kmer is not None else {}
    return manifest_header(
        plan.identity, plan.model, previous, run, config=job.to_dict(), source=plan.source, window=window,
        columns=["pos", "ref", *plan.columns], **baseline,
        chunks={"total": len(plan.chunks), "chunk_size": job.output.chunk_size},
        regions=[[r.chrom, r.start, r.end] for r in plan.regions])


def track_columns(job: ScoreJob) -> list[str]:
    """The columns exported as tracks: output.track, output.extra_tracks, then bits_saved when asked for."""
    tracks = [job.output.track] if job.output.track else []
    tracks += [c for c in job.output.extra_tracks if c not in tracks]
    if job.baseline.bits_saved and job.baseline.track and "bits_saved" not in tracks:
        tracks.append("bits_saved")
    return tracks


def _total_timings(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """Timings summed over every attempt that scored (a resumed job spans several)."""
    keys = ("read_s", "model_s", "model_cpu_s", "write_s", "score_wall_s")
    total: dict[str, Any] = {k: sum((a.get("timings") or {}).get(k, 0.0) for a in attempts) for k in keys}
    total["bases_scored"] = sum(a.get("bases_scored") or 0 for a in attempts)
    total["bases_per_s"] = total["bases_scored"] / total["score_wall_s"] if total["score_wall_s"] > 0 else None
    total["attempts"] = len(attempts)
    return total


def _files(root: Path, fin: FinalizeResult) -> dict[str, Any]:
    return {"scores": "scores", "manifest": MANIFEST_NAME,
            "bins": fin.bins.name if fin.bins else None, "track": fin.track.name if fin.track else None,
            "tracks": {column: path.name for column, path in fin.tracks.items()},
            "chunk_files": fin.files}


# ------------------------------------------------------------------------------------------
# Ray


def replica_kwargs(plan: ScorePlan) -> dict[str, Any]:
    """The arguments of every `ScoreReplica` of a plan (the model and k-mer chain as plain data)."""
    from hyena_platform.score.scorer import kmer_payload, model_payload

    job, c = plan.job, plan.job.compute
    payload = model_payload(plan.model.model)
    if plan.kmer is not None:
        payload["kmer"] = kmer_payload(plan.kmer)
    return {"payload": payload, "window": plan.window, "stride": plan.stride,
            "batch_size": c.batch_size, "reverse_strand": job.window.reverse_strand,
            "probabilities": job.window.probabilities, "device": c.device,
            "threads": c.torch_threads, "precision": c.precision, "layout": plan.layout,
            "index_cache": job.data.index_cache}


def _execute(plan: ScorePlan, pending: list[Chunk], root: Path, emit: Progress) -> dict[str, float]:
    job, c = plan.job, plan.job.compute
    items = [ch.row() for ch in pending]
    rows = run_pool(items, compute=c, replica=ScoreReplica, replica_kwargs=replica_kwargs(plan),
                    writer=ChunkWriter, writer_kwargs={"root": str(root), "names": plan.columns}, address=job.address)
    total = sum(ch.bases for ch in pending)
    sums = {"read_s": 0.0, "model_s": 0.0, "model_cpu_s": 0.0, "write_s": 0.0, "replica_max_rss_mb": 0.0}
    done_bases, done = 0, 0
    t0 = time.perf_counter()
    with writers_allowed(root):  # no part half-written or begun once the pool stops
        for row in rows:
            done += 1
            done_bases += row["end"] - row["start"]
            for k in ("read_s", "model_s", "model_cpu_s", "write_s"):
                sums[k] += row[k]
            sums["replica_max_rss_mb"] = max(sums["replica_max_rss_mb"], row["replica_max_rss_mb"])
            elapsed = time.perf_counter() - t0
            sums.setdefault("first_chunk_s", elapsed)  # startup: Ray Data, actors, first chunk
            rate = done_bases / elapsed if elapsed > 0 else float("nan")
            emit({"event": "chunk", "row": row, "done": done, "total": len(pending), "chrom": row["chrom"],
                  "start": row["start"], "end": row["end"], "bases_per_s": rate,
                  "eta_s": (total - done_bases) / rate if rate > 0 else None})
    return sums


class ScoreReplica:
    """Actor: chunk specs -> read the chunk's span from the FASTA, score it (one model replica)."""

    def __init__(self, *, index_cache: str | None = None, **scorer):
        from hyena_platform.score.scorer import ChunkScorer

        self.scorer = ChunkScorer(**scorer)
        self.index_cache = index_cache

    def __call__(self, batch):
        from hyena_platform.data.chunks import fetch_codes
        from hyena_platform.data.fasta import tokenize_codes
        from hyena_platform.data.genome import ChunkSpec
        from hyena_platform.score.chunk_files import pack_scores

        s = self.scorer
        out = []
        for row in batch.to_pylist():
            t0 = time.perf_counter()
            chunk = Chunk.from_row(row)
            span = s.windows(chunk)
            start = max(0, min(span.fetch_start, chunk.start - s.context_before))
            spec = ChunkSpec(chunk.source, chunk.chrom, start, span.fetch_end, "score", start)
            tokens = tokenize_codes(fetch_codes(spec, index_cache=self.index_cache), source=chunk.source,
                                    chrom=chunk.chrom, start=start)
            read_s = time.perf_counter() - t0
            scores = s.score_chunk(chunk, tokens, start)
            out.append(({**row, "read_s": read_s, "pid": os.getpid(), "max_rss_mb": max_rss_mb()}, scores))
        return pack_scores(out)


class ChunkWriter:
    """Actor: scored chunks -> Parquet files (write, fsync, rename) -> one status row each."""

    def __init__(self, *, root: str, names: list[str]):
        self.root, self.names = root, names

    def __call__(self, batch):
        import pyarrow as pa

        out = []
        for row, ref, columns in unpack_scores(batch):
            t0 = time.perf_counter()
            chunk = Chunk.from_row(row)
            with write_permit(self.root):
                _, size = write_chunk(self.root, chunk, chunk_table(chunk, ref, columns, self.names))
            out.append({"index": chunk.index, "chrom": chunk.chrom, "start": chunk.start, "end": chunk.end,
                        "bytes": size, "read_s": row["read_s"], "model_s": row["model_s"],
                        "model_cpu_s": row["model_cpu_s"],
                        "write_s": time.perf_counter() - t0, "scored_at": row["scored_at"],
                        "written_at": time.time(), "replica_pid": row["pid"],
                        "replica_max_rss_mb": row["max_rss_mb"]})
        return pa.Table.from_pylist(out)

