"""The per-chunk function: items -> token ids -> hyena.embed -> one Arrow table (a chunk's file).

Columns, pooled (one row per sequence): ``id``, ``chrom``, ``start``, ``end`` (genome
coordinates; null for table input), ``length``, ``windows`` and ``embedding``, a fixed-size list
of float32 (or float16) of d_model x len(layers). Per base (pooling none): ``id``, ``chrom``,
``pos`` (0-based genome position; the index in the sequence for table input), ``ref`` and
``embedding``. Sequences longer than the window are embedded window by window (see
`hyena_platform.embed.inputs.windows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hyena.embedding import embed
from hyena import tokenizer
from hyena.tokenizer import Tokenizer
from hyena_platform.embed.inputs import Item, windows

BASES = np.array(list(tokenizer.BASES))  # the ref column's dictionary: index = token id - tokenizer.A


@dataclass(frozen=True)
class EmbedSettings:
    pooling: str
    layers: list[int]
    reverse_complement: bool
    dtype: str
    window: int
    batch_size: int


def item_tokens(item: Item, index_cache: str | None = None) -> np.ndarray:
    """Official token ids of one item: read from its FASTA, or encoded from its inline sequence."""
    if item.sequence is not None:
        return Tokenizer().encode(item.sequence)
    from hyena_platform.data.chunks import fetch_codes
    from hyena_platform.data.fasta import tokenize_codes
    from hyena_platform.data.genome import ChunkSpec

    spec = ChunkSpec(item.source, item.chrom, item.start, item.end, "embed", item.start)
    return tokenize_codes(fetch_codes(spec, index_cache=index_cache), source=item.source,
                          chrom=item.chrom, start=item.start)


def embed_items(model: torch.nn.Module, items: list[Item], tokens: list[np.ndarray], s: EmbedSettings):
    """The chunk's Arrow table (see the module docstring)."""
    vectors = []
    for item, ids in zip(items, tokens):
        vectors.append(_embed_one(model, ids, s))
    return pooled_table(items, vectors, s) if s.pooling != "none" else per_base_table(items, tokens, vectors, s)


def _embed_one(model: torch.nn.Module, ids: np.ndarray, s: EmbedSettings) -> torch.Tensor:
    """One sequence, window by window: (F,) pooled or (L, F) per base, float32."""
    tiles = windows(len(ids), s.window)
    kwargs = dict(layers=s.layers, reverse_complement=s.reverse_complement, batch_size=s.batch_size)
    if s.pooling == "last":
        a, b = tiles[-1]
        return embed(model, [ids[a:b]], pooling="last", **kwargs)[0]
    parts = embed(model, [ids[a:b] for a, b in tiles], pooling=s.pooling, **kwargs)
    if s.pooling == "none":
        return torch.cat(list(parts), dim=0)
    # Mean over every base: the window means weighted by their lengths.
    weights = torch.tensor([b - a for a, b in tiles], dtype=torch.float64)
    return (parts.double() * weights[:, None]).sum(0).div(weights.sum()).float()


def _embedding_array(values: np.ndarray, dtype: str):
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=np.float16 if dtype == "float16" else np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def pooled_table(items: list[Item], vectors: list[torch.Tensor], s: EmbedSettings):
    import pyarrow as pa

    return pa.table({
        "id": pa.array([i.id for i in items], pa.string()),
        "chrom": pa.array([i.chrom for i in items], pa.string()),
        "start": pa.array([i.start for i in items], pa.int64()),
        "end": pa.array([i.end for i in items], pa.int64()),
        "length": pa.array([i.length for i in items], pa.int64()),
        "windows": pa.array([len(windows(i.length, s.window)) for i in items], pa.int32()),
        "embedding": _embedding_array(torch.stack(vectors).numpy(), s.dtype),
    })


def per_base_table(items: list[Item], tokens: list[np.ndarray], vectors: list[torch.Tensor], s: EmbedSettings):
    import pyarrow as pa

    n = [i.length for i in items]
    pos = np.concatenate([np.arange(i.start or 0, (i.start or 0) + i.length, dtype=np.int64) for i in items])
    ref = np.concatenate(tokens).astype(np.int8) - tokenizer.A
    return pa.table({
        "id": pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(len(items), dtype=np.int32), n)),
                                             pa.array([i.id for i in items], pa.string())),
        "chrom": pa.array(np.repeat(np.array([i.chrom for i in items], dtype=object), n), pa.string()),
        "pos": pa.array(pos),
        "ref": pa.DictionaryArray.from_arrays(pa.array(ref), pa.array(BASES)),
        "embedding": _embedding_array(torch.cat(vectors).numpy(), s.dtype),
    })
