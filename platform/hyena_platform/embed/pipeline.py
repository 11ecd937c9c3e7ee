"""The embedding job on Ray Data: plan -> embed (actor pool) -> write -> manifest and MLflow run.

    chunk specs (items as JSON) --map_batches(EmbedReplica: actor pool of model replicas)-->
        read each item's bases (FASTA span or inline), hyena.embed, one Arrow table per chunk
        --map_batches(EmbedWriter)--> OUT/embeddings/part-NNNNNN.parquet (write, fsync, rename)
        --> driver: progress, then the manifest and the MLflow run

The machinery is the scoring job's (hyena_platform.score): the model URI resolution and its
lineage, Ray start-up and the resource check, the manifest, the output fingerprint that refuses
to mix two models' results, and the MLflow run tagged with the model version. A chunk whose file
exists with the expected rows is skipped, so a rerun after a kill resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyena_platform.batch import (
    Progress, check_resources, init_ray, max_rss_mb, run_attempt, run_locked, run_pool, table_from_bytes,
    table_to_bytes,
)
from hyena_platform.data.fasta import content_digest
from hyena_platform.embed.config import EmbedJob
from hyena_platform.embed.embedder import EmbedSettings
from hyena_platform.embed.inputs import Item, chunk_rows, check_lengths, items_digest, plan_chunks, read_items
from hyena_platform.errors import ConfigError
from hyena_platform.outputs import OutputDir, atomic_path, now, remove_temporaries
from hyena_platform.result_set import (
    MANIFEST_NAME, check_output, claim_for_run, finished_parts, fingerprint, manifest_header, write_manifest,
)
from hyena_platform.score.plan import ResolvedModel, resolve_model
from hyena_platform.score.mlflow_run import start_job_run
from hyena_platform.write_gate import write_permit, writers_allowed

FORMAT = "hyena-embeddings"
FORMAT_VERSION = 1
EMBEDDINGS_DIR = "embeddings"


@dataclass
class EmbedPlan:
    job: EmbedJob
    items: list[Item]
    chunks: list[list[int]]
    model: ResolvedModel
    settings: EmbedSettings
    input_kind: str
    identity: dict[str, Any]


@dataclass
class EmbedResult:
    output: Path
    manifest: Path
    sequences: int
    chunks_total: int
    chunks_embedded: int  # in this run (the rest were already on disk)
    seconds: float
    run_id: str | None = None


def chunk_path(root: Path, index: int) -> Path:
    return root / EMBEDDINGS_DIR / f"part-{index:06d}.parquet"


def plan_embed(job: EmbedJob, *, source: str = "<job>", model: ResolvedModel | None = None) -> EmbedPlan:
    """Every check before work starts: the model, the inputs, lengths against l_max."""
    resolved = model if model is not None else resolve_model(job.model.uri, registry_uri=job.tracking.uri)
    cfg = resolved.model.config
    n_states = cfg.n_layer + 2
    bad = [layer for layer in job.embedding.layers if not -n_states <= layer < n_states]
    if bad:
        raise ConfigError(f"{source}: embedding.layers: {bad[0]} is out of range for a model with "
                          f"{n_states} hidden states (0 = token embeddings, -1 = final LayerNorm)")
    items, kind = read_items(job.input)
    window = check_lengths(items, job.embedding, cfg.l_max, kind)
    e = job.embedding
    settings = EmbedSettings(e.pooling, [layer % n_states for layer in e.layers], e.reverse_complement,
                             e.dtype, window, job.compute.batch_size)
    chunks = plan_chunks(items, job.output.chunk_size)
    identity = {"format": FORMAT_VERSION,
                "model": {"sha256": resolved.sha256, "config": cfg.to_dict()},
                # By content: the items (ids, coordinates, inline sequences) and the FASTA bytes.
                "inputs": items_digest(items),
                "genome": sorted(content_digest(s) for s in {i.source for i in items if i.source}),
                "embedding": vars(settings) | {"batch_size": None},
                "chunk_size": job.output.chunk_size, "precision": job.compute.precision}
    return EmbedPlan(job, items, chunks, resolved, settings, kind, identity)


def embed_output(root: Path) -> OutputDir:
    """The output directory (hyena_platform.outputs): it owns exactly the manifest and the part
    files; --overwrite/--fresh delete only those, and refuse if anything else is there."""
    return OutputDir(str(root), kind=FORMAT, owned=(MANIFEST_NAME, f"{EMBEDDINGS_DIR}/part-*.parquet"))


def finished(plan: EmbedPlan, root: Path) -> set[int]:
    """Chunks whose file exists with the expected row count; leftovers and stale files removed."""
    return finished_parts((index, chunk_path(root, index), chunk_rows(plan.items, chunk, plan.settings.pooling))
                          for index, chunk in enumerate(plan.chunks))


def run_embed(job: EmbedJob, *, source: str = "<job>", overwrite: bool = False, fresh: bool = False,
              progress: Progress | None = None, model: ResolvedModel | None = None) -> EmbedResult:
    """Embed `job`'s inputs: checks, the Ray pipeline, the manifest, the MLflow run."""
    emit = progress or (lambda event: None)
    return run_locked(
        job.output.path, job=f"hyena embed {source}", plan=lambda: plan_embed(job, source=source, model=model),
        output=embed_output,
        body=lambda plan, out, root, t0: _embed_locked(plan, out, root, overwrite=overwrite, fresh=fresh, emit=emit,
                                                       source=source, t0=t0))


