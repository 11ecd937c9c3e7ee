"""The windowing maths of scoring: exactly once, enough context, chunking, strands. Pure numpy."""

from __future__ import annotations

import numpy as np
import pytest

from hyena.tokenizer import PAD, SEP
from hyena_platform.score.tiling import (
    CAUSAL, CENTRED, Chunk, Region, centred_margins, chunk_windows, min_context, plan_chunks, rc_interval,
    strand_sequence, tile, tile_centred, window_batch, window_layout,
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


# ------------------------------------------------------------------------------------------
# Centred windows: a both-strands per-base model reads context on both sides of every base

CENTRED_CASES = [
    # (start, end, length, window, stride)
    (0, 1000, 1000, 64, 32), (0, 1000, 1000, 64, 24), (0, 1000, 1000, 64, 64), (0, 1000, 1000, 64, 1),
    (5, 997, 1000, 64, 20), (40, 41, 1000, 64, 20), (500, 777, 5000, 100, 37), (0, 10, 10, 64, 32),
    (0, 1, 1, 1, 1), (3, 200, 200, 7, 3), (1000, 5000, 9000, 256, 192), (8990, 9000, 9000, 256, 192),
]


def reads_per_base(blocks: np.ndarray) -> np.ndarray:
    """(n, 2): the input [a, b) of the block that scores each base, bases in order."""
    return np.concatenate([np.repeat(blocks[i:i + 1, 2:4], blocks[i, 1] - blocks[i, 0], axis=0)
                           for i in range(len(blocks))])


@pytest.mark.parametrize("start,end,length,window,stride", CENTRED_CASES)
def test_centred_every_base_exactly_once_with_context_on_both_sides(start, end, length, window, stride):
    blocks = tile_centred(start, end, window, stride, length)
    np.testing.assert_array_equal(covered(blocks[:, :3]), np.arange(start, end))  # each once, in order
    own, stop, a, b = blocks.T
    assert np.all(b - a <= window) and np.all((a <= own) & (stop <= b)) and np.all((a >= 0) & (b <= length))
    before, after = centred_margins(window, stride)
    assert before + stride + after == window and before - after in (0, 1)
    pos = np.arange(start, end)
    read = reads_per_base(blocks)
    # every base: B bases before and F after it in the head's read, unless its input reaches the
    # chromosome's start (then every base before it) or its end (every base after it)
    up, down = pos - read[:, 0], read[:, 1] - 1 - pos
    assert np.all((up >= before) | (read[:, 0] == 0)) and np.all((down >= after) | (read[:, 1] == length))
    assert np.all(up[read[:, 0] == 0] == pos[read[:, 0] == 0])
    # the log_prob of a base (stream u[a .. p]) sees at least B + 1 upstream bases off the start
    assert np.all(min_context(blocks)[a > 0] >= before + 1)
    # a cell's bases sit in its input's middle: the input starts B before the cell (k * S)
    cell = (own // stride) * stride
    np.testing.assert_array_equal(a, np.maximum(cell - before, 0))
    np.testing.assert_array_equal(b, np.minimum(cell + stride + after, length))


@pytest.mark.parametrize("chunk_size", [1, 7, 24, 100, 240, 1000, 4096])
def test_centred_reads_do_not_depend_on_the_chunking_or_the_region(chunk_size):
    n, window, stride = 2000, 64, 24
    whole = reads_per_base(tile_centred(0, n, window, stride, n))
    regions = [Region("c", 0, 333, n, "f"), Region("c", 333, 1500, n, "f"), Region("c", 1500, n, n, "f")]
    parts = [chunk_windows(c, window, stride, reverse_strand=False, layout=CENTRED)
             for c in plan_chunks(regions, chunk_size)]
    np.testing.assert_array_equal(np.concatenate([reads_per_base(p.forward) for p in parts]), whole)
    for p in parts:  # each chunk's fetch span holds x[a - 1 .. b) of its blocks
        assert p.fetch_start == max(0, int(p.forward[:, 2].min()) - 1) and p.fetch_end == int(p.forward[:, 3].max())
        assert p.reverse.size == 0
    with pytest.raises(ValueError, match="forward strand only"):
        chunk_windows(Chunk("c", 0, 100, n, "f", index=0), window, stride, reverse_strand=True, layout=CENTRED)


def test_causal_layout_is_the_tiling_of_language_models_and_forward_heads():
    """Forward models keep their windows: the default layout is exactly `tile`, and a model
    without a both-strands token head is scored causally."""
    from types import SimpleNamespace

    chunk = Chunk("c", 300, 1000, 5000, "f", index=0)
    plan = chunk_windows(chunk, 64, 24, reverse_strand=False)
    assert plan.forward.shape[1] == 3
    np.testing.assert_array_equal(plan.forward, tile(300, 1000, 64, 24))
    assert plan.forward[:2].tolist() == [[300, 324, 260], [324, 348, 284]]
    assert (plan.fetch_start, plan.fetch_end) == (259, 1000)
    head = lambda strands: SimpleNamespace(strands=strands)  # noqa: E731
    assert window_layout(SimpleNamespace()) == CAUSAL  # a language model
    assert window_layout(SimpleNamespace(task="token", head_config=head("forward"))) == CAUSAL
    assert window_layout(SimpleNamespace(task="sequence", head_config=head("both"))) == CAUSAL
    assert window_layout(SimpleNamespace(task="token", head_config=head("both"))) == CENTRED


def test_window_batch_of_centred_blocks_reads_past_the_owned_bases():
    x = np.arange(30, dtype=np.uint8) + 100
    blocks = tile_centred(0, 30, 8, 4, 30)  # B = F = 2: cells [0,4) reads [0,6); [4,8) reads [2,10) ...
    assert blocks[:2].tolist() == [[0, 4, 0, 6], [4, 8, 2, 10]] and blocks[-1].tolist() == [28, 30, 26, 30]
    inputs, labels, owned = window_batch(x, 0, blocks, 8)
    assert inputs[0, :6].tolist() == [SEP] + list(range(100, 105)) and inputs[0, 6:].tolist() == [PAD] * 2
    assert labels[1].tolist() == list(range(102, 110))  # x[a .. b): two bases each side of the cell
    assert owned[1].tolist() == [False, False, True, True, True, True, False, False]
    np.testing.assert_array_equal(labels[owned], x)  # row-major ownership = positions in order
