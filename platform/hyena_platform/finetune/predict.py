"""`hyena predict JOB.yaml`: a fine-tuned sequence model over a table, a FASTA or BED regions, as a
Ray batch job writing Parquet.

Sequences are read on the driver (a table's sequence column, every FASTA record, or the BED
intervals of a FASTA), cut into parts of `compute.part_size` rows; a pool of model replicas
(Ray Data actors) predicts each part and writes it as ``parts/part-NNNNN.parquet`` (temporary
name, fsync, rename), like the scoring job's chunks. The directory is owned and locked
(hyena_platform.outputs, kind hyena-predictions). A rerun skips the parts already written for
the same model and input (``_manifest.json`` records both); another model or input needs
``--overwrite``, which deletes only this job's own files (_manifest.json, parts/part-*.parquet). Columns: ``id`` (file:row, record, or
chrom:start-end), ``length``, ``prediction`` (class name, or the value), and one ``p_<class>``
(classification) or ``pred_<target>`` (regression) column per label.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field

from hyena_platform.config import apply_overrides, from_mapping, kind_field, load_yaml_mapping, section
from hyena_platform.errors import InputError
from hyena_platform.finetune.data_config import Crop
from hyena_platform.score.config import ReplicaPoolSection
from hyena_platform.submission import SubmissionSection

MANIFEST = "_manifest.json"
PARTS = "parts"
KIND = "hyena-predictions"


@section
class PredictModelSection:
    """The fine-tuned sequence model: models:/NAME@ALIAS, models:/NAME/VERSION or a checkpoint directory."""

    uri: str = Field("", description="required")


@section
class PredictInputSection:
    """What to predict: a table, every record of a FASTA, or BED regions of a FASTA."""

    format: Literal["table", "fasta", "bed"] = Field("table", description=(
        "table: Parquet/CSV/TSV with a sequence column"))
    path: str = Field("", description="the table, the FASTA, or the BED file (format bed)")
    fasta: str | None = Field(None, description="format bed: the genome the regions are on")
    sequence_column: str = Field("sequence", description="format table")
    crop: Crop = Field("none", description="sequences longer than the model: error, or keep which part")


@section
class PredictComputeSection(ReplicaPoolSection):
    """The replica pool; each replica writes the parts it predicts."""

    batch_size: int = Field(32, description="sequences per model call")
    part_size: int = Field(1024, description="sequences per output file (the unit of resumption)")

    def validate(self) -> None:
        super().validate()
        if self.part_size < 1:
            raise ValueError(f"compute.part_size must be >= 1, got {self.part_size}")
        if self.cpus_per_replica <= 0:
            raise ValueError(f"compute.cpus_per_replica must be > 0, got {self.cpus_per_replica}")


@section
class PredictTrackingSection:
    """MLflow: the registry that models:/ URIs are read from."""

    uri: str = Field("sqlite:///mlflow.db", description="the MLflow store a models:/ URI is looked up in")


@section
class PredictJob:
    model: PredictModelSection
    input: PredictInputSection
    output: str = Field("predictions", description="output directory")
    kind: Literal["predict"] = kind_field("predict")
    compute: PredictComputeSection
    tracking: PredictTrackingSection
    submission: SubmissionSection

    def validate(self) -> None:
        if not self.model.uri:
            raise ValueError("model.uri is required (models:/NAME@ALIAS or a checkpoint directory)")
        if not self.input.path:
            raise ValueError("input.path is required")
        if self.input.format == "bed" and not self.input.fasta:
            raise ValueError("input.format bed needs input.fasta (the genome of the regions)")


def load_predict_job(path: str | Path, overrides: Sequence[str] = ()) -> PredictJob:
    data = load_yaml_mapping(path)
    apply_overrides(data, overrides, source=str(path))
    return from_mapping(PredictJob, data, source=str(path))


# --------------------------------------------------------------------------------------------
# Inputs (driver)


def read_inputs(cfg: PredictInputSection) -> tuple[list[str], list[np.ndarray], list[str]]:
    """(ids, token arrays, input files) of every sequence to predict."""
    from hyena_platform.finetune.data import _read_arrow, tokenize

    if cfg.format == "table":
        table = _read_arrow(Path(cfg.path))
        if cfg.sequence_column not in table.column_names:
            raise InputError(f"{cfg.path}: no column {cfg.sequence_column!r}; columns are "
                             f"{', '.join(table.column_names)}; set input.sequence_column")
        seqs = table.column(cfg.sequence_column).to_pylist()
        ids = [f"{Path(cfg.path).name}:row {i + 1}" for i in range(len(seqs))]
        for where, s in zip(ids, seqs):
            if not isinstance(s, str) or not s:
                raise InputError(f"{cfg.path}: {where.split(':', 1)[1]}: empty or missing sequence")
        return ids, [tokenize(s, f"{cfg.path}: {w.split(':', 1)[1]}") for w, s in zip(ids, seqs)], [cfg.path]
    from hyena_platform.data.fasta import fasta_reader, tokenize_codes
    from hyena_platform.data.genome import read_records

    fasta = cfg.path if cfg.format == "fasta" else cfg.fasta
    records = {r.name: r for r in read_records([fasta])}
    regions = ([(r.name, 0, r.length) for r in records.values()] if cfg.format == "fasta"
               else _bed_regions(cfg.path, records))
    ids, tokens = [], []
    for chrom, start, end in regions:
        raw = fasta_reader(fasta).raw(chrom, start, end).translate(None, b"\r\n")
        tokens.append(tokenize_codes(np.frombuffer(raw, dtype=np.uint8), source=fasta, chrom=chrom, start=start))
        ids.append(chrom if cfg.format == "fasta" else f"{chrom}:{start}-{end}")
    return ids, tokens, [fasta] + ([cfg.path] if cfg.format == "bed" else [])


def _bed_regions(path: str, records: dict) -> list[tuple[str, int, int]]:
    from hyena_platform.data.genome import bed_intervals

    return [(iv.chrom, iv.start, iv.end) for iv in bed_intervals(
        path, columns="chrom, start, end", noun="region", lengths={name: r.length for name, r in records.items()})]


# --------------------------------------------------------------------------------------------
# Output ownership and resumption


def output_dir(path: str):
    """The job's output directory as an owned output (hyena_platform.outputs)."""
    from hyena_platform.outputs import OutputDir

    return OutputDir(path, kind=KIND, owned=(MANIFEST, f"{PARTS}/part-*.parquet"))