def _embed_locked(plan: EmbedPlan, out: OutputDir, root: Path, *, overwrite: bool, fresh: bool,
                  emit: Progress, source: str, t0: float) -> EmbedResult:
    job = plan.job
    previous = check_output(out, plan.identity, overwrite=overwrite or job.output.overwrite, fmt=FORMAT,
                            command="hyena embed", model_uri=plan.model.resolved_uri)
    previous = claim_for_run(out, previous, fresh=fresh, job="hyena embed")
    remove_temporaries(out)  # leftovers of a killed attempt (ours by name)
    run = None
    if job.tracking.log_run:
        params = {"sequences": len(plan.items), "chunks": len(plan.chunks),
                  "embedding.resolved_window": plan.settings.window}
        run = start_job_run(job.tracking.config(), "embed", root, fingerprint(plan.identity), plan.model,
                            job.to_dict(), params, link_kind="embedding")
    manifest = _manifest(plan, root, previous, run, source)

    def body(attempt: dict[str, Any]) -> tuple[EmbedResult, dict[str, float]]:
        done = finished(plan, root)
        pending = [i for i in range(len(plan.chunks)) if i not in done]
        emit({"event": "start", "sequences": len(plan.items), "chunks": len(plan.chunks),
              "pending": len(pending), "model": plan.model.resolved_uri, "output": str(root),
              "input": plan.input_kind})
        stats = _execute(plan, pending, root, emit) if pending else {}
        attempt.update(status="complete", finished=now(), chunks_embedded=len(pending),
                       chunks_skipped=len(done), seconds=time.perf_counter() - t0, **stats)
        manifest.update(status="complete", files=[chunk_path(root, i).relative_to(root).as_posix()
                                                  for i in range(len(plan.chunks))])
        path = write_manifest(root, manifest, fmt=FORMAT, version=FORMAT_VERSION)
        return EmbedResult(root, path, len(plan.items), len(plan.chunks), len(pending),
                           time.perf_counter() - t0, run[1] if run else None), stats

    result, _ = run_attempt(manifest, lambda: write_manifest(root, manifest, fmt=FORMAT, version=FORMAT_VERSION),
                            run, body, lambda run, done: _finish_run(run, *done))
    return result


def _manifest(plan: EmbedPlan, root: Path, previous: dict[str, Any] | None, run, source: str) -> dict[str, Any]:
    s = plan.settings
    embedding = {"pooling": s.pooling, "layers": s.layers, "reverse_complement": s.reverse_complement,
                 "dtype": s.dtype, "dim": plan.model.model.config.d_model * len(s.layers),
                 "window": s.window, "long_sequences": plan.job.embedding.long_sequences,
                 "definition": "hyena.embedding and hyena_platform.embed.embedder (module docstrings)"}
    return manifest_header(
        plan.identity, plan.model, previous, run, config=plan.job.to_dict(), source=source,
        input=plan.input_kind, sequences=len(plan.items), embedding=embedding,
        chunks={"total": len(plan.chunks), "chunk_size": plan.job.output.chunk_size})


