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

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hyena_platform.errors import ConfigError, HyenaPlatformError
from hyena_platform.score.config import ScoreJob
from hyena_platform.score.export import FinalizeResult, finalize
from hyena_platform.score.output import (
    MANIFEST_NAME, check_output, chunk_table, clear_output, finished_chunks, fingerprint, now, score_output,
    unpack_scores, write_chunk, write_manifest,
)
from hyena_platform.score.plan import ResolvedModel, ScorePlan, plan_job
from hyena_platform.score.report import tracking_finish, tracking_start
from hyena_platform.score.windows import Chunk, chunk_windows

Progress = Callable[[dict[str, Any]], None]


@dataclass
class ScoreResult:
    output: Path
    manifest: Path
    track: Path | None
    bins: Path | None
    model_uri: str
    chromosomes: list[dict[str, Any]]
    chunks_total: int
    chunks_scored: int  # in this run (the rest were already on disk)
    bases_scored: int  # positions scored in this run
    timings: dict[str, float]
    run_id: str | None = None
    tracking_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bases_per_s(self) -> float:
        wall = self.timings.get("score_wall_s", 0.0)
        return self.bases_scored / wall if wall > 0 else float("nan")

    def table(self) -> str:
        lines = [f"{'chromosome':14s} {'bases':>12s} {'scored':>12s} {'mean log P':>11s} {'perplexity':>10s}"]
        for c in self.chromosomes:
            mll = c.get("mean_log_likelihood")
            ppl = c.get("perplexity")
            lines.append(f"{c['name']:14s} {c['bases']:>12,d} {c['scored_bases']:>12,d} "
                         f"{mll if mll is None else format(mll, '.4f'):>11} "
                         f"{ppl if ppl is None else format(ppl, '.4f'):>10}")
        return "\n".join(lines)


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
    t_start = time.perf_counter()
    plan = plan_job(job, source=source, model=model)
    root = Path(job.output.path).expanduser().resolve()
    out = score_output(root)
    with out.lock(job=f"hyena score {source}"):  # two jobs never write one directory
        return _score_locked(job, plan, out, root, overwrite=overwrite, fresh=fresh, emit=emit,
                             ray_logs=ray_logs, ray_progress=ray_progress, t_start=t_start)


def _score_locked(job: ScoreJob, plan: ScorePlan, out: Any, root: Path, *, overwrite: bool, fresh: bool,
                  emit: Progress, ray_logs: bool, ray_progress: bool | None, t_start: float) -> ScoreResult:
    previous = check_output(root, plan.identity, overwrite=overwrite or job.output.overwrite,
                            model_uri=plan.model.resolved_uri)
    if fresh and previous is not None:
        clear_output(root)
        previous = None
    out.claim(job="hyena score")
    run = tracking_start(plan, root) if job.tracking.log_run else None
    manifest = _manifest(plan, root, previous, run)
    attempt = {"started": now(), "status": "running"}
    manifest["attempts"].append(attempt)
    write_manifest(root, manifest)
    try:
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
            _init_ray(job.address, ray_logs)
            if ray_progress is not None:
                import ray.data
                from ray.util.debug import log_once

                ray.data.DataContext.get_current().enable_progress_bars = ray_progress
                if not ray_progress:  # asked for: skip Ray Data's "Progress bars disabled" warning
                    log_once("ray_data_progress_manager_disabled")
            if not (job.address or os.environ.get("RAY_ADDRESS")):
                _check_resources(job)  # a fixed local cluster; a remote one may autoscale
            timings.update(_execute(plan, pending, root, emit))
            peak_rss = timings.pop("replica_max_rss_mb")
        timings["score_wall_s"] = time.perf_counter() - t0
        emit({"event": "finalize"})
        fin = finalize(root, plan.regions, plan.chunks, track=job.output.track,
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
                             extra={"replica_max_rss_mb": peak_rss})
    except BaseException as err:
        status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        attempt.update(status=status, finished=now(), error=" ".join(str(err).split())[:500])
        manifest["status"] = status
        write_manifest(root, manifest)
        if run is not None:
            _end_run_quietly(run, "KILLED" if status == "interrupted" else "FAILED")
        raise
    if run is not None:  # the scores are complete whatever happens to the MLflow run now
        tracking_finish(run, result, fin)
    return result


