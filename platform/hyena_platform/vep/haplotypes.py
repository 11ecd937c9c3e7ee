"""The window rule: which bases the model reads for a variant, and which it scores.

Pure numpy, no torch and no Ray.

Definition (flank F, a normalised edit replacing reference bases ``[s, e)`` by ALT bases ``a``,
on a contig of length n; 0-based, end-exclusive)
---------------------------------------------------------------------------------------------
- Context: ``left = min(F, s)`` bases before the edit, ``right = min(F, n - e)`` bases after it.
  Every variant gets F bases on each side, except near a contig's start or end, where it gets
  what exists (down to 0 at the first or last base).
- Haplotypes: ``ref_hap = x[s - left, e + right)`` and
  ``alt_hap = x[s - left, s) + a + x[e, e + right)``: the same bases around the edit, so the two
  differ only by the edit and the alignment of everything after it is exact.
- Forward strand: the model reads each haplotype left to right; the bases before the edit are
  context, and the score sums log P over the edit and the ``right`` bases after it, the only
  positions whose prediction the variant can change (the model is causal):
  ``score_fwd = sum log P(alt_hap[i] | alt_hap[:i]) - sum log P(ref_hap[i] | ref_hap[:i])``,
  each sum over ``i >= left``. The left context cancels exactly, so this equals
  ``log P(alt_hap) - log P(ref_hap)``.
- Reverse strand: the same on the reverse complement of each haplotype; there the ``right``
  bases come first (context) and the sum runs over the edit and the ``left`` bases after it.
- ``score = (score_fwd + score_rc) / 2``.
- Contig edges: when a haplotype starts at the contig's first base (``left == s``, i.e. s < F)
  the model reads the start token [SEP] first, as when scoring a chromosome (see
  hyena_platform.score.tiling), so even the contig's first base is predicted; likewise on the
  reverse strand at the contig's end. Otherwise the first base of a haplotype is context only.
- Length: a haplotype is at most ``2F + max(e - s, len(a))`` bases; with the edit at most
  ``max_allele`` bases long that is ``2F + max_allele <= l_max - 2`` (checked when planning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyena.tokenizer import PAD, SEP, reverse_complement_ids


@dataclass(frozen=True)
class Window:
    """One variant's haplotypes (token ids) and how much context each side has."""

    ref: np.ndarray  # uint8 ids of ref_hap
    alt: np.ndarray  # uint8 ids of alt_hap
    left: int  # bases before the edit
    right: int  # bases after the edit
    at_start: bool  # the haplotypes begin at the contig's first base
    at_end: bool  # the haplotypes end at the contig's last base


def window_span(start: int, end: int, length: int, flank: int) -> tuple[int, int]:
    """The reference bases ``[lo, hi)`` a window reads around the edit ``[start, end)``."""
    return max(0, start - flank), min(length, end + flank)


def build_window(tokens: np.ndarray, tokens_start: int, start: int, end: int, alt: np.ndarray,
                 length: int, flank: int) -> Window:
    """The window of the edit ``[start, end) -> alt`` (ids); `tokens` are the contig's ids from
    `tokens_start` on, covering `window_span`."""
    lo, hi = window_span(start, end, length, flank)
    if lo < tokens_start or hi > tokens_start + tokens.shape[0]:
        raise ValueError("tokens do not cover the window")  # internal invariant
    before = tokens[lo - tokens_start: start - tokens_start]
    after = tokens[end - tokens_start: hi - tokens_start]
    ref = tokens[lo - tokens_start: hi - tokens_start]
    alt_hap = np.concatenate([before, alt.astype(np.uint8), after])
    return Window(ref, alt_hap, start - lo, hi - end, lo == 0, hi == length)


@dataclass(frozen=True)
class StrandRow:
    """One model input: a haplotype on one strand, and which of its predictions are summed."""

    inputs: np.ndarray  # int64 ids the model reads
    labels: np.ndarray  # int64 ids it predicts (labels[j] follows inputs[: j + 1])
    first: int  # labels[first:] are summed


def strand_row(hap: np.ndarray, context: int, starts_contig: bool) -> StrandRow:
    """The input for `hap` whose first `context` bases are context only."""
    hap = hap.astype(np.int64)
    if starts_contig:
        stream = np.concatenate([[SEP], hap])
        return StrandRow(stream[:-1], stream[1:], context)
    if context < 1:
        raise ValueError("a window inside a contig has at least one base of context")  # invariant
    return StrandRow(hap[:-1], hap[1:], context - 1)


def window_rows(w: Window) -> list[StrandRow]:
    """ref forward, alt forward, ref reverse, alt reverse (the order `combine` expects)."""
    return [strand_row(w.ref, w.left, w.at_start), strand_row(w.alt, w.left, w.at_start),
            strand_row(reverse_complement_ids(w.ref), w.right, w.at_end),
            strand_row(reverse_complement_ids(w.alt), w.right, w.at_end)]


def pad_rows(rows: list[StrandRow]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-padded int64 inputs and labels (B, width) and the bool mask of summed labels.

    Right padding never changes a prediction before it: the model is causal.
    """
    width = max(r.inputs.shape[0] for r in rows)
    inputs = np.full((len(rows), width), PAD, dtype=np.int64)
    labels = np.full((len(rows), width), PAD, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        n = r.inputs.shape[0]
        inputs[i, :n], labels[i, :n] = r.inputs, r.labels
        mask[i, r.first:n] = True
    return inputs, labels, mask


def combine(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row sums of log P, 4 rows per variant (`window_rows` order) -> score_fwd, score_rc,
    score (float64)."""
    s = sums.reshape(-1, 4).astype(np.float64)
    fwd, rc = s[:, 1] - s[:, 0], s[:, 3] - s[:, 2]
    return fwd, rc, (fwd + rc) / 2