def _finish_run(run: tuple[Any, str], result: EmbedResult, stats: dict[str, float]) -> None:
    from hyena_platform import tracking

    cfg, run_id = run
    rows = [("sequences", float(result.sequences), 0), ("seconds", result.seconds, 0),
            ("chunks_embedded", float(result.chunks_embedded), 0)]
    rows += [(k, float(v), 0) for k, v in stats.items()]
    tracking.log_metrics(cfg, run_id, rows)
    tracking.log_artifact(cfg, run_id, result.manifest)
    tracking.end_run(cfg, run_id, "FINISHED")


# ------------------------------------------------------------------------------------------
# Ray


def _execute(plan: EmbedPlan, pending: list[int], root: Path, emit: Progress) -> dict[str, float]:
    from hyena_platform.score.scorer import model_payload

    job, c = plan.job, plan.job.compute
    init_ray(job.address)
    check_resources(c, job.address)
    items = [{"index": i, "items": json.dumps([plan.items[k].to_dict() for k in plan.chunks[i]])} for i in pending]
    rows = run_pool(items, compute=c, replica=EmbedReplica,
                    replica_kwargs={"payload": model_payload(plan.model.model), "settings": plan.settings,
                                    "device": c.device, "threads": c.torch_threads,
                                    "index_cache": job.input.index_cache},
                    writer=EmbedWriter, writer_kwargs={"root": str(root)}, address=job.address)
    sums = {"read_s": 0.0, "model_s": 0.0, "write_s": 0.0, "replica_max_rss_mb": 0.0}
    t0 = time.perf_counter()
    with writers_allowed(root):  # no part half-written or begun once the pool stops
        for done, row in enumerate(rows, start=1):
            for k in ("read_s", "model_s", "write_s"):
                sums[k] += row[k]
            sums["replica_max_rss_mb"] = max(sums["replica_max_rss_mb"], row["max_rss_mb"])
            emit({"event": "chunk", "done": done, "total": len(pending), "index": row["index"],
                  "rows": row["rows"], "elapsed_s": time.perf_counter() - t0})
    sums["embed_wall_s"] = time.perf_counter() - t0
    return sums


class EmbedReplica:
    """Actor: chunk specs -> the chunk's embeddings as one Arrow table (IPC bytes)."""

    def __init__(self, *, payload: list, settings: EmbedSettings, device: str, threads: int,
                 index_cache: str | None):
        import torch

        from hyena_platform.score.scorer import load_payload

        torch.set_num_threads(threads)
        self.model = load_payload(payload, device)  # weights from the object store, once
        self.settings, self.index_cache = settings, index_cache

    def __call__(self, batch):
        import pyarrow as pa

        from hyena_platform.embed.embedder import embed_items, item_tokens

        out = []
        for row in batch.to_pylist():
            t0 = time.perf_counter()
            items = [Item(**d) for d in json.loads(row["items"])]
            tokens = [item_tokens(item, self.index_cache) for item in items]
            t1 = time.perf_counter()
            table = embed_items(self.model, items, tokens, self.settings)
            out.append({"index": row["index"], "rows": table.num_rows, "blob": table_to_bytes(table),
                        "read_s": t1 - t0, "model_s": time.perf_counter() - t1, "max_rss_mb": max_rss_mb()})
        return pa.Table.from_pylist(out, schema=pa.schema([
            ("index", pa.int64()), ("rows", pa.int64()), ("blob", pa.large_binary()), ("read_s", pa.float64()),
            ("model_s", pa.float64()), ("max_rss_mb", pa.float64())]))


class EmbedWriter:
    """Actor: chunk tables -> Parquet files (temporary name, fsync, rename) -> one status row each."""

    def __init__(self, *, root: str):
        self.root = Path(root)

    def __call__(self, batch):
        import pyarrow as pa


        out = []
        for row in batch.to_pylist():
            t0 = time.perf_counter()
            import pyarrow.parquet as pq

            with write_permit(self.root), atomic_path(chunk_path(self.root, row["index"])) as tmp:
                pq.write_table(table_from_bytes(row["blob"]), tmp, compression="zstd")
            out.append({"index": row["index"], "rows": row["rows"], "read_s": row["read_s"],
                        "model_s": row["model_s"], "write_s": time.perf_counter() - t0,
                        "max_rss_mb": row["max_rss_mb"]})
        return pa.Table.from_pylist(out)