def _end_run_quietly(run: tuple[Any, str], status: str) -> None:
    """Mark the MLflow run ended without hiding the error that ended it."""
    from hyena_platform import tracking

    try:
        tracking.end_run(run[0], run[1], status)
    except Exception as err:  # noqa: BLE001 - the original error is the one to report
        logging.getLogger(__name__).warning("could not mark MLflow run %s %s: %s", run[1], status, err)


def _manifest(plan: ScorePlan, root: Path, previous: dict[str, Any] | None,
              run: tuple[Any, str] | None) -> dict[str, Any]:
    job = plan.job
    return {
        "status": "running",
        "created": (previous or {}).get("created") or now(),
        "fingerprint": fingerprint(plan.identity),
        "identity": plan.identity,
        "model": plan.model.describe(),
        "window": {"size": plan.window, "stride": plan.stride, "start_token": "[SEP]",
                   "min_context": plan.window - plan.stride + 1,
                   "definition": "hyena_platform.score.windows (module docstring)"},
        "columns": ["pos", "ref", *plan.columns],
        "chunks": {"total": len(plan.chunks), "chunk_size": job.output.chunk_size},
        "regions": [[r.chrom, r.start, r.end] for r in plan.regions],
        "config": job.to_dict(),
        "source": plan.source,
        "mlflow": {"tracking_uri": run[0].uri, "run_id": run[1]} if run else None,
        "attempts": list((previous or {}).get("attempts", [])),
    }


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
            "chunk_files": fin.files}


# ------------------------------------------------------------------------------------------
# Ray


def _init_ray(address: str | None, ray_logs: bool) -> None:
    import ray
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = dict(logging_level="WARNING", log_to_driver=ray_logs)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", include_dashboard=False, **kwargs)


def _check_resources(job: ScoreJob) -> None:
    """The actor pools must fit the cluster, or Ray Data would wait forever."""
    import ray

    c = job.compute
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    need = c.replicas * c.cpus_per_replica + c.writers * c.cpus_per_writer
    if need > cpus + 1e-9:
        raise ConfigError(
            f"compute: {c.replicas} replica(s) x {c.cpus_per_replica:g} CPU + {c.writers} writer(s) x "
            f"{c.cpus_per_writer:g} CPU = {need:g} CPUs, but the Ray cluster has {cpus:g}; lower "
            "compute.replicas or compute.cpus_per_replica"
        )
    if c.replicas * c.gpus_per_replica > gpus + 1e-9:
        raise ConfigError(f"compute: {c.replicas} replica(s) x {c.gpus_per_replica:g} GPU, but the Ray "
                          f"cluster has {gpus:g} GPU(s); lower compute.replicas or gpus_per_replica")


