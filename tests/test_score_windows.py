"""The windowing maths of scoring: exactly once, enough context, chunking, strands. Pure numpy."""

from __future__ import annotations

import numpy as np
import pytest

from hyena.tokenizer import PAD, SEP
from hyena_platform.score.tiling import (
    Chunk, Region, chunk_windows, min_context, plan_chunks, rc_interval, strand_sequence, tile, window_batch,
)

CASES = [
    # (start, end, window, stride)
    (0, 1000, 64, 32), (0, 1000, 64, 64), (0, 1000, 64, 1), (0, 10, 64, 32), (0, 64, 64, 32),
    (0, 65, 64, 32), (5, 1000, 64, 20), (40, 41, 64, 20), (500, 777, 100, 37), (0, 1, 1, 1),
    (3, 200, 7, 3), (1000, 5000, 256, 192),
]


def covered(blocks: np.ndarray) -> np.ndarray:
    return np.concatenate([np.arange(o, e) for o, e, _ in blocks]) if blocks.size else np.zeros(0, int)


@pytest.mark.parametrize("start,end,window,stride", CASES)
def test_every_base_exactly_once_with_enough_context(start, end, window, stride):
    blocks = tile(start, end, window, stride)
    pos = covered(blocks)
    np.testing.assert_array_equal(pos, np.arange(start, end))  # each once, in order
    own, stop, a = blocks.T
    assert np.all(stop - a <= window)  # never more input than the window
    assert np.all(a <= own)
    # every base: at least W - S upstream bases (W - S + 1 in fact), unless the window starts
    # at the chromosome's start, where it sees every base before it.
    ctx = min_context(blocks)
    assert np.all((ctx >= window - stride + 1) | (a == 0))
    assert np.all(ctx[a == 0] == own[a == 0])
    # all but possibly the first and the last block own exactly `stride` bases
    if len(blocks) > 2:
        assert np.all(stop[1:-1] - own[1:-1] == stride)


def test_first_block_at_chromosome_start_spans_the_window():
    blocks = tile(0, 1000, 64, 16)
    assert blocks[0].tolist() == [0, 64, 0]  # [SEP] + 63 bases predict bases 0..63
    assert blocks[1].tolist() == [64, 80, 16]


def test_block_rows_need_at_most_the_window():
    with pytest.raises(ValueError, match="stride"):
        tile(0, 10, 8, 9)
    with pytest.raises(ValueError, match="window"):
        tile(0, 10, 0, 1)


def test_chunks_cut_at_multiples_and_keep_regions():
    regions = [Region("a", 0, 250, 250, "f"), Region("b", 70, 130, 300, "f"), Region("b", 200, 300, 300, "f")]
    chunks = plan_chunks(regions, 100)
    assert [(c.chrom, c.start, c.end) for c in chunks] == [
        ("a", 0, 100), ("a", 100, 200), ("a", 200, 250), ("b", 70, 100), ("b", 100, 130), ("b", 200, 300)]
    assert [c.index for c in chunks] == list(range(6))
    assert chunks[0].name == "000000000000-000000000100"


def test_chunking_by_a_multiple_of_the_stride_gives_the_whole_region_tiling():
    whole = tile(0, 5000, 256, 128)
    parts = np.concatenate([tile(c.start, c.end, 256, 128)
                            for c in plan_chunks([Region("c", 0, 5000, 5000, "f")], 1024)])
    np.testing.assert_array_equal(whole, parts)


def test_reverse_interval_and_sequence_mapping():
    n = 50
    assert rc_interval(10, 20, n) == (30, 40)
    x = np.random.default_rng(0).integers(7, 12, n).astype(np.uint8)
    from hyena.tokenizer import reverse_complement_ids

    full_rc = reverse_complement_ids(x)
    seq, seq_start = strand_sequence(x[5:45], 5, 45, n, reverse=True)
    assert seq_start == 5
    np.testing.assert_array_equal(seq, full_rc[5:45])


def test_fetch_span_covers_both_strands():
    chunk = Chunk("c", 300, 400, 1000, "f", index=0)
    fwd_only = chunk_windows(chunk, 64, 32, reverse_strand=False)
    assert (fwd_only.fetch_start, fwd_only.fetch_end) == (300 - 1 - (64 - 32), 400)
    both = chunk_windows(chunk, 64, 32, reverse_strand=True)
    assert both.fetch_start == fwd_only.fetch_start and both.fetch_end == 400 + 64 - 32 + 1
    assert covered(both.reverse).tolist() == list(range(600, 700))


def test_window_batch_layout_start_token_padding_and_ownership():
    x = np.arange(20, dtype=np.uint8) + 100  # distinct fake ids
    blocks = tile(0, 20, 8, 4)  # [0,8) a=0; [8,12) a=4; [12,16) a=8; [16,20) a=12
    inputs, labels, owned = window_batch(x, 0, blocks, 8)
    assert inputs[0].tolist() == [SEP] + list(range(100, 107))
    assert labels[0].tolist() == list(range(100, 108))
    assert inputs[1].tolist() == list(range(103, 111))  # x[a-1 .. e-1)
    assert labels[1].tolist() == list(range(104, 112))
    np.testing.assert_array_equal(labels[owned], x)  # row-major ownership = positions in order
    # a shorter block is right-padded with [PAD], never owned there
    short = tile(0, 5, 8, 4)
    inp, lab, own = window_batch(x, 0, short, 8)
    assert inp[0, 5:].tolist() == [PAD] * 3 and not own[0, 5:].any()
    # a span that starts later works with the same coordinates
    inp2, lab2, _ = window_batch(x[3:], 3, blocks[1:], 8)
    np.testing.assert_array_equal(inp2, inputs[1:])
    with pytest.raises(ValueError):
        window_batch(x[5:], 5, blocks[1:], 8)  # does not reach back to base 3
