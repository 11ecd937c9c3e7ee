"""The output directory: per-chunk Parquet files, written then renamed, and ``_manifest.json``.

    OUT/_manifest.json                              model, config, coverage, timings, status
    OUT/scores/chrom=chrII/000000000000-000000065536.parquet   one file per chunk
    OUT/bins.parquet                                per-bin summaries (see finalize)
    OUT/log_prob.bw (or .bedGraph)                  the exported track

Read the scores with ``pyarrow.dataset.dataset("OUT/scores", partitioning="hive")`` (or pandas,
polars, DuckDB, Spark): columns ``pos`` (int64, 0-based), ``ref`` (A/C/G/T/N), ``log_prob`` and
``entropy`` (float32, null where ref is N), optionally ``p_a p_c p_g p_t``, ``bits_saved``
(log2 P_model - log2 P_kmer, hyena_platform.score.kmer), and with the reverse
strand ``log_prob_rc entropy_rc log_prob_mean entropy_mean`` (+ ``p_*_rc``), plus ``chrom``
from the directory name.

A chunk file appears only complete: it is written to a hidden temporary name in the same
directory, flushed to disk, then renamed. A rerun treats a chunk as finished when its file exists
with the expected number of rows, and removes leftover temporary files. The manifest's
``fingerprint`` covers everything that changes the scores (model weights, genome, regions,
window, stride, window layout, strands, columns, chunking, precision); a rerun with a different fingerprint is
refused unless told to overwrite, so one directory never mixes two models' scores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

import numpy as np

from hyena import tokenizer
from hyena_platform import result_set
from hyena_platform.result_set import MANIFEST_NAME, finished_parts, write_parquet_atomic
from hyena_platform.score.tiling import Chunk

SCORES_DIR = "scores"
BINS_NAME = "bins.parquet"
FORMAT = "hyena-scores"
FORMAT_VERSION = 1
BASES = np.array(list(tokenizer.BASES))  # the ref column's dictionary: index = token id - tokenizer.A
PROB_NAMES = ("p_a", "p_c", "p_g", "p_t")


def score_columns(*, reverse_strand: bool, probabilities: bool, classes: Sequence[str] = (),
                  bits_saved: bool = False) -> list[str]:
    """The float32 columns of a chunk file, in file order (after pos and ref). `classes`: the
    labels of a fine-tuned per-base model, one probability column ``p_<class>`` each;
    `bits_saved`: log2 P_model - log2 P_kmer per base (hyena_platform.score.kmer)."""
    cols = ["log_prob", "entropy"] + (list(PROB_NAMES) if probabilities else []) + class_columns(classes)
    cols += ["bits_saved"] if bits_saved else []
    if reverse_strand:
        cols += ["log_prob_rc", "entropy_rc"] + ([f"{p}_rc" for p in PROB_NAMES] if probabilities else [])
        cols += ["log_prob_mean", "entropy_mean"]
    return cols


def class_columns(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def partition_dir(root: str | Path, chrom: str) -> Path:
    return Path(root) / SCORES_DIR / f"chrom={quote(chrom, safe='')}"


def chunk_path(root: str | Path, chunk: Chunk) -> Path:
    return partition_dir(root, chunk.chrom) / f"{chunk.name}.parquet"


# ------------------------------------------------------------------------------------------
# Between pipeline stages: one row per chunk, arrays as binary blobs (chunks never split)


def pack_scores(rows: Sequence[tuple[dict[str, Any], Any]]):
    """[(chunk row dict, ChunkScores)] -> pyarrow table, one row per chunk."""
    import pyarrow as pa

    from hyena_platform.data.chunks import binary_array

    meta_keys = ("index", "chrom", "start", "end", "length", "source", "read_s", "pid", "max_rss_mb")
    table = {k: [r[k] for r, _ in rows] for k in meta_keys}
    table["model_s"] = [s.model_s for _, s in rows]
    table["model_cpu_s"] = [s.model_cpu_s for _, s in rows]
    table["scored_at"] = [time.time()] * len(rows)
    table["ref"] = binary_array([s.ref for _, s in rows])
    names = list(rows[0][1].columns) if rows else []
    for name in names:
        table[f"col:{name}"] = binary_array([s.columns[name].astype(np.float32, copy=False).reshape(-1).view(np.uint8)
                                             for _, s in rows])
    return pa.table(table)


def unpack_scores(batch) -> list[tuple[dict[str, Any], np.ndarray, dict[str, np.ndarray]]]:
    from hyena_platform.data.chunks import column_arrays

    names = [c[4:] for c in batch.column_names if c.startswith("col:")]
    refs = column_arrays(batch["ref"])
    blobs = {n: column_arrays(batch[f"col:{n}"]) for n in names}
    meta = batch.select([c for c in batch.column_names if c != "ref" and not c.startswith("col:")]).to_pylist()
    out = []
    for i, row in enumerate(meta):
        cols = {}
        for n in names:
            arr = blobs[n][i].view(np.float32)
            cols[n] = arr.reshape(-1, 4) if n.startswith("probs") else arr
        out.append((row, refs[i], cols))
    return out


# ------------------------------------------------------------------------------------------
# Chunk files


def chunk_table(chunk: Chunk, ref: np.ndarray, columns: dict[str, np.ndarray], names: Sequence[str]):
    """The Arrow table of one chunk file: pos, ref, then `names` (float32, null where ref is N)."""
    import pyarrow as pa

    n = chunk.bases
    if ref.shape[0] != n:
        raise ValueError(f"chunk {chunk.name}: {ref.shape[0]} refs for {n} bases")  # internal
    is_n = ref == 11
    mask = is_n if is_n.any() else None
    arrays = {
        "pos": pa.array(np.arange(chunk.start, chunk.end, dtype=np.int64)),
        "ref": pa.DictionaryArray.from_arrays(pa.array(ref.astype(np.int8) - tokenizer.A), pa.array(BASES)),
    }
    flat: dict[str, np.ndarray] = {}
    for key, value in columns.items():
        if key in ("probs", "probs_rc"):
            suffix = "_rc" if key == "probs_rc" else ""
            for j, p in enumerate(PROB_NAMES):
                flat[p + suffix] = value[:, j]
        else:
            flat[key] = value
    for name in names:
        values = np.ascontiguousarray(flat[name], dtype=np.float32)
        if values.shape[0] != n:
            raise ValueError(f"chunk {chunk.name}: column {name} has {values.shape[0]} values for {n} bases")
        arrays[name] = pa.array(values, mask=mask)
    return pa.table(arrays)


def write_chunk(root: str | Path, chunk: Chunk, table) -> tuple[Path, int]:
    """Write `table` as the chunk's file: temporary name, fsync, rename. Returns (path, bytes)."""
    final = chunk_path(root, chunk)
    return final, write_parquet_atomic(final, table)


