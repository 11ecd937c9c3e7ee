"""The k-mer chain behind the ``bits_saved`` column: where does the model know more than k-mers?

For every scored base, ``bits_saved = log2 P_model(base) - log2 P_kmer(base)``, both
conditioned on what precedes the base on the forward strand: the model on its window's context,
the order-k Markov chain on the k bases before it on the chromosome (fewer at the chromosome's
start, and cut after an N: hyena_platform.train.baselines.per_base_log2). Averaged over a
region it is the model's bits-per-base advantage over the chain there; its sign says who is
better at each place (coding periodicity, repeats, promoters, ...).

The chain: additive-smoothed order-k counts (hyena_platform.train.baselines, alpha = 1) over
`baseline.fit_on` (default: every selected record that is not scored, so the scored bases are
held out, as they are for the model when it was trained on the other records). With
`baseline.order` null the order is chosen among `baseline.orders` by perplexity on held-out
bases: the last `heldout_fraction` of each fit_on record is left out of the counts, each order
is evaluated there, and the best one is then counted on the whole records. Pure numpy, on the
driver, a few seconds for a bacterial genome; the replicas receive the log2 tables only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from hyena_platform.data.genome import Record, read_records, select_records
from hyena_platform.errors import ConfigError
from hyena_platform.score.config import BaselineSection
from hyena_platform.score.tiling import Region
from hyena_platform.train.baselines import MarkovBaselines, per_base_log2


@dataclass
class KmerChain:
    """An order-k chain ready for per-base scoring, and how it was chosen."""

    order: int
    tables: list[np.ndarray]  # float32 log2 p(x | context), orders 0..order (back-off included)
    fit_on: list[str]  # record names it was counted on
    fit_bases: int  # bases (A/C/G/T/N) counted
    chosen_by: str  # "baseline.order" or "held-out perplexity"
    heldout_bits: dict[int, float] = field(default_factory=dict)  # order -> bits/base on the held-out part

    def log2_probs(self, tokens: np.ndarray) -> np.ndarray:
        """Per-base log2 P of one contiguous stretch of a chromosome (context: the stretch)."""
        return per_base_log2(self.tables, tokens, self.order)

    def describe(self) -> dict[str, Any]:
        """For the manifest, the MLflow run and the output's identity."""
        return {"order": self.order, "fit_on": self.fit_on, "fit_bases": self.fit_bases, "alpha": 1.0,
                "chosen_by": self.chosen_by,
                "heldout_bits_per_base": {str(k): round(v, 6) for k, v in self.heldout_bits.items()},
                "definition": "hyena_platform.score.kmer (module docstring)"}


def fit_chain(section: BaselineSection, paths: Sequence[str], regions: Sequence[Region], *,
              include: Sequence[str] = (), exclude: Sequence[str] = (), min_length: int = 0,
              index_cache: str | None = None, source: str = "<job>") -> KmerChain:
    """The chain of `section` on the genome `paths`, for scoring `regions`; ConfigError if it
    has nothing to be counted on."""
    records = read_records(list(paths), index_cache=index_cache)
    chosen = fit_records(section, records, regions, include=include, exclude=exclude, min_length=min_length,
                         source=source)
    streams = [record_tokens(r, index_cache) for r in chosen]
    heldout: dict[int, float] = {}
    if section.order is None:
        heldout = heldout_bits(streams, sorted(set(section.orders)), section.heldout_fraction)
        order, how = min(heldout, key=lambda k: (heldout[k], k)), "held-out perplexity"
    else:
        order, how = section.order, "baseline.order"
    chain = MarkovBaselines.fit(streams, order)
    tables = [chain.log2_probs(j).astype(np.float32) for j in range(order + 1)]
    return KmerChain(order, tables, [r.name for r in chosen], chain.n_train_bases, how, heldout)


def fit_records(section: BaselineSection, records: list[Record], regions: Sequence[Region], *,
                include: Sequence[str], exclude: Sequence[str], min_length: int, source: str) -> list[Record]:
    by_name = {r.name: r for r in records}
    if section.fit_on:
        unknown = [n for n in section.fit_on if n not in by_name]
        if unknown:
            raise ConfigError(f"{source}: baseline.fit_on names {unknown[0]!r}, not a record of the FASTA; "
                              f"choose among {', '.join(list(by_name)[:8])}")
        return [by_name[n] for n in section.fit_on]
    scored = {r.chrom for r in regions}
    rest = [r for r in select_records(records, include=include, exclude=exclude, min_length=min_length)
            if r.name not in scored]
    if not rest:
        raise ConfigError(f"{source}: baseline.bits_saved: every record is scored, so none is left to count the "
                          "k-mer chain on; name the records in baseline.fit_on (e.g. the model's training records)")
    return rest


def record_tokens(record: Record, index_cache: str | None) -> np.ndarray:
    from hyena_platform.data.chunks import fetch_codes
    from hyena_platform.data.fasta import tokenize_codes
    from hyena_platform.data.genome import ChunkSpec

    spec = ChunkSpec(record.source, record.name, 0, record.length, "baseline", 0)
    return tokenize_codes(fetch_codes(spec, index_cache=index_cache), source=record.source, chrom=record.name,
                          start=0)


def heldout_bits(streams: Sequence[np.ndarray], orders: Sequence[int], fraction: float) -> dict[int, float]:
    """Bits per base of each order on the last `fraction` of every stream, counted on the rest."""
    cuts = [int(len(s) * (1.0 - fraction)) for s in streams]
    chain = MarkovBaselines.fit([s[:c] for s, c in zip(streams, cuts)], max(orders))
    out = {}
    for k in orders:
        tables = [chain.log2_probs(j) for j in range(k + 1)]
        total, count = 0.0, 0
        for s, c in zip(streams, cuts):
            # the held-out part, with the k bases before it as context (not scored themselves)
            bits = per_base_log2(tables, s[max(0, c - k):], k)[min(c, k):]
            ok = ~np.isnan(bits)
            total -= float(bits[ok].sum())
            count += int(ok.sum())
        out[k] = total / count if count else math.inf
    return out
