"""Chunks of a genome layout as token arrays and Arrow tables (no Ray).

`read_chunk` reads one `ChunkSpec` of a `GenomeLayout` through `hyena_platform.data.fasta` and
maps bytes to official ids (`bytes.translate`: one C pass that also drops newlines); a byte that
is not a nucleotide is an error naming the file, the record and the position. `chunks_table`
packs chunks into the Arrow schema that shards and Ray Data blocks share.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from hyena.tokenizer import BYTE_IS_SOFT_MASKED, BYTE_TO_ID, N
from hyena_platform.data.fasta import fasta_reader, tokenize_codes
from hyena_platform.data.genome import ChunkSpec
from hyena_platform.errors import InputError

_ID_TABLE = BYTE_TO_ID.tobytes()
_SOFT_TABLE = BYTE_IS_SOFT_MASKED.astype(np.uint8).tobytes()
_NEWLINES = b"\r\n"


def _checked(data: bytes, spec: ChunkSpec) -> np.ndarray:
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size != spec.bases:
        raise InputError(f"{spec.source}, record {spec.chrom!r}: read {arr.size} bases at {spec.start}, "
                         f"expected {spec.bases}; the index looks stale: delete "
                         f"{spec.source}.fai (and .gzi) and retry")
    return arr


def fetch_codes(spec: ChunkSpec, *, index_cache: str | None = None) -> np.ndarray:
    """The ASCII codes of [start, end) of a record, as uint8 (newlines removed)."""
    raw = fasta_reader(spec.source, index_cache=index_cache).raw(spec.chrom, spec.start, spec.end)
    return _checked(raw.translate(None, _NEWLINES), spec)


def read_chunk(spec: ChunkSpec, *, keep_soft_mask: bool = False,
               index_cache: str | None = None) -> dict[str, Any]:
    """One chunk as a dict: chrom, start, split, segment_start, tokens (uint8 ids)[, soft_mask].

    One C pass maps bytes to ids and drops newlines (`bytes.translate`); an id above N means a
    byte that is not a nucleotide, and the tokenizer then names it.
    """
    raw = fasta_reader(spec.source, index_cache=index_cache).raw(spec.chrom, spec.start, spec.end)
    tokens = _checked(raw.translate(_ID_TABLE, _NEWLINES), spec)
    if tokens.size and tokens.max() > N:
        tokenize_codes(_checked(raw.translate(None, _NEWLINES), spec),
                       source=spec.source, chrom=spec.chrom, start=spec.start)
        raise AssertionError("a byte mapped above N yet the tokenizer accepted it")  # unreachable
    row: dict[str, Any] = {"chrom": spec.chrom, "start": spec.start, "split": spec.split,
                           "segment_start": spec.segment_start, "tokens": tokens}
    if keep_soft_mask:
        row["soft_mask"] = _checked(raw.translate(_SOFT_TABLE, _NEWLINES), spec)
    return row


def chunks_table(specs: Sequence[ChunkSpec], *, keep_soft_mask: bool = False,
                 index_cache: str | None = None, digest: bool = False):
    """Read and tokenise `specs` into one pyarrow Table (the chunk schema, see `chunk_schema`)."""
    import pyarrow as pa

    rows = [read_chunk(s, keep_soft_mask=keep_soft_mask, index_cache=index_cache) for s in specs]
    columns: dict[str, Any] = {
        "chrom": pa.array([r["chrom"] for r in rows], pa.string()),
        "start": pa.array([r["start"] for r in rows], pa.int64()),
        "split": pa.array([r["split"] for r in rows], pa.string()),
        "segment_start": pa.array([r["segment_start"] for r in rows], pa.int64()),
        "tokens": binary_array([r["tokens"] for r in rows]),
    }
    if keep_soft_mask:
        columns["soft_mask"] = binary_array([r["soft_mask"] for r in rows])
    if digest:
        columns["sha256"] = pa.array([hashlib.sha256(r["tokens"]).hexdigest() for r in rows], pa.string())
    return pa.table(columns)


def chunk_schema(*, keep_soft_mask: bool = False, digest: bool = False):
    import pyarrow as pa

    fields = [("chrom", pa.string()), ("start", pa.int64()), ("split", pa.string()),
              ("segment_start", pa.int64()), ("tokens", pa.binary())]
    if keep_soft_mask:
        fields.append(("soft_mask", pa.binary()))
    if digest:
        fields.append(("sha256", pa.string()))
    return pa.schema(fields)


def binary_array(arrays: Sequence[np.ndarray]):
    """A pyarrow binary array whose values are the bytes of uint8 arrays (one copy, no Python bytes)."""
    import pyarrow as pa

    lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("chunk batch over 2 GiB: lower chunk_size")  # internal: batches are bounded
    data = np.concatenate(arrays) if arrays else np.zeros(0, np.uint8)
    return pa.Array.from_buffers(pa.binary(), len(arrays),
                                 [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def column_arrays(column) -> list[np.ndarray]:
    """uint8 numpy views of a pyarrow binary column (chunked or not), without copying."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = []
    for arr in chunks:
        if arr.null_count:
            raise ValueError("null token array")  # never written by this module
        if pa.types.is_large_binary(arr.type):
            offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset: arr.offset + len(arr) + 1]
        else:
            offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
        data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
        out.extend(data[offsets[i]: offsets[i + 1]] for i in range(len(arr)))
    return out
