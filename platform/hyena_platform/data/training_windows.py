"""Training windows cut from chunks at the current stage's length, and equal batches per worker.

Layout (official HyenaDNA): a window holds ``length + 1`` consecutive tokens; the model reads
``input_ids = window[:-1]`` and predicts ``labels = window[1:]``, both int64 of ``length``.
Windows are always full: a chunk's tail shorter than a window is dropped, never padded, so the
pad id 4 never appears in ``input_ids`` or ``labels``. A loss may therefore use
``ignore_index=4`` (PAD) safely: nothing here produces a label it would wrongly ignore, and any
padding added later (for example by a scorer) must put 4 in the labels it wants ignored.
N (11) is an ordinary token, as in the official recipe; windows whose N fraction is above
``max_n_fraction`` are dropped.

Determinism: each chunk draws from ``np.random.default_rng([seed, epoch, crc32(chrom), start])``
(an offset in ``[0, length]``, then a reverse-complement coin per window), so the same seed and
epoch give the same windows on any number of workers, in any execution order.

The pure numpy functions (`cut_windows`, `reverse_complement_some`, `make_examples`,
`batches_per_worker`) come first; the Ray wiring (`stage_windows`, `equalize_batches`,
`split_for_workers`) imports Ray when called.
"""

from __future__ import annotations

import hashlib

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from hyena.tokenizer import N, reverse_complement_ids
from hyena_platform.data.chunks import column_arrays
from hyena_platform.data.genome import GenomeLayout
from hyena_platform.data.pipeline import GenomeChunks
from hyena_platform.errors import InputError

if TYPE_CHECKING:
    import ray.data

