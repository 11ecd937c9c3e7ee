"""What the trainer needs from the genome, built on hyena_platform.data (Ray Data).

- `stage_dataset`: the training windows of one warm-up stage, exactly ``steps x global_batch``
  rows (enough epochs, each reshuffled with its own seed), for TorchTrainer to split equally
  across workers.
- `validation_windows`: a fixed, deterministic sample of held-out windows per length, as numpy
  (identical on every rerun, so resumed and fresh runs validate on the same bases).
- `fit_baselines`: k-mer counts over the training split, computed in Ray Data tasks.
- `content_hash`: the genome's content hash (the shard manifest's, or the same formula over
  chunks tokenised from FASTA).
"""

from __future__ import annotations

import hashlib
import math
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from hyena_platform.data.config import DataConfig
from hyena_platform.data.pipeline import GenomeChunks
from hyena_platform.train.baselines import MarkovBaselines, count_orders, pack
from hyena_platform.train.schedule import Stage

if TYPE_CHECKING:
    import ray.data


def stage_dataset(chunks: GenomeChunks, stage: Stage, *, data: DataConfig, global_batch: int,
                  num_cpus: float | None = None) -> "ray.data.Dataset":
    """Training windows for `stage`: ``stage.steps * global_batch`` rows.

    Epoch e of stage s draws windows with seed (data.seed, s * 1000 + e): new random offsets,
    reverse-complement coins and shuffle order per epoch and per stage.
    """
    from hyena_platform.data.training_windows import stage_windows

    layout = chunks.layout
    needed = stage.steps * global_batch
    train_bases = layout.split_bases().get("train", 0)
    per_epoch = max(1, int(0.8 * train_bases / (stage.length + 1)))  # margin: tails, N-heavy windows
    epochs = max(1, math.ceil(needed / per_epoch))
    parts = [
        stage_windows(chunks, split="train", length=stage.length, seed=data.seed, epoch=stage.index * 1000 + e,
                      reverse_complement=data.reverse_complement, max_n_fraction=data.max_n_fraction,
                      num_cpus=num_cpus)
        for e in range(epochs)
    ]
    ds = parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
    return ds.limit(needed)


def validation_windows(chunks: GenomeChunks, length: int, count: int, *, data: DataConfig,
                       split: str = "valid") -> tuple[np.ndarray, np.ndarray]:
    """`count` held-out windows of `length` (fewer if the split is small), spread over the split.

    Deterministic: windows of epoch 0 without shuffling, ordered by coordinates, then `count`
    evenly spaced ones. Returns (input_ids, labels), int64 (n, length).
    """
    from hyena_platform.data.training_windows import stage_windows

    ds = stage_windows(chunks, split=split, length=length, seed=data.seed, epoch=0, reverse_complement=False,
                       max_n_fraction=data.max_n_fraction, shuffle=False, coordinates=True)
    layout = chunks.layout
    expected = max(1, layout.split_bases().get(split, 0) // (length + 1))
    if expected > 4 * count:  # sample before collecting: a genome-scale split does not fit the driver
        ds = ds.map_batches(_sample_rows, batch_format="numpy",
                            fn_kwargs={"fraction": 4 * count / expected, "seed": data.seed})
    batch = _collect(ds)
    if not batch or len(batch["input_ids"]) == 0:
        raise ValueError(f"no {split} windows of length {length}")
    order = np.lexsort((batch["start"], batch["chrom"].astype(str)))
    n = len(order)
    pick = order[np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))]
    return batch["input_ids"][pick].astype(np.int64), batch["labels"][pick].astype(np.int64)


def _sample_rows(batch: dict[str, np.ndarray], *, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Keep each window with probability `fraction`, decided by a hash of (seed, chrom, start):
    the same windows whatever the block layout or execution order."""
    chrom_codes = np.array([zlib.crc32(str(c).encode()) for c in batch["chrom"]], dtype=np.uint64)
    x = batch["start"].astype(np.uint64) ^ (chrom_codes << np.uint64(32)) ^ np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    with np.errstate(over="ignore"):  # splitmix64 finaliser
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    keep = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction
    return {k: v[keep] for k, v in batch.items()}


def _collect(ds) -> dict[str, np.ndarray]:
    parts = [p for p in ds.iter_batches(batch_size=None, batch_format="numpy") if len(p["input_ids"])]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _count_batch(batch, *, max_order: int) -> dict[str, Any]:
    from hyena_platform.data.chunks import column_arrays

    total = None
    splits = batch["split"].to_pylist()
    for tokens, split in zip(column_arrays(batch["tokens"]), splits):
        if split != "train":
            continue
        packed = pack(count_orders(tokens, max_order))
        total = packed if total is None else total + packed
    if total is None:
        return {"counts": np.zeros((0, 1), dtype=np.int64)}
    return {"counts": total[None, :]}


def fit_baselines(chunks: GenomeChunks, max_order: int, *, num_cpus: float | None = None) -> MarkovBaselines:
    """Order 0..max_order transition counts over the training split (chunk by chunk)."""
    remote = {} if num_cpus is None else {"num_cpus": num_cpus}
    counted = chunks.dataset.map_batches(_count_batch, batch_size=None, batch_format="pyarrow",
                                 fn_kwargs={"max_order": max_order}, **remote)
    model = MarkovBaselines(max_order)
    for batch in counted.iter_batches(batch_size=None, batch_format="numpy"):
        for row in batch["counts"]:
            if row.size > 1:
                model.add_packed(row)
    return model


def _digest_batch(batch) -> dict[str, Any]:
    from hyena_platform.data.chunks import column_arrays

    return {
        "chrom": np.array(batch["chrom"].to_pylist(), dtype=object),
        "start": np.array(batch["start"].to_pylist(), dtype=np.int64),
        "split": np.array(batch["split"].to_pylist(), dtype=object),
        "sha256": np.array([hashlib.sha256(t.tobytes()).hexdigest() for t in column_arrays(batch["tokens"])],
                           dtype=object),
    }


def content_hash(chunks: GenomeChunks, data: DataConfig) -> str:
    """"sha256:<hex>": the shard manifest's content hash, or the same formula over FASTA chunks."""
    if data.shards is not None:
        from hyena_platform.data.pipeline import read_manifest

        return read_manifest(data.shards).content_hash
    layout = chunks.layout
    digests: dict[tuple[str, int], tuple[str, str]] = {}
    for batch in chunks.dataset.map_batches(_digest_batch, batch_size=None, batch_format="pyarrow").iter_batches(
            batch_size=None, batch_format="numpy"):
        for chrom, start, split, digest in zip(batch["chrom"], batch["start"], batch["split"], batch["sha256"]):
            digests[(str(chrom), int(start))] = (str(split), str(digest))
    h = hashlib.sha256()
    for s in layout.chunk_specs():  # plan order, as in the shard manifest
        split, digest = digests[(s.chrom, s.start)]
        h.update(f"{s.chrom}\t{s.start}\t{s.end}\t{s.split}\t{digest}\n".encode())
    return "sha256:" + h.hexdigest()
