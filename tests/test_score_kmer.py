"""The k-mer chain of the bits_saved column (hyena_platform.score.kmer), without Ray: per-base
log2 P against a direct dictionary count, the order chosen by held-out perplexity, the config."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from hyena.tokenizer import N
from hyena_platform.errors import ConfigError
from hyena_platform.score.config import job_from_mapping
from hyena_platform.train.baselines import MarkovBaselines, per_base_log2


def direct_log2(train: np.ndarray, stream: np.ndarray, order: int) -> np.ndarray:
    """Dictionary counts of (context string, next base), context = up to `order` bases before t
    in `stream`, cut at its start (N counts as a symbol, as in the chain)."""
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    totals: list[Counter] = [Counter() for _ in range(order + 1)]
    t = train.tolist()
    for j in range(order + 1):
        for i in range(j, len(t)):
            ctx = tuple(t[i - j:i])
            counts[j][ctx, t[i]] += 1
            totals[j][ctx] += 1
    s = stream.tolist()
    out = []
    for i, x in enumerate(s):
        j = min(order, i)
        ctx = tuple(s[i - j:i])
        out.append(math.log2((counts[j][ctx, x] + 1) / (totals[j][ctx] + 5)))
    return np.array(out)


def test_per_base_log2_equals_direct_counts():
    rng = np.random.default_rng(1)
    train = rng.choice([7, 8, 9, 10, 11], size=4000, p=[0.3, 0.2, 0.2, 0.28, 0.02]).astype(np.uint8)
    stream = rng.choice([7, 8, 9, 10], size=500).astype(np.uint8)
    for order in (0, 1, 3):
        chain = MarkovBaselines.fit([train], order)
        tables = [chain.log2_probs(j) for j in range(order + 1)]
        np.testing.assert_allclose(per_base_log2(tables, stream, order), direct_log2(train, stream, order),
                                   rtol=0, atol=1e-12)


def test_context_is_cut_after_a_non_base_token():
    chain = MarkovBaselines.fit([np.array([7, 8, 9, 10] * 50, dtype=np.uint8)], 2)
    tables = [chain.log2_probs(j) for j in range(3)]
    stream = np.array([7, 8, 0, 9, 10, 7], dtype=np.uint8)  # 0 = a special token, not a base
    got = per_base_log2(tables, stream, 2)
    assert np.isnan(got[2])
    assert got[3] == tables[0][0, 2]  # just after the cut: no context
    assert got[4] == tables[1][2, 3]  # one base of context (G) -> T
    assert got[5] == tables[2][3 * 1 + 2 * 5, 0]  # G T -> A (most recent least significant)


def test_held_out_perplexity_picks_the_generating_order():
    from hyena_platform.score.kmer import heldout_bits

    rng = np.random.default_rng(0)
    table = rng.dirichlet(np.full(4, 0.3), size=16)  # an order-2 chain over A C G T
    seq = [0, 1]
    for _ in range(60_000):
        seq.append(rng.choice(4, p=table[seq[-2] * 4 + seq[-1]]))
    tokens = (np.array(seq) + 7).astype(np.uint8)
    bits = heldout_bits([tokens], [0, 1, 2, 3, 5], 0.2)
    assert min(bits, key=bits.get) == 2, bits


@pytest.mark.parametrize("section, message", [
    ({"bits_saved": True, "order": 9}, "order 9 is outside 0..8"),
    ({"bits_saved": True, "orders": []}, "baseline.orders is empty"),
    ({"bits_saved": True, "heldout_fraction": 0}, "heldout_fraction must be between 0 and 1"),
    ({"bits_saved": True, "fit": ["chrI"]}, "fit_on"),  # unknown key: the valid keys are listed
])
def test_bad_baseline_sections_are_one_line_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        job_from_mapping({"model": {"uri": "m"}, "output": {"path": "o"}, "baseline": section})


def test_fitting_on_every_scored_record_is_refused(bundled_genome):
    from hyena_platform.score.config import BaselineSection
    from hyena_platform.score.kmer import fit_chain
    from hyena_platform.score.tiling import Region

    regions = [Region("chrI", 0, 10, 2_961_149, str(bundled_genome)),
               Region("chrII", 0, 10, 1_072_315, str(bundled_genome))]
    with pytest.raises(ConfigError, match="none is left to count the k-mer chain on"):
        fit_chain(BaselineSection(bits_saved=True), [str(bundled_genome)], regions)
    with pytest.raises(ConfigError, match="baseline.fit_on names 'chrX'"):
        fit_chain(BaselineSection(bits_saved=True, fit_on=["chrX"]), [str(bundled_genome)], regions)
