"""Windowing maths for scoring: which bases each model call reads and which it scores.

Pure numpy, no torch and no Ray, so every rule here is tested in microseconds.

Definition (window W, stride S, 1 <= S <= W)
--------------------------------------------
Coordinates are 0-based and end-exclusive, in the coordinates of one strand: the forward
sequence x[0 .. n), or its reverse complement (see `rc_interval`). The model reads the token
stream ``u = [START] + x`` (``u[0]`` is the [SEP] marker, ``u[i + 1] = x[i]``), so the logits at
stream position ``i`` predict ``x[i]`` from ``x[0 .. i)``: every base, the first of a chromosome
included, gets a score.

An interval ``[o0, o1)`` to score is cut into *blocks*; block ``[o, e)`` is scored by one model
call whose input is the ``e - a`` stream tokens ``u[a .. e)`` with ``a = max(0, e - W)``, i.e.
the W bases ``x[e - W - 1 .. e - 1)`` (or, at a chromosome's start, [SEP] and the bases before
``e - 1``). The call predicts ``x[a .. e)``; the block keeps only its own bases ``x[o .. e)``.

- The first block ends at ``min(o1, max(o0 + S, W))``, every later one S bases further, the last
  one at ``o1``. Blocks tile ``[o0, o1)``: **every base is scored exactly once**.
- A base at ``p >= o`` of a block with ``a > 0`` sees ``p - a + 1 >= W - S + 1`` bases of
  upstream context, so **every base has at least W - S upstream bases, except near a
  chromosome's start** (``a = 0``), where it sees every base before it.
- A scored interval is first cut into chunks at multiples of ``chunk_size`` along the
  chromosome (the unit of output files and of resuming), and each chunk is tiled on its own. A
  block therefore never crosses a chunk boundary; a chunk's last block may be shorter than S
  (it then has more context, never less). With ``chunk_size`` a multiple of S the blocks are those
  of tiling the whole interval at once.
- Reverse strand: the chunk ``[c0, c1)`` of a chromosome of length n is the interval
  ``[n - c1, n - c0)`` of the reverse complement, tiled by the same rule; its scores are read
  back in reverse order (forward position ``p`` is reverse-strand position ``n - 1 - p``).

Centred windows: a both-strands per-base model (layout ``centred``)
--------------------------------------------------------------------
The rule above is the *causal* layout, the one for language models and forward per-base heads:
their state at base p has read only the bases before p, so nothing after a block's end helps.
A per-base head that reads both strands (`hyena.heads`, ``HeadConfig.strands == "both"``)
predicts base p from the bases on both sides of it inside its input, so its blocks read past
their end (`window_layout` picks the layout from the model). With ``B = ceil((W - S) / 2)``
bases before and ``F = floor((W - S) / 2)`` after (`centred_margins`), a chromosome of n bases is
cut into *cells* ``[kS, (k + 1)S)``, k = 0, 1, ... (the last one clipped at n). The call of cell k
has the input ``u[a .. b)`` with ``a = max(0, kS - B)`` and ``b = min(n, (k + 1)S + F)``: at most
W tokens, the cell in their middle; the head reads the bases ``x[a .. b)`` and the language-model
columns come from the same call. A chunk's blocks are the cells it overlaps, each keeping only
the cell's bases inside the chunk (rows ``own_start, own_end, a, b``: `tile_centred`).

- The cells tile the chromosome and a chunk keeps its own bases: **every base is scored exactly
  once**.
- A base p of cell k has ``p - a >= B`` bases before it and ``b - 1 - p >= F`` after it in the
  head's read: **at least (W - S) / 2 bases of context on each side (B before, F after),
  except near a chromosome's ends** (``a = 0`` or ``b = n``), where it reads every base up to that
  end. Its log_prob predicts p from ``x[a - 1 .. p)``, at least B + 1 upstream bases: the same
  meaning as in the causal layout, from shorter upstream context.
- A base's input ``[a, b)`` depends only on p, W, S and n, never on the region, the chunk size,
  the chunk or the batch: **chunking does not change the result** (beyond float rounding from
  the batch's padded width). A chunk boundary inside a cell costs one more model call (the cell
  read by both chunks).
- The forward strand only: a token classifier's classes (CDS+ / CDS-) are strand-specific.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hyena.tokenizer import PAD, SEP
from hyena_platform.span import Span

START = SEP  # the token before a chromosome's first base
CAUSAL, CENTRED = "causal", "centred"  # window layouts (module docstring)


@dataclass(frozen=True)
class Region(Span):
    """An interval of one chromosome to score; ``length`` is the whole chromosome's."""

    chrom: str
    start: int
    end: int
    length: int
    source: str  # FASTA path

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}"


