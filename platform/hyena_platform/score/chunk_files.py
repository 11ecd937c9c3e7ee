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
window, stride, strands, columns, chunking, precision); a rerun with a different fingerprint is
refused unless told to overwrite, so one directory never mixes two models' scores.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

import numpy as np

from hyena_platform.errors import InputError
from hyena_platform.score.tiling import Chunk

MANIFEST_NAME = "_manifest.json"
SCORES_DIR = "scores"
BINS_NAME = "bins.parquet"
FORMAT = "hyena-scores"
FORMAT_VERSION = 1
BASES = np.array(["A", "C", "G", "T", "N"])  # ref dictionary: token id - 7
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
        "ref": pa.DictionaryArray.from_arrays(pa.array(ref.astype(np.int8) - 7), pa.array(BASES)),
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


def write_parquet_atomic(final: Path, table) -> int:
    """Write `table` to `final` through a hidden temporary name in the same directory, fsync,
    rename: the file appears only complete. Returns its size in bytes."""
    import pyarrow.parquet as pq

    from hyena_platform.outputs import write_error

    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as err:  # disk full, read-only: one line (OutputError), not a Ray traceback
        raise write_error(final, err) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return final.stat().st_size


def finished_chunks(root: str | Path, chunks: Iterable[Chunk]) -> set[int]:
    """Indices of chunks whose file exists with the right row count; removes temporary files."""
    import pyarrow.parquet as pq

    root = Path(root)
    done: set[int] = set()
    seen_dirs: set[Path] = set()
    for chunk in chunks:
        path = chunk_path(root, chunk)
        if path.parent not in seen_dirs:
            seen_dirs.add(path.parent)
            if path.parent.is_dir():
                for leftover in path.parent.glob(".*.parquet.tmp-*"):
                    leftover.unlink(missing_ok=True)
        if not path.exists():
            continue
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception:  # noqa: BLE001 - any unreadable file is simply scored again
            rows = -1
        if rows == chunk.bases:
            done.add(chunk.index)
        else:
            path.unlink()
    return done


# ------------------------------------------------------------------------------------------
# Manifest and the identity of a result set


def fingerprint(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def read_manifest(root: str | Path, fmt: str = FORMAT) -> dict[str, Any] | None:
    """The ``_manifest.json`` of a result directory of format `fmt` (hyena-scores, hyena-vep)."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != fmt:
            raise ValueError(f"format {data.get('format')!r}")
        return data
    except (ValueError, OSError) as err:
        raise InputError(f"{path}: not a scoring manifest ({err}); remove it or choose another "
                         "output.path") from None


def write_manifest(root: str | Path, manifest: dict[str, Any], fmt: str = FORMAT,
                   version: int = FORMAT_VERSION) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"format": fmt, "version": version, **manifest, "updated": now()}
    from hyena_platform.outputs import atomic_write  # temp name, fsync, rename; removed on failure

    return atomic_write(root / MANIFEST_NAME, json.dumps(manifest, indent=1, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def score_output(root: str | Path):
    """The scoring output directory as an OutputDir (hyena_platform.outputs): ours when it
    holds our marker or a scoring manifest; it owns exactly the files a scoring job writes."""
    from hyena_platform.outputs import OutputDir

    return OutputDir(str(root), kind=FORMAT, owned=OWNED, legacy_marker=lambda out: _try_manifest(Path(out.root)) is not None)


def _owned_patterns() -> tuple[str, ...]:
    # every column a job can write; p_* covers a fine-tuned model's class columns (p_CDS+, ...)
    columns = score_columns(reverse_strand=True, probabilities=True, classes=["*"], bits_saved=True)
    tracks = [f"{c}{suffix}" for c in columns for suffix in (".bw", ".bedGraph")]
    return (MANIFEST_NAME, f".{MANIFEST_NAME}.tmp-*", f"{SCORES_DIR}/chrom=*/*.parquet",
            f"{SCORES_DIR}/chrom=*/.*.parquet.tmp-*", BINS_NAME, f".{BINS_NAME}.tmp",
            *tracks, *(f".{t}.tmp" for t in tracks))


OWNED = _owned_patterns()


def check_output(root: str | Path, identity: dict[str, Any], *, overwrite: bool,
                 model_uri: str | None = None, fmt: str = FORMAT, output: Any = None,
                 command: str = "hyena score") -> dict[str, Any] | None:
    """Before any work: the existing manifest to resume from (same fingerprint), or None for a
    fresh start. Results of another model or config are refused unless `overwrite`, which then
    deletes only the files the job writes; a directory we did not write is never touched.
    `fmt`, `output` (an OutputDir, default the scoring job's) and `command` let every batch job
    that writes a manifest (score, vep) share this."""
    from hyena_platform.outputs import LOCK_NAME

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"output.path {root} is a file; give a directory")
    out = output if output is not None else score_output(root)
    if not out.exists():
        out.check_writable()
        return None
    if not out.is_ours():
        others = [e for e in out.top_level() if e != LOCK_NAME]
        if others:
            raise InputError(
                f"output.path {root} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
                f"and was not written by `{command}` (no {MANIFEST_NAME}); nothing was changed. Choose an "
                "empty or new directory"
            )
        return None
    existing = read_manifest(root, fmt) if not overwrite else _try_manifest(root, fmt)
    if existing is not None and existing.get("fingerprint") == fingerprint(identity):
        return existing
    if existing is not None and not overwrite:
        old_uri = (existing.get("model") or {}).get("resolved_uri")
        raise InputError(
            f"output.path {root} holds results of a different model or config "
            f"({describe_difference(existing.get('identity', {}), identity, old_uri, model_uri)}); choose another "
            f"output.path, or set output.overwrite: true ({command} --overwrite) to replace them"
        )
    out.clear(first=[MANIFEST_NAME], what="--overwrite/--fresh")  # overwrite, or an attempt of ours killed before its manifest
    return None


def _try_manifest(root: Path, fmt: str = FORMAT) -> dict[str, Any] | None:
    try:
        return read_manifest(root, fmt)
    except InputError:
        return None


def clear_output(root: str | Path) -> None:
    """Remove what a scoring job writes (manifest first, then scores, bins, tracks); refused,
    deleting nothing, if the directory holds any other file (OutputError naming it)."""
    score_output(root).clear(first=[MANIFEST_NAME], what="--overwrite/--fresh")


def describe_difference(old: dict[str, Any], new: dict[str, Any], old_uri: str | None = None,
                        new_uri: str | None = None) -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key == "model":
            parts.append(f"model: {_model(old.get(key), old_uri)} -> {_model(new.get(key), new_uri)}")
        else:
            parts.append(f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}")
    return "; ".join(parts) or "unknown difference"


def _model(value: Any, uri: str | None) -> str:
    digest = str((value or {}).get("sha256", ""))[:12] if isinstance(value, dict) else ""
    return f"{uri or 'weights'} (sha256 {digest}...)"


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
