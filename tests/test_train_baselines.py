"""Order-k Markov baselines: counts and evaluation checked against brute force."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from hyena_platform.train.baselines import MarkovBaselines, count_orders, pack, symbols, unpack


def brute_counts(tokens: np.ndarray, order: int) -> Counter:
    sym = symbols(tokens)
    out = Counter()
    for t in range(order, len(sym)):
        window = sym[t - order: t + 1]
        if (window >= 0).all():
            out[tuple(window)] += 1
    return out


def test_counts_match_brute_force_and_skip_non_bases():
    rng = np.random.default_rng(0)
    tokens = rng.integers(7, 12, size=500).astype(np.uint8)
    tokens[[50, 51, 200]] = [4, 1, 6]  # PAD, SEP, UNK cut contexts
    counts = count_orders(tokens, 3)
    for order in range(4):
        brute = brute_counts(tokens, order)
        for (*context, x), n in brute.items():
            code = sum(c * 5 ** i for i, c in enumerate(reversed(context)))  # most recent least significant
            assert counts[order][code, x] == n
        assert counts[order].sum() == sum(brute.values())


def test_pack_round_trip():
    counts = count_orders(np.arange(7, 12, dtype=np.uint8).repeat(3), 2)
    assert all((a == b).all() for a, b in zip(unpack(pack(counts), 2), counts))


def brute_bits(model: MarkovBaselines, input_ids: np.ndarray, labels: np.ndarray, order: int) -> float:
    total, n = 0.0, 0
    for row_in, row_lab in zip(input_ids, labels):
        s_in, s_lab = symbols(row_in), symbols(row_lab)
        for t in range(len(row_in)):
            if s_lab[t] < 0:
                continue
            j = 0
            while j < order and t - j >= 0 and s_in[t - j] >= 0:
                j += 1
            context = s_in[t - j + 1: t + 1] if j else []
            code = sum(int(c) * 5 ** i for i, c in enumerate(reversed(list(context))))
            c = model.counts[j][code]
            total += -math.log2((c[s_lab[t]] + model.alpha) / (c.sum() + 5 * model.alpha))
            n += 1
    return total / n


@pytest.mark.parametrize("order", [0, 1, 2, 4])
def test_evaluation_matches_brute_force_with_backoff_at_window_start(order):
    rng = np.random.default_rng(1)
    train = rng.integers(7, 12, size=5000).astype(np.uint8)
    model = MarkovBaselines.fit([train[:2500], train[2500:]], max_order=4)
    windows = rng.integers(7, 12, size=(3, 41))
    windows[1, 10] = 4  # a pad label is not scored, and cuts the context after it
    ids, labels = windows[:, :-1], windows[:, 1:]
    assert model.bits_per_base(ids, labels, order) == pytest.approx(brute_bits(model, ids, labels, order))


def test_a_chain_learns_a_deterministic_sequence():
    period = np.array([7, 8, 9, 10, 7, 9, 8, 10], dtype=np.uint8)  # order 3 determines the next base
    train = np.tile(period, 500)
    model = MarkovBaselines.fit([train], max_order=3)
    window = np.tile(period, 8)[None, :]
    ids, labels = window[:, :-1], window[:, 1:]
    assert model.bits_per_base(ids, labels, 0) == pytest.approx(2.0, abs=0.01)  # uniform composition
    # With 3 bases of context the chain is certain up to Laplace smoothing (-log2(501/505) bits);
    # only the window's first positions, with less context, cost more.
    assert model.bits_per_base(ids, labels, 3) < 0.1
    assert model.bits_per_base(ids, labels, 1) > 0.5