def _execute(plan: ScorePlan, pending: list[Chunk], root: Path, emit: Progress) -> dict[str, float]:
    import ray
    import ray.data

    from hyena_platform.score.scorer import model_payload

    job, c = plan.job, plan.job.compute
    items = [{"index": ch.index, "chrom": ch.chrom, "start": ch.start, "end": ch.end,
              "length": ch.length, "source": ch.source} for ch in pending]
    payload = ray.put(model_payload(plan.model.model))
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        ScoreReplica, batch_size=1, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=min(c.replicas, len(pending))),
        num_cpus=c.cpus_per_replica, num_gpus=c.gpus_per_replica or None,
        # The weights' ref is wrapped so that Ray passes it through instead of inlining the
        # weights into each actor's constructor arguments; the actor fetches them itself.
        fn_constructor_kwargs={"payload": [payload], "window": plan.window, "stride": plan.stride,
                               "batch_size": c.batch_size, "reverse_strand": job.window.reverse_strand,
                               "probabilities": job.window.probabilities, "device": c.device,
                               "threads": c.torch_threads, "precision": c.precision,
                               "index_cache": job.data.index_cache})
    ds = ds.map_batches(ChunkWriter, batch_size=1, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=c.writers), num_cpus=c.cpus_per_writer,
                        fn_constructor_kwargs={"root": str(root), "names": plan.columns})
    total = sum(ch.bases for ch in pending)
    sums = {"read_s": 0.0, "model_s": 0.0, "model_cpu_s": 0.0, "write_s": 0.0, "replica_max_rss_mb": 0.0}
    done_bases, done = 0, 0
    t0 = time.perf_counter()
    try:
        for row in ds.iter_rows():
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
    except Exception as err:  # noqa: BLE001 - a user error raised in a task comes back as itself
        user = _find_user_error(err)
        if user is not None:
            raise type(user)(str(user)) from None
        raise
    del payload
    return sums


class ScoreReplica:
    """Actor: chunk specs -> read the chunk's span from the FASTA, score it (one model replica)."""

    def __init__(self, *, index_cache: str | None = None, **scorer):
        from hyena_platform.score.scorer import ChunkScorer

        self.scorer = ChunkScorer(**scorer)
        self.index_cache = index_cache

    def __call__(self, batch):
        from hyena_platform.data.genome import ChunkSpec, fetch_codes, tokenize_codes
        from hyena_platform.score.output import pack_scores

        s = self.scorer
        out = []
        for row in batch.to_pylist():
            t0 = time.perf_counter()
            chunk = Chunk(row["index"], row["chrom"], row["start"], row["end"], row["length"], row["source"])
            span = chunk_windows(chunk, s.window, s.stride, reverse_strand=s.reverse_strand)
            spec = ChunkSpec(chunk.source, chunk.chrom, span.fetch_start, span.fetch_end, "score", span.fetch_start)
            tokens = tokenize_codes(fetch_codes(spec, index_cache=self.index_cache), source=chunk.source,
                                    chrom=chunk.chrom, start=span.fetch_start)
            read_s = time.perf_counter() - t0
            scores = s.score_chunk(chunk, tokens, span.fetch_start)
            out.append(({**row, "read_s": read_s, "pid": os.getpid(), "max_rss_mb": _max_rss_mb()}, scores))
        return pack_scores(out)


def _max_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChunkWriter:
    """Actor: scored chunks -> Parquet files (write, fsync, rename) -> one status row each."""

    def __init__(self, *, root: str, names: list[str]):
        self.root, self.names = root, names

    def __call__(self, batch):
        import pyarrow as pa

        out = []
        for row, ref, columns in unpack_scores(batch):
            t0 = time.perf_counter()
            chunk = Chunk(row["index"], row["chrom"], row["start"], row["end"], row["length"], row["source"])
            _, size = write_chunk(self.root, chunk, chunk_table(chunk, ref, columns, self.names))
            out.append({"index": chunk.index, "chrom": chunk.chrom, "start": chunk.start, "end": chunk.end,
                        "bytes": size, "read_s": row["read_s"], "model_s": row["model_s"],
                        "model_cpu_s": row["model_cpu_s"],
                        "write_s": time.perf_counter() - t0, "scored_at": row["scored_at"],
                        "written_at": time.time(), "replica_pid": row["pid"],
                        "replica_max_rss_mb": row["max_rss_mb"]})
        return pa.Table.from_pylist(out)


def _find_user_error(err: BaseException) -> HyenaPlatformError | None:
    seen: set[int] = set()
    todo: list[Any] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, HyenaPlatformError):
            return e
        cause = getattr(e, "cause", None)
        todo.extend([cause if isinstance(cause, BaseException) else None, e.__cause__, e.__context__])
    return None
