"""Training windows: the pure numpy cutting (milliseconds), then stage_windows and equal batches
per worker on the bundled genome with a real local Ray."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hyena.tokenizer import A, C, G, N, PAD, T, reverse_complement_ids
from hyena_platform.data.config import DataConfig
from hyena_platform.data.training_windows import (
    batches_per_worker,
    cut_windows,
    equalize_batches,
    make_examples,
    reverse_complement_some,
    split_for_workers,
    stage_windows,
    window_rng,
)
from hyena_platform.errors import InputError

# ------------------------------------------------------------------------------- pure numpy


def test_cut_windows_layout_and_offsets():
    tokens = np.arange(10_000, dtype=np.int64)  # values = positions, to read slices back
    offsets = set()
    for seed in range(50):
        windows, starts = cut_windows(tokens, 99, np.random.default_rng(seed))
        assert windows.shape[1] == 100 and windows.shape[0] == starts.size
        offsets.add(int(starts[0]))
        assert 0 <= starts[0] <= 99
        assert (windows.shape[0] - 1) * 100 + starts[0] + 100 <= 10_000 < starts[0] + (windows.shape[0] + 1) * 100
        np.testing.assert_array_equal(windows, starts[:, None] + np.arange(100))  # contiguous, disjoint
    assert len(offsets) > 30  # the offset really is random


def test_cut_windows_short_inputs():
    rng = np.random.default_rng(0)
    windows, starts = cut_windows(np.zeros(10, np.uint8), 10, rng)  # needs 11 tokens
    assert windows.shape == (0, 11) and starts.size == 0
    for seed in range(20):  # 150 tokens, span 101: the offset stays in [0, 49] so one window fits
        windows, starts = cut_windows(np.arange(150), 100, np.random.default_rng(seed))
        assert windows.shape == (1, 101) and 0 <= starts[0] <= 49
    with pytest.raises(ValueError, match="window length must be >= 1"):
        cut_windows(np.zeros(10, np.uint8), 0, rng)


def test_cut_windows_same_generator_state_same_windows():
    tokens = np.random.default_rng(1).integers(A, T + 1, 5000).astype(np.uint8)
    a = cut_windows(tokens, 63, window_rng(7, 3, "chrI", 1 << 20))
    b = cut_windows(tokens, 63, window_rng(7, 3, "chrI", 1 << 20))
    c = cut_windows(tokens, 63, window_rng(7, 4, "chrI", 1 << 20))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1]) or not np.array_equal(a[0], c[0])


def test_n_fraction_threshold():
    span = 10
    tokens = np.full(span * 4, A, np.uint8)
    tokens[0:1] = N  # window 0: 10% N
    tokens[10:12] = N  # window 1: 20% N
    tokens[20:30] = N  # window 2: all N
    full, starts = cut_windows(tokens[:span * 4], span - 1, _FixedOffset(0))
    assert full.shape[0] == 4
    kept, starts = cut_windows(tokens, span - 1, _FixedOffset(0), max_n_fraction=0.1)
    assert starts.tolist() == [0, 30]
    kept, starts = cut_windows(tokens, span - 1, _FixedOffset(0), max_n_fraction=0.2)
    assert starts.tolist() == [0, 10, 30]
    kept, starts = cut_windows(tokens, span - 1, _FixedOffset(0), max_n_fraction=0.0)
    assert starts.tolist() == [30]
    many = np.full(100, A, np.uint8)
    many[:29] = N  # exactly 29%: kept at 0.29 (no float floor surprise), dropped at 0.28
    assert cut_windows(many, 99, _FixedOffset(0), max_n_fraction=0.29)[1].tolist() == [0]
    assert cut_windows(many, 99, _FixedOffset(0), max_n_fraction=0.28)[1].tolist() == []


class _FixedOffset:
    """A generator stand-in whose offset draw is fixed (cut_windows draws one integer)."""

    def __init__(self, offset: int):
        self.offset = offset

    def integers(self, high):
        assert self.offset < high
        return self.offset


def test_reverse_complement_augmentation_and_example_layout():
    rng = np.random.default_rng(0)
    windows = rng.integers(A, N + 1, (400, 33)).astype(np.uint8)
    out, flip = reverse_complement_some(windows, np.random.default_rng(5))
    assert 150 < flip.sum() < 250
    np.testing.assert_array_equal(out[~flip], windows[~flip])
    np.testing.assert_array_equal(out[flip], reverse_complement_ids(windows[flip]))
    assert out[flip][0, 0] == {A: T, C: G, G: C, T: A, N: N}[int(windows[flip][0, -1])]
    ex = make_examples(out)
    assert ex["input_ids"].dtype == np.int64 and ex["input_ids"].shape == (400, 32)
    np.testing.assert_array_equal(ex["input_ids"][:, 1:], ex["labels"][:, :-1])
    np.testing.assert_array_equal(ex["labels"][:, -1], out[:, -1])
    assert ex["input_ids"].flags.c_contiguous and ex["labels"].flags.c_contiguous


def test_batches_per_worker():
    assert batches_per_worker(1000, 2, 16) == 31
    assert batches_per_worker(31, 2, 16) == 0
    with pytest.raises(ValueError):
        batches_per_worker(10, 0, 4)


# ------------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def reference_ids(bundled_bases) -> dict[str, np.ndarray]:
    from hyena_platform.data.fasta import tokenize_codes

    return {k: tokenize_codes(np.frombuffer(v, np.uint8), source="ref", chrom=k, start=0)
            for k, v in bundled_bases.items()}


@pytest.fixture(scope="module")
def chunks(bundled_chunks):
    return bundled_chunks


def _collect(ds) -> dict[str, np.ndarray]:
    parts = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _sorted(batch):
    order = np.lexsort((batch["start"], batch["chrom"].astype(str)))
    return {k: v[order] for k, v in batch.items()}


@pytest.mark.integration
def test_stage_windows_are_genome_slices_with_shifted_labels(chunks, reference_ids):
    ds = stage_windows(chunks, split="train", length=1024, seed=0, epoch=0, reverse_complement=True,
                       max_n_fraction=0.1, coordinates=True)
    b = _collect(ds)
    n = b["input_ids"].shape[0]
    assert b["input_ids"].shape == b["labels"].shape == (n, 1024) and b["input_ids"].dtype == np.int64
    assert 2800 < n <= 2_961_149 // 1025
    assert set(b["chrom"].tolist()) == {"chrI"}  # train only: chrII is held out
    assert not (b["labels"] == PAD).any() and not (b["input_ids"] == PAD).any()
    np.testing.assert_array_equal(b["input_ids"][:, 1:], b["labels"][:, :-1])
    assert 0.4 < (b["strand"] == -1).mean() < 0.6
    ref = reference_ids["chrI"]
    for i in range(0, n, 97):
        window = np.concatenate([b["input_ids"][i], b["labels"][i, -1:]])
        forward = ref[b["start"][i]: b["start"][i] + 1025]
        expected = forward if b["strand"][i] == 1 else reverse_complement_ids(forward)
        np.testing.assert_array_equal(window, expected)
    # windows never overlap within an epoch
    starts = np.sort(b["start"])
    assert (np.diff(starts) >= 1025).all()


@pytest.mark.integration
def test_same_seed_and_epoch_give_the_same_windows(chunks):
    kw = dict(split="valid", length=500, reverse_complement=True, coordinates=True)
    a = _sorted(_collect(stage_windows(chunks, seed=1, epoch=2, **kw)))
    b = _sorted(_collect(stage_windows(chunks, seed=1, epoch=2, **kw)))
    c = _sorted(_collect(stage_windows(chunks, seed=1, epoch=3, **kw)))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert set(a["chrom"].tolist()) == {"chrII"}
    assert not np.array_equal(a["start"][:5], c["start"][:5])  # a new epoch: new offsets


@pytest.mark.integration
def test_windows_longer_than_a_chunk_are_cut_from_whole_segments(ray_cluster, reference_ids):
    from hyena_platform.data.pipeline import load_chunks

    small = load_chunks(DataConfig(chunk_size=200_000))
    b = _collect(stage_windows(small, split="valid", length=300_000, seed=0, epoch=0, coordinates=True,
                               shuffle=False))
    assert b["input_ids"].shape == (3, 300_000)  # 1,072,315 bp of chrII hold 3 windows of 300,001
    for i in range(3):
        start = b["start"][i]
        np.testing.assert_array_equal(b["input_ids"][i], reference_ids["chrII"][start: start + 300_000])
        np.testing.assert_array_equal(b["labels"][i], reference_ids["chrII"][start + 1: start + 300_001])


@pytest.mark.integration
def test_bad_window_requests_fail_before_any_work(chunks):
    with pytest.raises(InputError, match="longer than every valid sequence"):
        stage_windows(chunks, split="valid", length=2_000_000, seed=0, epoch=0)
    with pytest.raises(InputError, match="split 'test' is empty"):
        stage_windows(chunks, split="test", length=100, seed=0, epoch=0)
    with pytest.raises(TypeError, match="needs the genome layout"):  # a bare Dataset has none
        stage_windows(chunks.dataset.limit(3), split="train", length=100, seed=0, epoch=0)


@pytest.mark.integration
def test_every_worker_gets_the_same_number_of_full_batches(chunks):
    ds = stage_windows(chunks, split="valid", length=2000, seed=0, epoch=0).materialize()  # ~535 rows
    total = ds.count()
    iterators, k = split_for_workers(ds, num_workers=2, batch_size=16)
    assert k == total // 32 and k > 10
    for epoch in range(2):  # the iterators are reusable, epoch after epoch
        counts: dict[int, list[int]] = {}

        def consume(rank: int) -> None:
            counts[rank] = [len(b["input_ids"]) for b in
                            iterators[rank].iter_batches(batch_size=16, batch_format="numpy")]

        threads = [threading.Thread(target=consume, args=(r,)) for r in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert counts[0] == counts[1] == [16] * k, (epoch, counts)
    trimmed, k2 = equalize_batches(ds, num_workers=2, batch_size=16)
    assert k2 == k and trimmed.count() == 2 * 16 * k
    with pytest.raises(InputError, match="fewer rows than one batch"):
        equalize_batches(ds, num_workers=2, batch_size=10_000)