def finished_chunks(root: str | Path, chunks: Iterable[Chunk]) -> set[int]:
    """Indices of chunks whose file exists with the right row count; removes temporary files."""
    return finished_parts((chunk.index, chunk_path(root, chunk), chunk.bases) for chunk in chunks)


# ------------------------------------------------------------------------------------------
# Manifest and the identity of a result set


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The scoring manifest of `root`, or None (InputError if it is not one)."""
    return result_set.read_manifest(root, FORMAT)


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> Path:
    return result_set.write_manifest(root, manifest, FORMAT, FORMAT_VERSION)


def score_output(root: str | Path):
    """The scoring output directory as an OutputDir (hyena_platform.outputs): ours when it
    holds our marker or a scoring manifest; it owns exactly the files a scoring job writes."""
    from hyena_platform.outputs import OutputDir

    return OutputDir(str(root), kind=FORMAT, owned=OWNED,
                     legacy_marker=lambda out: result_set.try_manifest(out.root, FORMAT) is not None)


def _owned_patterns() -> tuple[str, ...]:
    # every column a job can write; p_* covers a fine-tuned model's class columns (p_CDS+, ...)
    columns = score_columns(reverse_strand=True, probabilities=True, classes=["*"], bits_saved=True)
    tracks = [f"{c}{suffix}" for c in columns for suffix in (".bw", ".bedGraph")]
    return (MANIFEST_NAME, f".{MANIFEST_NAME}.tmp-*", f"{SCORES_DIR}/chrom=*/*.parquet",
            f"{SCORES_DIR}/chrom=*/.*.parquet.tmp-*", BINS_NAME, f".{BINS_NAME}.tmp",
            *tracks, *(f".{t}.tmp" for t in tracks))


OWNED = _owned_patterns()


def check_output(root: str | Path, identity: dict[str, Any], *, overwrite: bool,
                 model_uri: str | None = None) -> dict[str, Any] | None:
    """Before any work: the manifest to resume from, or None (hyena_platform.result_set.check_output)."""
    return result_set.check_output(score_output(root), identity, overwrite=overwrite, fmt=FORMAT,
                                   command="hyena score", model_uri=model_uri)
