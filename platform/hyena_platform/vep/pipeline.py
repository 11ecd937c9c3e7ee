"""The variant effect job on Ray Data, end to end: plan -> score (actor pool) -> write -> VCF.

    chunks of VCF records (read and checked on the driver) --map_batches(VepReplica: actor
    pool of model replicas)--> per record and ALT: REF check, skip reason, normalised edit,
    window; 4 sequences per variant (both alleles, both strands) batched across variants
    --map_batches(PartWriter)--> one Parquet file per chunk (write, fsync, rename)
    --> driver: progress; then the annotated VCF (bgzip + tabix), manifest, MLflow run

The machinery (Ray start-up, actor pools, user errors from tasks) is hyena_platform.batch, the
same as scoring's. Chunks whose file already holds the expected rows are skipped, so a rerun
after a kill resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyena_platform.batch import (
    Progress, check_resources, init_ray, max_rss_mb, run_attempt, run_locked, run_pool, table_from_bytes,
    table_to_bytes,
)
from hyena_platform.outputs import now
from hyena_platform.result_set import check_output, claim_for_run, fingerprint, manifest_header, write_manifest
from hyena_platform.score.plan import ResolvedModel
from hyena_platform.vep.config import VepJob
from hyena_platform.vep.output import (
    FORMAT, PARTS_DIR, VCF_NAME, finished_parts, read_results, vep_output, write_vcf,
)
from hyena_platform.vep.plan import FORMAT_VERSION, VariantChunk, VepPlan, plan_job
from hyena_platform.write_gate import write_permit, writers_allowed


@dataclass
class VepResult:
    output: Path
    manifest: Path
    parquet: Path
    vcf: Path | None
    index: Path | None
    model_uri: str
    records: int
    rows: int  # one per ALT
    scored: int  # rows with a score
    reasons: dict[str, int]  # skipped rows per reason
    chunks_total: int
    chunks_scored: int  # in this run
    timings: dict[str, float]
    run_id: str | None = None
    tracking_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_vep(job: VepJob, *, source: str = "<job>", overwrite: bool = False, fresh: bool = False,
            progress: Progress | None = None, model: ResolvedModel | None = None,
            ray_logs: bool = False, ray_progress: bool | None = None) -> VepResult:
    """Score every variant of `job.vcf`: every input check first, then the Ray pipeline, then
    the VCF. A rerun of the same job resumes unless `fresh`; results of another model, VCF or
    config in output.path are refused unless `overwrite` (or output.overwrite)."""
    emit = progress or (lambda event: None)
    return run_locked(
        job.output.path, job=f"hyena vep {source}", plan=lambda: plan_job(job, source=source, model=model),
        output=vep_output,
        body=lambda plan, out, root, t_start: _run_locked(plan, out, root, overwrite, fresh, emit, ray_logs,
                                                          ray_progress, t_start))


def _run_locked(plan: VepPlan, out: Any, root: Path, overwrite: bool, fresh: bool, emit: Progress, ray_logs: bool,
                ray_progress: bool | None, t_start: float) -> VepResult:
    job = plan.job
    previous = check_output(out, plan.identity, overwrite=overwrite or job.output.overwrite, fmt=FORMAT,
                            command="hyena vep", model_uri=plan.model.resolved_uri)
    previous = claim_for_run(out, previous, fresh=fresh, job="hyena vep")
    run = _tracking_start(plan, root) if job.tracking.log_run else None
    manifest = _manifest(plan, root, previous, run)

    def body(attempt: dict[str, Any]) -> VepResult:
        result = _run(plan, root, manifest, attempt, emit, ray_logs, ray_progress, t_start)
        result.run_id, result.tracking_uri = (run[1], run[0].uri) if run else (None, None)
        return result

    return run_attempt(manifest, lambda: _write(root, manifest), run, body, _tracking_finish)


def _run(plan: VepPlan, root: Path, manifest: dict[str, Any], attempt: dict[str, Any], emit: Progress,
         ray_logs: bool, ray_progress: bool | None, t_start: float) -> VepResult:
    job = plan.job
    done = finished_parts(root, plan.chunks)
    pending = [c for c in plan.chunks if c.index not in done]
    emit({"event": "start", "records": plan.records, "rows": plan.rows, "chunks": len(plan.chunks),
          "pending": len(pending), "flank": plan.flank, "model": plan.model.resolved_uri, "output": str(root)})
    timings: dict[str, Any] = {"read_s": 0.0, "model_s": 0.0, "write_s": 0.0}
    t0 = time.perf_counter()
    if pending:
        init_ray(job.address, ray_logs, ray_progress)
        check_resources(job.compute, job.address)
        timings.update(_execute(plan, pending, root, emit))
    timings["score_wall_s"] = time.perf_counter() - t0
    emit({"event": "finalize", "vcf": job.output.vcf})
    t1 = time.perf_counter()
    vcf, index = write_vcf(plan, root) if job.output.vcf else (None, None)
    timings["vcf_s"] = time.perf_counter() - t1
    table = read_results(root)
    reasons = Counter(r for r in table.column("reason").to_pylist() if r is not None)
    scored = table.num_rows - sum(reasons.values())
    timings["total_s"] = time.perf_counter() - t_start
    new_rows = sum(c.rows for c in pending)
    attempt.update(status="complete", finished=now(), chunks_scored=len(pending),
                   chunks_skipped=len(plan.chunks) - len(pending), rows_scored=new_rows, timings=timings,
                   variants_per_s=new_rows / timings["score_wall_s"] if pending else None)
    manifest.update(status="complete", counts={"records": plan.records, "rows": table.num_rows, "scored": scored,
                                               "skipped": dict(sorted(reasons.items()))},
                    files={"parquet": PARTS_DIR, "vcf": vcf.name if vcf else None,
                           "tabix": index.name if index else None},
                    vcf_sorted=plan.sorted)
    path = _write(root, manifest)
    return VepResult(root, path, root / PARTS_DIR, vcf, index, plan.model.resolved_uri, plan.records,
                     table.num_rows, scored, dict(reasons), len(plan.chunks), len(pending), timings,
                     extra={"rows_scored": new_rows})


def _write(root: Path, manifest: dict[str, Any]) -> Path:
    return write_manifest(root, manifest, FORMAT, FORMAT_VERSION)


def _manifest(plan: VepPlan, root: Path, previous: dict[str, Any] | None, run: tuple[Any, str] | None) -> dict[str, Any]:
    job = plan.job
    return manifest_header(
        plan.identity, plan.model, previous, run, config=job.to_dict(), source=plan.source,
        vcf={"path": plan.vcf, "sha256": plan.vcf_sha256, "records": plan.records, "sorted": plan.sorted},
        window={"flank": plan.flank, "max_allele": job.window.max_allele, "start_token": "[SEP]",
                "definition": "hyena_platform.vep.haplotypes (module docstring)"},
        chunks={"total": len(plan.chunks), "chunk_size": job.output.chunk_size})


def _execute(plan: VepPlan, pending: list[VariantChunk], root: Path, emit: Progress) -> dict[str, float]:
    from hyena_platform.score.scorer import model_payload

    c = plan.job.compute
    items = [{"index": ch.index, "rows": ch.rows, "records": table_to_bytes(ch.table)} for ch in pending]
    replica_kwargs = {"payload": model_payload(plan.model.model), "flank": plan.flank,
                      "max_allele": plan.job.window.max_allele, "batch_size": c.batch_size, "device": c.device,
                      "threads": c.torch_threads, "precision": c.precision, "fasta": plan.fasta,
                      "lengths": plan.lengths, "index_cache": plan.job.data.index_cache, "info": plan.info}
    rows = run_pool(items, compute=c, replica=VepReplica, replica_kwargs=replica_kwargs,
                    writer=PartWriter, writer_kwargs={"root": str(root)}, address=plan.job.address)
    total = sum(ch.rows for ch in pending)
    sums = {"read_s": 0.0, "model_s": 0.0, "write_s": 0.0, "replica_max_rss_mb": 0.0}
    done_rows = done = 0
    t0 = time.perf_counter()
    with writers_allowed(root):  # no part half-written or begun once the pool stops
        for row in rows:
            done += 1
            done_rows += row["rows"]
            for k in ("read_s", "model_s", "write_s"):
                sums[k] += row[k]
            sums["replica_max_rss_mb"] = max(sums["replica_max_rss_mb"], row["max_rss_mb"])
            elapsed = time.perf_counter() - t0
            sums.setdefault("first_chunk_s", elapsed)  # start-up: Ray Data, actors, first chunk
            rate = done_rows / elapsed if elapsed > 0 else float("nan")
            emit({"event": "chunk", "done": done, "total": len(pending), "rows": done_rows, "variants_per_s": rate,
                  "eta_s": (total - done_rows) / rate if rate > 0 else None})
    return sums


class VepReplica:
    """Actor: a chunk of records -> its result rows, packed as Arrow IPC (one model replica)."""

    def __init__(self, *, fasta: dict[str, str], lengths: dict[str, int], index_cache: str | None,
                 info: dict[str, str], **scorer):
        from hyena_platform.vep.reference import ReferenceFetcher
        from hyena_platform.vep.scorer import VariantScorer

        self.scorer = VariantScorer(**scorer)
        self.fetch = ReferenceFetcher(fasta, lengths, index_cache=index_cache)
        self.lengths, self.info = lengths, info

    def __call__(self, batch):
        import pyarrow as pa

        from hyena_platform.vep.output import rows_table
        from hyena_platform.vep.plan import table_records

        out = []
        for item in batch.to_pylist():
            t0 = time.perf_counter()
            records = table_records(table_from_bytes(item["records"]))
            rows, model_s = self.scorer.score_records(records, self.fetch, self.lengths)
            table = rows_table(rows, self.info)
            assert table.num_rows == item["rows"], (item["index"], table.num_rows, item["rows"])
            out.append({"index": item["index"], "rows": item["rows"], "result": table_to_bytes(table),
                        "read_s": time.perf_counter() - t0 - model_s, "model_s": model_s,
                        "pid": os.getpid(), "max_rss_mb": max_rss_mb()})
        return pa.Table.from_pylist(out)


class PartWriter:
    """Actor: result rows of a chunk -> its Parquet file (write, fsync, rename) -> a status row."""

    def __init__(self, *, root: str):
        self.root = root

    def __call__(self, batch):
        import pyarrow as pa

        from hyena_platform.vep.output import write_part
        from hyena_platform.vep.plan import VariantChunk

        out = []
        for item in batch.to_pylist():
            t0 = time.perf_counter()
            chunk = VariantChunk(item["index"], 0, 0, item["rows"], None)
            with write_permit(self.root):
                size = write_part(self.root, chunk, table_from_bytes(item.pop("result")))
            out.append({**item, "bytes": size, "write_s": time.perf_counter() - t0})
        return pa.Table.from_pylist(out)


# ------------------------------------------------------------------------------------------
# MLflow


def _tracking_start(plan: VepPlan, root: Path) -> tuple[Any, str]:
    from hyena_platform.score.mlflow_run import start_job_run

    params = {"window.resolved_flank": plan.flank, "records": plan.records, "variants": plan.rows,
              "chunks": len(plan.chunks), "vcf.sha256": plan.vcf_sha256}
    return start_job_run(plan.job.tracking.config(), "vep", root, fingerprint(plan.identity), plan.model,
                         plan.job.to_dict(), params, link_kind="vep")


def _tracking_finish(run: tuple[Any, str], result: VepResult) -> None:
    from hyena_platform import tracking

    cfg, run_id = run
    rows = [("variants", result.rows, 0), ("variants_scored", result.scored, 0)]
    rows += [(f"skipped.{k}", v, 0) for k, v in sorted(result.reasons.items())]
    if result.chunks_scored and result.timings.get("score_wall_s"):
        rows.append(("variants_per_s", result.extra["rows_scored"] / result.timings["score_wall_s"], 0))
    rows += [(k, v, 0) for k, v in result.timings.items() if isinstance(v, (int, float))]
    tracking.log_metrics(cfg, run_id, rows)
    tracking.log_artifact(cfg, run_id, result.manifest)
    tracking.end_run(cfg, run_id, "FINISHED")


__all__ = ["VepResult", "run_vep", "VCF_NAME"]
