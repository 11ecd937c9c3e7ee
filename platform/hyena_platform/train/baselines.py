"""Order-k Markov (k-mer) baselines: what k-mer statistics alone predict on the held-out bases.

A model that does not beat an order-k Markov chain fitted on the training split has learned
nothing beyond k-mer frequencies. The baselines are evaluated on exactly the validation windows
the model sees, position by position, with the same context the model has: the tokens of the
window up to and including position t predict ``labels[t]``. Near a window's start (fewer than k
tokens of context) the chain backs off to the order it can use, as the model also sees less.

Alphabet: the five base tokens A C G T N (ids 7..11), symbols 0..4. A context holding any other
token (special tokens) is cut there. Probabilities use additive (Laplace) smoothing,
``p(x | c) = (n(c, x) + alpha) / (n(c) + 5 alpha)`` with alpha = 1. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from hyena.tokenizer import BASES, A

FIRST_BASE_ID = A  # the official ids of A C G T N are consecutive
ALPHABET = len(BASES)
LN2 = math.log(2.0)


def val_metrics(loss: float) -> dict[str, float]:
    """Cross-entropy in nats per token -> loss, perplexity and bits per base (= loss / ln 2)."""
    return {"loss": loss, "perplexity": math.exp(loss) if loss < 700 else math.inf, "bits_per_base": loss / LN2}


def symbols(ids: np.ndarray) -> np.ndarray:
    """Token ids -> int64 symbols 0..4 for A C G T N, -1 for anything else."""
    sym = np.asarray(ids).astype(np.int64) - FIRST_BASE_ID
    sym[(sym < 0) | (sym >= ALPHABET)] = -1
    return sym


def _context_codes(sym: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """For a 1-D symbol stream, the order-`order` context code of each position t >= order
    (the `order` symbols before t, most recent least significant) and a validity mask."""
    n = sym.shape[0] - order
    code = np.zeros(n, dtype=np.int64)
    valid = sym[order:] >= 0
    for i in range(1, order + 1):  # i-th symbol before t
        prev = sym[order - i: order - i + n]
        valid &= prev >= 0
        code += np.where(prev >= 0, prev, 0) * ALPHABET ** (i - 1)
    return code, valid


def count_orders(tokens: np.ndarray, max_order: int) -> list[np.ndarray]:
    """Transition counts of orders 0..max_order over one contiguous token stream.

    counts[j] has shape (5**j, 5): counts[j][c, x] = times symbol x followed context c.
    """
    sym = symbols(tokens)
    out = []
    for order in range(max_order + 1):
        if sym.shape[0] <= order:
            out.append(np.zeros((ALPHABET ** order, ALPHABET), dtype=np.int64))
            continue
        code, valid = _context_codes(sym, order)
        flat = code[valid] * ALPHABET + sym[order:][valid]
        out.append(np.bincount(flat, minlength=ALPHABET ** (order + 1)).reshape(-1, ALPHABET).astype(np.int64))
    return out


def pack(counts: Sequence[np.ndarray]) -> np.ndarray:
    """Counts of orders 0..K as one flat vector (for shipping through Ray Data)."""
    return np.concatenate([c.ravel() for c in counts])


def unpack(flat: np.ndarray, max_order: int) -> list[np.ndarray]:
    out, offset = [], 0
    for order in range(max_order + 1):
        size = ALPHABET ** (order + 1)
        out.append(flat[offset:offset + size].reshape(-1, ALPHABET).astype(np.int64))
        offset += size
    if offset != flat.shape[0]:
        raise ValueError(f"packed counts have {flat.shape[0]} entries, expected {offset} for max order {max_order}")
    return out


@dataclass
class MarkovBaselines:
    """Order 0..max_order chains fitted on training tokens."""

    max_order: int
    alpha: float = 1.0
    counts: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [np.zeros((ALPHABET ** j, ALPHABET), dtype=np.int64) for j in range(self.max_order + 1)]

    def update(self, tokens: np.ndarray) -> "MarkovBaselines":
        """Add the transitions of one contiguous stream (a chromosome or a chunk)."""
        for total, new in zip(self.counts, count_orders(tokens, self.max_order)):
            total += new
        return self

    def add_packed(self, flat: np.ndarray) -> "MarkovBaselines":
        for total, new in zip(self.counts, unpack(flat, self.max_order)):
            total += new
        return self

    @classmethod
    def fit(cls, streams: Iterable[np.ndarray], max_order: int, alpha: float = 1.0) -> "MarkovBaselines":
        model = cls(max_order, alpha)
        for tokens in streams:
            model.update(tokens)
        return model

    @property
    def n_train_bases(self) -> int:
        return int(self.counts[0].sum())

    def log2_probs(self, order: int) -> np.ndarray:
        """(5**order, 5) table of log2 p(x | context)."""
        c = self.counts[order].astype(np.float64)
        return np.log2((c + self.alpha) / (c.sum(axis=1, keepdims=True) + ALPHABET * self.alpha))

    def evaluate(self, input_ids: np.ndarray, labels: np.ndarray, order: int) -> tuple[float, int]:
        """Sum of -log2 p(label) over base labels of windows (n, L), and their count.

        Context of labels[:, t] = input_ids[:, t-order+1 .. t] (what a causal model sees),
        shortened at the window start or at a non-base token.
        """
        if order > self.max_order:
            raise ValueError(f"order {order} > fitted max order {self.max_order}")
        input_ids = np.atleast_2d(input_ids)
        labels = np.atleast_2d(labels)
        sym_in = symbols(input_ids)  # (n, L)
        target = symbols(labels)
        n, L = sym_in.shape
        # run[t] = number of consecutive valid symbols ending at t (inclusive), capped at `order`
        run = np.zeros((n, L), dtype=np.int64)
        current = np.zeros(n, dtype=np.int64)
        for t in range(L):
            current = np.where(sym_in[:, t] >= 0, np.minimum(current + 1, order), 0)
            run[:, t] = current
        bits = np.zeros((n, L), dtype=np.float64)
        code = np.zeros((n, L), dtype=np.int64)
        safe_target = np.where(target >= 0, target, 0)
        for j in range(order + 1):
            if j > 0:  # add the j-th most recent symbol: input_ids[:, t - j + 1]
                shifted = np.zeros((n, L), dtype=np.int64)
                shifted[:, j - 1:] = np.where(sym_in[:, : L - j + 1] >= 0, sym_in[:, : L - j + 1], 0)
                code = code + shifted * ALPHABET ** (j - 1)
            use = run == j
            if use.any():
                table = self.log2_probs(j)
                bits[use] = -table[code[use], safe_target[use]]
        scored = target >= 0
        return float(bits[scored].sum()), int(scored.sum())

    def bits_per_base(self, input_ids: np.ndarray, labels: np.ndarray, order: int) -> float:
        total, count = self.evaluate(input_ids, labels, order)
        return total / count if count else math.nan


def per_base_log2(tables: Sequence[np.ndarray], tokens: np.ndarray, order: int) -> np.ndarray:
    """log2 p(tokens[t] | the `order` tokens before t) for every t of one contiguous stream
    (a chromosome or a span of it), float64, NaN where tokens[t] is not a base.

    `tables[j]` is `MarkovBaselines.log2_probs(j)` for j = 0..order. The context of t is the
    stream before it: shorter at the stream's start, and cut after a non-base token (the chain
    backs off to the order it can use, as in `evaluate`). Vectorised: the full-order context
    code has the most recent symbol least significant, so the order-j code is it modulo 5**j.
    """
    sym = symbols(tokens)
    n = sym.shape[0]
    pos = np.arange(n)
    last_bad = np.maximum.accumulate(np.where(sym < 0, pos, -1))  # last non-base at or before t
    before = np.concatenate([[-1], last_bad[:-1]])  # ... strictly before t
    run = np.minimum(order, pos - before - 1)  # usable context length of t
    safe = np.where(sym >= 0, sym, 0)
    code = np.zeros(n, dtype=np.int64)
    for i in range(1, order + 1):  # the i-th symbol before t
        code[i:] += safe[:-i] * ALPHABET ** (i - 1)
    out = np.full(n, np.nan)
    for j in range(order + 1):
        use = (run == j) & (sym >= 0)
        if use.any():
            out[use] = tables[j][code[use] % ALPHABET ** j, sym[use]]
    return out