@dataclass(frozen=True)
class Chunk(Region):
    """One output file's worth of a region (numbered in order); the unit of resuming."""

    index: int

    @property
    def name(self) -> str:
        """File stem: zero-padded so that names sort by position."""
        return f"{self.start:012d}-{self.end:012d}"

    def row(self) -> dict[str, Any]:
        """The chunk as a work item of the Ray pipeline (its fields by name)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Chunk:
        """The chunk of a work item (or of a result row that carries the item's fields)."""
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


def tile(start: int, end: int, window: int, stride: int) -> np.ndarray:
    """Blocks of ``[start, end)``: int64 (k, 3) rows ``own_start, own_end, input_start``.

    ``input_start`` is ``a``: the block's model input is the stream ``u[a .. own_end)``.
    """
    check_window(window, stride)
    if not 0 <= start <= end:
        raise ValueError(f"bad interval [{start}, {end})")
    if end == start:
        return np.zeros((0, 3), dtype=np.int64)
    first_end = min(end, max(start + stride, window))
    ends = np.append(np.arange(first_end, end, stride, dtype=np.int64), np.int64(end))
    ends = np.unique(ends)  # first_end == end gives one block
    starts = np.concatenate([[start], ends[:-1]]).astype(np.int64)
    inputs = np.maximum(ends - window, 0)
    return np.stack([starts, ends, inputs], axis=1)


def check_window(window: int, stride: int) -> None:
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")


def min_context(blocks: np.ndarray) -> np.ndarray:
    """Upstream bases the first owned base of each block sees (``own_start - a + 1`` when
    ``a > 0``; ``own_start`` itself at a chromosome's start, where every base before is seen)."""
    own, a = blocks[:, 0], blocks[:, 2]
    return np.where(a > 0, own - a + 1, own)


def window_layout(model: Any) -> str:
    """The layout a model is scored with: centred for a per-base head that reads both strands
    (it predicts each base from the bases on both sides), causal for every other model."""
    head = getattr(model, "head_config", None)
    both = head is not None and getattr(model, "task", "") == "token" and head.strands == "both"
    return CENTRED if both else CAUSAL


def centred_margins(window: int, stride: int) -> tuple[int, int]:
    """(B, F): the bases a centred input reads before and after its cell, ``B + S + F = W``."""
    check_window(window, stride)
    after = (window - stride) // 2
    return window - stride - after, after


def tile_centred(start: int, end: int, window: int, stride: int, length: int) -> np.ndarray:
    """Centred blocks of ``[start, end)`` of a chromosome of `length` bases: int64 (k, 4) rows
    ``own_start, own_end, input_start, input_end``; the block's model input is ``u[a .. b)``."""
    before, after = centred_margins(window, stride)
    if not 0 <= start <= end <= length:
        raise ValueError(f"bad interval [{start}, {end}) of a sequence of {length} bases")
    if end == start:
        return np.zeros((0, 4), dtype=np.int64)
    cells = np.arange(start // stride, (end - 1) // stride + 1, dtype=np.int64) * stride
    own, stop = np.maximum(cells, start), np.minimum(cells + stride, end)
    a, b = np.maximum(cells - before, 0), np.minimum(cells + stride + after, length)
    return np.stack([own, stop, a, b], axis=1)


def input_end(blocks: np.ndarray) -> np.ndarray:
    """Where each block's input ends: its own end (causal rows) or column 3 (centred rows)."""
    return blocks[:, 3] if blocks.shape[1] > 3 else blocks[:, 1]


def rc_interval(start: int, end: int, length: int) -> tuple[int, int]:
    """``[start, end)`` of the forward strand as an interval of the reverse complement."""
    return length - end, length - start


def plan_chunks(regions: Sequence[Region], chunk_size: int) -> list[Chunk]:
    """Regions cut at multiples of `chunk_size` along each chromosome, numbered in order."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunks: list[Chunk] = []
    for r in regions:
        pos = r.start
        while pos < r.end:
            stop = min(r.end, (pos // chunk_size + 1) * chunk_size)
            chunks.append(Chunk(r.chrom, pos, stop, r.length, r.source, index=len(chunks)))
            pos = stop
    return chunks


@dataclass(frozen=True)
class ChunkWindows:
    """The blocks of one chunk on both strands and the forward span of bases they read."""

    forward: np.ndarray  # (k, 3) causal or (k, 4) centred blocks, forward coordinates
    reverse: np.ndarray  # (k', 3) blocks, reverse-complement coordinates (empty if not scored)
    fetch_start: int  # forward bases [fetch_start, fetch_end) cover every block's input
    fetch_end: int


def chunk_windows(chunk: Chunk, window: int, stride: int, *, reverse_strand: bool,
                  layout: str = CAUSAL) -> ChunkWindows:
    if layout == CENTRED:
        if reverse_strand:
            raise ValueError("centred windows score the forward strand only")
        blocks = tile_centred(chunk.start, chunk.end, window, stride, chunk.length)
        return ChunkWindows(blocks, np.zeros((0, 4), dtype=np.int64), max(0, int(blocks[:, 2].min()) - 1),
                            int(blocks[:, 3].max()))
    if layout != CAUSAL:
        raise ValueError(f"unknown window layout {layout!r}; one of {CAUSAL}, {CENTRED}")
    fwd = tile(chunk.start, chunk.end, window, stride)
    lo, hi = max(0, int(fwd[:, 2].min()) - 1), chunk.end
    if reverse_strand:
        r0, r1 = rc_interval(chunk.start, chunk.end, chunk.length)
        rev = tile(r0, r1, window, stride)
        rc_lo = max(0, int(rev[:, 2].min()) - 1)  # reverse coordinates; forward end n - rc_lo
        lo, hi = min(lo, chunk.start), max(hi, chunk.length - rc_lo)
    else:
        rev = np.zeros((0, 3), dtype=np.int64)
    return ChunkWindows(fwd, rev, lo, hi)


def strand_sequence(tokens: np.ndarray, fetch_start: int, fetch_end: int, length: int,
                    reverse: bool) -> tuple[np.ndarray, int]:
    """One strand's bases covering the fetched span, and the coordinate of its first element.

    tokens: forward ids of ``[fetch_start, fetch_end)``. For the reverse strand the span becomes
    ``[n - fetch_end, n - fetch_start)`` of the reverse complement.
    """
    if not reverse:
        return tokens, fetch_start
    from hyena.tokenizer import reverse_complement_ids

    return np.ascontiguousarray(reverse_complement_ids(tokens)), length - fetch_end


def window_batch(seq: np.ndarray, seq_start: int, blocks: np.ndarray,
                 width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs for `blocks`, right-padded with [PAD] to `width` tokens.

    blocks: causal (k, 3) or centred (k, 4) rows; the input of a block ends at ``b`` (`input_end`:
    ``b = e`` for causal rows). seq: one strand's ids for bases ``[seq_start, seq_start +
    len(seq))``; it must hold ``x[a - 1 .. b)`` of every block (``x[-1]`` is START, supplied here
    when ``a == 0``). Returns ``inputs`` and ``labels`` (int64 (B, width): the stream ``u[a .. b)``
    and the bases ``x[a .. b)`` it predicts) and ``owned`` (bool (B, width): the positions of
    the block's own bases ``[o, e)``). Row-major order of ``owned`` is the blocks' bases in
    increasing position.
    """
    own, end, a = blocks[:, 0:1], blocks[:, 1:2], blocks[:, 2:3]
    b = input_end(blocks)[:, None]
    cols = np.arange(width, dtype=np.int64)[None, :]
    if int((b - a).max(initial=0)) > width:
        raise ValueError(f"a block needs {int((b - a).max())} tokens, more than width {width}")
    valid = cols < (b - a)
    ext = np.concatenate([[START], seq]) if seq_start == 0 else seq
    ext_start = seq_start - 1 if seq_start == 0 else seq_start  # coordinate of ext[0]
    pos = a - 1 + cols  # base coordinate of each input token (-1 = START)
    if int(np.where(valid, pos, ext_start).min(initial=ext_start)) < ext_start or \
            int(np.where(valid, pos + 1, ext_start).max(initial=ext_start)) >= ext_start + ext.shape[0]:
        raise ValueError("sequence span does not cover the blocks' inputs")  # internal invariant
    idx = np.clip(pos - ext_start, 0, ext.shape[0] - 1)
    lab = np.clip(pos + 1 - ext_start, 0, ext.shape[0] - 1)
    inputs = np.where(valid, ext[idx], PAD).astype(np.int64)
    labels = np.where(valid, ext[lab], PAD).astype(np.int64)
    owned = (cols >= own - a) & (cols < end - a)
    return inputs, labels, owned
