"""The per-batch scorer against direct forward passes over each position's exact context.

No Ray: ChunkScorer is called directly on synthetic sequences with a tiny random model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hyena
from hyena.tokenizer import A, C, G, N, SEP, T, reverse_complement_ids
from hyena_platform.score.scorer import ChunkScorer, model_from_payload, model_payload
from hyena_platform.score.tiling import Chunk, tile

W, S = 64, 24
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2, l_max=W + 2)).eval()


@pytest.fixture(scope="module")
def genome():
    x = np.random.default_rng(1).integers(A, T + 1, 900).astype(np.uint8)
    x[100:107] = N
    x[0] = N
    return x


def direct(model, seq: np.ndarray, p: int, a: int) -> torch.Tensor:
    """log-probabilities (V,) of base p from the stream u[a .. p] ([SEP] + seq), one forward."""
    stream = np.concatenate([[SEP], seq]).astype(np.int64)
    ids = torch.from_numpy(stream[a: p + 1])[None]
    with torch.inference_mode():
        return torch.log_softmax(model(ids).logits.float(), -1)[0, -1]


def block_of(start: int, end: int, p: int) -> np.ndarray:
    blocks = tile(start, end, W, S)
    return blocks[(blocks[:, 0] <= p) & (p < blocks[:, 1])][0]


@pytest.mark.parametrize("start,end", [(0, 900), (250, 611), (0, 40)])
def test_log_prob_and_entropy_equal_a_direct_forward(model, genome, start, end):
    chunk = Chunk("c", start, end, genome.size, "f", index=0)
    scorer = ChunkScorer(model, window=W, stride=S, batch_size=5, probabilities=True)
    out = scorer.score_chunk(chunk, genome, 0)
    assert out.ref.tolist() == genome[start:end].tolist()
    rng = np.random.default_rng(start)
    sample = {start, end - 1, *rng.integers(start, end, 25).tolist()}
    for p in sorted(sample):
        if genome[p] == N:
            continue
        a = block_of(start, end, p)[2]
        assert p - a + 1 >= W - S + 1 or a == 0
        lp = direct(model, genome, p, a)
        i = p - start
        assert abs(out.columns["log_prob"][i] - lp[genome[p]].item()) <= 1e-5
        assert abs(out.columns["entropy"][i] - (-(lp.exp() * lp).sum()).item()) <= 1e-5
        np.testing.assert_allclose(out.columns["probs"][i], lp[[A, C, G, T]].exp().numpy(), atol=1e-6)


def test_n_bases_get_null_scores(model, genome):
    out = ChunkScorer(model, window=W, stride=S, batch_size=8, probabilities=True,
                      reverse_strand=True).score_chunk(Chunk("c", 0, 900, 900, "f", index=0), genome, 0)
    is_n = genome == N
    for name, values in out.columns.items():
        nan = np.isnan(values) if values.ndim == 1 else np.isnan(values).all(axis=1)
        np.testing.assert_array_equal(nan, is_n, err_msg=name)


def test_reverse_strand_is_the_reverse_complement_scored_and_mapped_back(model, genome):
    n = genome.size
    start, end = 300, 520
    out = ChunkScorer(model, window=W, stride=S, batch_size=4, probabilities=True,
                      reverse_strand=True).score_chunk(Chunk("c", start, end, n, "f", index=0), genome, 0)
    rc = reverse_complement_ids(genome)
    for p in (start, 333, 401, end - 1):
        q = n - 1 - p  # the same base on the reverse strand
        a = block_of(n - end, n - start, q)[2]
        assert q - a + 1 >= W - S + 1  # upstream on the reverse strand = downstream here
        lp = direct(model, rc, q, a)
        i = p - start
        assert rc[q] == {A: T, C: G, G: C, T: A}[genome[p]]
        assert abs(out.columns["log_prob_rc"][i] - lp[rc[q]].item()) <= 1e-5
        # p_a_rc is the reverse strand's probability of T (A's complement), and so on
        np.testing.assert_allclose(out.columns["probs_rc"][i], lp[[T, G, C, A]].exp().numpy(), atol=1e-6)
        mean = (out.columns["log_prob"][i] + out.columns["log_prob_rc"][i]) / 2
        assert abs(out.columns["log_prob_mean"][i] - mean) <= 1e-6


def test_reverse_strand_at_the_chromosome_end_starts_from_the_start_token(model, genome):
    n = genome.size
    out = ChunkScorer(model, window=W, stride=S, batch_size=4, reverse_strand=True).score_chunk(
        Chunk("c", n - 30, n, n, "f", index=0), genome, 0)
    rc = reverse_complement_ids(genome)
    lp = direct(model, rc, 0, 0)  # the last forward base is the first reverse base: [SEP] only
    assert abs(out.columns["log_prob_rc"][-1] - lp[rc[0]].item()) <= 1e-5


def test_scores_do_not_depend_on_the_fetched_span_and_repeat_bit_for_bit(model, genome):
    chunk = Chunk("c", 400, 700, genome.size, "f", index=0)
    scorer = ChunkScorer(model, window=W, stride=S, batch_size=6)
    full = scorer.score_chunk(chunk, genome, 0)
    again = scorer.score_chunk(chunk, genome[300:], 300)
    for k in full.columns:
        assert full.columns[k].tobytes() == again.columns[k].tobytes()


def test_batch_size_changes_nothing_beyond_rounding(model, genome):
    chunk = Chunk("c", 0, 900, genome.size, "f", index=0)
    one = ChunkScorer(model, window=W, stride=S, batch_size=1).score_chunk(chunk, genome, 0)
    many = ChunkScorer(model, window=W, stride=S, batch_size=32).score_chunk(chunk, genome, 0)
    np.testing.assert_allclose(one.columns["log_prob"], many.columns["log_prob"], atol=1e-5)


def test_payload_round_trip_gives_the_same_model(model):
    copy = model_from_payload(model_payload(model))
    ids = torch.randint(A, T + 1, (2, 50))
    with torch.inference_mode():
        assert torch.equal(copy(ids).logits, model(ids).logits)