def done_parts(root: Path, identity: dict[str, Any], *, overwrite: bool, out) -> set[int]:
    """Part indices already written for this identity (model, input, part size). Another
    identity needs `overwrite`, which deletes only this job's files (manifest first)."""
    manifest = root / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()).get("identity") != identity:
        if not overwrite:
            raise InputError(f"{root}: holds predictions of another model or input; rerun with --overwrite "
                             "to replace them, or choose another output directory")
        out.clear(first=(MANIFEST,))
    _write_json(manifest, {"identity": identity, "complete": False})
    parts = root / PARTS
    return {int(p.stem.split("-")[1]) for p in parts.glob("part-*.parquet")} if parts.is_dir() else set()


def _write_json(path: Path, data: dict) -> None:
    from hyena_platform.outputs import atomic_write

    atomic_write(path, json.dumps(data, indent=2) + "\n")


def write_part(root: str, index: int, table) -> int:
    import pyarrow.parquet as pq

    from hyena_platform.outputs import atomic_path

    final = Path(root) / PARTS / f"part-{index:05d}.parquet"
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp)
    return final.stat().st_size


# --------------------------------------------------------------------------------------------
# The replica (a Ray Data actor)


class PredictReplica:
    """Actor: parts of sequences -> predictions -> one Parquet file per part."""

    def __init__(self, *, payload, root: str, batch_size: int, threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        self.model = ray.get(payload[0]).eval()
        self.root, self.batch_size = root, batch_size

    def __call__(self, batch):
        import pyarrow as pa

        out = []
        for part in batch.to_pylist():
            table = predict_table(self.model, part["ids"], [np.frombuffer(t, dtype=np.uint8) for t in part["tokens"]],
                                  self.batch_size)
            out.append({"part": part["part"], "rows": table.num_rows, "bytes": write_part(self.root, part["part"], table)})
        return pa.Table.from_pylist(out)


def predict_table(model, ids: list[str], tokens: list[np.ndarray], batch_size: int):
    """Predictions of a sequence model as an Arrow table (pure torch; tested without Ray)."""
    import pyarrow as pa
    import torch

    from hyena.heads import probabilities
    from hyena_platform.finetune.batches import collate
    from hyena_platform.finetune.examples import Split

    head = model.head_config
    names = list(head.label_names) or [str(i) for i in range(head.num_labels)]
    split = Split(tokens, np.zeros(len(tokens), dtype=np.int64), ids)
    scores = []
    with torch.inference_mode():
        for i in range(0, len(tokens), batch_size):
            b = collate(split, range(i, min(i + batch_size, len(tokens))), task="sequence",
                        problem_type="single_label_classification")
            scores.append(probabilities(model(b["input_ids"], b["attention_mask"]).logits, head.problem_type).numpy())
    p = np.concatenate(scores) if scores else np.zeros((0, len(names)), dtype=np.float32)
    cols: dict[str, Any] = {"id": ids, "length": [len(t) for t in tokens]}
    if head.problem_type == "single_label_classification":
        cols["prediction"] = [names[i] for i in p.argmax(axis=1)]
    elif head.problem_type == "multi_label_classification":
        cols["prediction"] = [[n for n, on in zip(names, row) if on] for row in p >= 0.5]
    else:
        cols["prediction"] = p[:, 0] if p.shape[1] == 1 else list(p)
    prefix = "pred_" if head.problem_type == "regression" else "p_"
    for j, n in enumerate(names):
        cols[f"{prefix}{n}"] = p[:, j].astype(np.float32)
    return pa.table(cols)


# --------------------------------------------------------------------------------------------
# The job (driver)


@dataclass
class PredictResult:
    output: Path
    rows: int
    parts: int
    skipped_parts: int
    model: str


def load_sequence_model(uri: str, tracking_uri: str, workdir: Path):
    """(model, resolved description) of a fine-tuned sequence model."""
    from hyena import CheckpointError
    from hyena.heads import HyenaDNAForSequencePrediction, from_pretrained
    from hyena_platform import tracking

    resolved = uri
    path = Path(uri).expanduser()
    if uri.startswith("models:/"):
        info = tracking.model_version(uri, tracking_uri=tracking_uri)
        resolved = f"models:/{info.name}/{info.version}"
        path = tracking.download_model(resolved, workdir, tracking_uri=tracking_uri)
    elif not path.exists():
        raise InputError(f"model.uri {uri!r}: no such checkpoint directory, and not models:/NAME@ALIAS")
    try:
        model = from_pretrained(path)
    except CheckpointError as err:
        raise InputError(f"model.uri {uri}: {err}") from None
    if not isinstance(model, HyenaDNAForSequencePrediction):
        raise InputError(f"model.uri {uri}: a per-base (token) model; score genomes with it through "
                         "`hyena score` instead")
    return model, resolved


def run_predict(job: PredictJob, *, source: str = "<job>", overwrite: bool = False,
                ray_logs: bool = False) -> PredictResult:
    import tempfile

    from hyena_platform import tracking
    from hyena_platform.finetune.examples import Split, fit_lengths, hash_files

    root = Path(job.output).expanduser().resolve()
    with tempfile.TemporaryDirectory(prefix="hyena-predict-") as tmp:
        model, resolved = load_sequence_model(job.model.uri, tracking.resolve_uri(job.tracking.uri), Path(tmp))
    ids, tokens, files = read_inputs(job.input)
    fitted = fit_lengths(Split(tokens, np.zeros(len(tokens)), ids), model.config.l_max, job.input.crop,
                         split_name="input")
    identity = {"model": resolved, "input": {**job.input.__dict__}, "input_sha256": hash_files(files),
                "part_size": job.compute.part_size}
    out = output_dir(str(root))
    out.check_writable()
    with out.lock(job=f"hyena predict {source}"):
        out.claim(job=f"hyena predict {source}")
        done = done_parts(root, identity, overwrite=overwrite, out=out)
        return _predict_parts(job, model, resolved, ids, fitted.tokens, done, root, identity, source, ray_logs)


def _predict_parts(job: PredictJob, model, resolved: str, ids: list[str], tokens: list[np.ndarray], done: set[int],
                   root: Path, identity: dict, source: str, ray_logs: bool) -> PredictResult:
    import ray

    size = job.compute.part_size
    parts = [{"part": i // size, "ids": ids[i:i + size], "tokens": [t.tobytes() for t in tokens[i:i + size]]}
             for i in range(0, len(ids), size)]
    pending = [p for p in parts if p["part"] not in done]
    if pending:
        from hyena_platform.ray_setup import actor_pool_options, pool_options_accepted, start_ray

        start_ray(None, worker_logs=ray_logs)  # a cluster from RAY_ADDRESS, else a local Ray on 127.0.0.1
        c = job.compute
        with pool_options_accepted():
            ds = ray.data.from_items(pending, override_num_blocks=len(pending)).map_batches(
                PredictReplica, batch_size=1, batch_format="pyarrow", concurrency=c.replicas,
                num_cpus=c.cpus_per_replica, **actor_pool_options(None),
                fn_constructor_kwargs={"payload": [ray.put(model)], "root": str(root), "batch_size": c.batch_size,
                                       "threads": c.torch_threads})
        ds.materialize()
    _write_json(root / MANIFEST, {"identity": identity, "complete": True, "rows": len(ids), "parts": len(parts),
                                  "columns": predict_table(model, ids[:1], tokens[:1], 1).column_names,
                                  "source": source})
    return PredictResult(root, len(ids), len(parts), len(parts) - len(pending), resolved)