EMPTY = np.zeros(0, dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Pure functions


def window_rng(seed: int, epoch: int, chrom: str, start: int) -> np.random.Generator:
    """The generator for the chunk (or segment) of `chrom` at `start`, in `epoch`."""
    return np.random.default_rng([seed, epoch, zlib.crc32(chrom.encode()), start])


def cut_windows(tokens: np.ndarray, length: int, rng: np.random.Generator, *,
                max_n_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of ``length + 1`` tokens at a random offset.

    tokens: (T,) uint8 ids. Returns (windows (n, length + 1) uint8, starts (n,) int64 offsets
    into `tokens`). The offset is drawn from ``[0, length]`` (fewer when T < 2 * (length + 1),
    so a window still fits); windows whose N fraction exceeds `max_n_fraction` are dropped.
    """
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    span = length + 1
    total = int(tokens.shape[0])
    if total < span:
        return np.zeros((0, span), dtype=tokens.dtype), np.zeros(0, dtype=np.int64)
    offset = int(rng.integers(min(span, total - span + 1)))
    n = (total - offset) // span
    windows = tokens[offset: offset + n * span].reshape(n, span)  # (n, span) view
    starts = offset + span * np.arange(n, dtype=np.int64)
    if max_n_fraction < 1.0:
        keep = np.count_nonzero(windows == N, axis=1) / span <= max_n_fraction
        if not keep.all():
            windows, starts = windows[keep], starts[keep]
    return windows, starts


def reverse_complement_some(windows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Reverse-complement each window with probability 1/2. Returns (windows copy, flipped bool)."""
    flip = rng.random(windows.shape[0]) < 0.5
    out = np.array(windows, copy=True)
    if flip.any():
        out[flip] = reverse_complement_ids(out[flip])
    return out, flip


def make_examples(windows: np.ndarray) -> dict[str, np.ndarray]:
    """(n, length + 1) ids -> input_ids = windows[:, :-1], labels = windows[:, 1:], int64 (n, length)."""
    ids = windows.astype(np.int64)
    return {"input_ids": np.ascontiguousarray(ids[:, :-1]), "labels": np.ascontiguousarray(ids[:, 1:])}


def batches_per_worker(num_rows: int, num_workers: int, batch_size: int) -> int:
    """Full batches every worker gets when `num_rows` are shared equally and the rest dropped."""
    if num_workers < 1 or batch_size < 1:
        raise ValueError(f"num_workers and batch_size must be >= 1, got {num_workers}, {batch_size}")
    return num_rows // (num_workers * batch_size)


def _cut_rows(chroms, starts, token_arrays, *, split_rows, length, seed, epoch,
              reverse_complement, max_n_fraction) -> dict[str, np.ndarray]:
    """Windows of many chunks (or segments): window (n, L+1) uint8, chrom, start, strand."""
    span = length + 1
    parts, chrom_out, start_out, strand_out = [], [], [], []
    for chrom, start, tokens, take in zip(chroms, starts, token_arrays, split_rows):
        if not take:
            continue
        rng = window_rng(seed, epoch, chrom, start)
        windows, offsets = cut_windows(tokens, length, rng, max_n_fraction=max_n_fraction)
        if reverse_complement:
            windows, flip = reverse_complement_some(windows, rng)
        else:
            flip = np.zeros(windows.shape[0], dtype=bool)
        parts.append(windows)
        chrom_out.extend([chrom] * windows.shape[0])
        start_out.append(start + offsets)
        strand_out.append(np.where(flip, -1, 1).astype(np.int8))
    if not parts:
        return {"window": np.zeros((0, span), np.uint8), "chrom": np.array([], dtype=object),
                "start": np.zeros(0, np.int64), "strand": np.zeros(0, np.int8)}
    return {"window": np.concatenate(parts), "chrom": np.array(chrom_out, dtype=object),
            "start": np.concatenate(start_out), "strand": np.concatenate(strand_out)}


# --------------------------------------------------------------------------------------------
# Ray wiring


def _cut_chunk_batch(batch, *, split, **kw) -> dict[str, np.ndarray]:
    """map_batches: chunk rows (pyarrow) -> window rows of one split."""
    splits = batch["split"].to_pylist()
    return _cut_rows(batch["chrom"].to_pylist(), batch["start"].to_pylist(),
                     column_arrays(batch["tokens"]), split_rows=[s == split for s in splits], **kw)


def _cut_segment_group(group, **kw) -> dict[str, np.ndarray]:
    """map_groups: all chunks of one segment (pyarrow) -> windows cut from the whole segment."""
    group = group.sort_by("start")
    tokens = np.concatenate(column_arrays(group["tokens"]))
    chrom, seg_start = group["chrom"][0].as_py(), group["segment_start"][0].as_py()
    return _cut_rows([chrom], [seg_start], [tokens], split_rows=[True], **kw)


def _to_examples(batch: dict[str, np.ndarray], *, coordinates: bool) -> dict[str, np.ndarray]:
    out = make_examples(batch["window"])
    if coordinates:
        out.update(chrom=batch["chrom"], start=batch["start"], strand=batch["strand"])
    return out


def _partitions(layout: GenomeLayout, split: str) -> int:
    """Shuffle partitions for the segment groupby: one per segment, at most 16."""
    return max(1, min(16, sum(1 for s in layout.segments if s.split == split)))


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for Ray's shuffle, mixed from (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(1)[0])


def stage_windows(
    chunks: GenomeChunks,
    *,
    split: str,
    length: int,
    seed: int,
    epoch: int,
    reverse_complement: bool = False,
    max_n_fraction: float = 1.0,
    shuffle: bool = True,
    coordinates: bool = False,
    num_cpus: float | None = None,
) -> "ray.data.Dataset":
    """Rows ``input_ids`` and ``labels`` (int64, `length` each) of `split`, for one epoch.

    The layout of `chunks` is checked first, before any work: the split must exist and a window
    must fit (InputError otherwise); it also chooses the path: windows up to `chunk_size` tokens
    are cut chunk by chunk; longer ones from whole segments (a groupby, so a window may be as
    long as a chromosome).
    `shuffle` shuffles windows across the split with a seed from (seed, epoch).
    `coordinates` adds ``chrom``, ``start`` (of the window) and ``strand`` (+1/-1) columns.
    """
    from ray.data.expressions import col

    if not isinstance(chunks, GenomeChunks):
        raise TypeError("stage_windows needs the genome layout of its chunks: pass the GenomeChunks "
                        f"that load_chunks returned, not a {type(chunks).__name__}")
    layout = chunks.layout
    layout.check_window(length, split)
    kw = dict(length=length, seed=seed, epoch=epoch, reverse_complement=reverse_complement,
              max_n_fraction=max_n_fraction)
    remote = {} if num_cpus is None else {"num_cpus": num_cpus}
    if length + 1 <= layout.chunk_size:
        ds = chunks.dataset.map_batches(_cut_chunk_batch, batch_size=None, batch_format="pyarrow",
                                fn_kwargs={"split": split, **kw}, **remote)
    else:
        ds = (chunks.dataset.filter(expr=col("split") == split, **remote)
              .groupby(["chrom", "segment_start"], num_partitions=_partitions(layout, split))
              .map_groups(_cut_segment_group, batch_format="pyarrow", fn_kwargs=kw, **remote))
    if shuffle:
        # A seeded sort key per window instead of Ray's random_shuffle, whose output order depends
        # on how blocks and tasks happened to run: the same seed gives the same order every run.
        ds = ds.map_batches(_shuffle_key, batch_format="pyarrow", fn_kwargs={"seed": epoch_seed(seed, epoch)},
                            **remote).sort(SHUFFLE_KEY)
    rows_per_batch = max(1, (4 << 20) // (16 * length))  # ~4 MiB of int64 per output block
    return ds.map_batches(_to_examples, batch_size=rows_per_batch, batch_format="numpy",
                          fn_kwargs={"coordinates": coordinates}, **remote)


SHUFFLE_KEY = "_shuffle_key"


def _shuffle_key(batch, *, seed: int):
    """Add a pseudo-random uint64 per window, a function of (seed, chrom, start, strand) only."""
    import pyarrow as pa

    keys = [int.from_bytes(hashlib.blake2b(f"{seed}:{c}:{s}:{d}".encode(), digest_size=8).digest(), "little")
            for c, s, d in zip(batch["chrom"].to_pylist(), batch["start"].to_pylist(), batch["strand"].to_pylist())]
    return batch.append_column(SHUFFLE_KEY, pa.array(keys, pa.uint64()))


def equalize_batches(ds: "ray.data.Dataset", *, num_workers: int,
                     batch_size: int) -> tuple["ray.data.Dataset", int]:
    """Trim `ds` to num_workers * batch_size * k rows; returns (trimmed dataset, k).

    With `streaming_split(num_workers, equal=True)` (what Ray Train's TorchTrainer does with
    its datasets) each worker then reads exactly k full batches per epoch, so no DDP rank waits
    for a batch that never comes. Counting executes `ds` once.
    """
    k = batches_per_worker(ds.count(), num_workers, batch_size)
    if k == 0:
        raise InputError(f"fewer rows than one batch of {batch_size} per worker for {num_workers} "
                         "workers: lower the batch size or the window length")
    return ds.limit(k * num_workers * batch_size), k


def split_for_workers(ds: "ray.data.Dataset", *, num_workers: int, batch_size: int) -> tuple[list[Any], int]:
    """`num_workers` iterators with exactly k full batches each (outside Ray Train)."""
    trimmed, k = equalize_batches(ds, num_workers=num_workers, batch_size=batch_size)
    return trimmed.streaming_split(num_workers, equal=True), k
