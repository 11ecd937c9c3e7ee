"""Variant effect scores of one chunk of VCF records, with one model replica.

`VariantScorer.score_records` turns records into one row per ALT: the REF check, the skip
reason, the normalised edit, its window (see `haplotypes`), and the scores. Windows of many
variants, both alleles and both strands, go through the model together, `batch_size` sequences
per call; a chunk's batches never mix with another chunk's, so a resumed run writes the same
values as an uninterrupted one. The Ray actor that wraps it is
`hyena_platform.vep.pipeline.VepReplica`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from hyena.tokenizer import encode_bytes
from hyena_platform.data.fasta import tokenize_codes
from hyena_platform.score.scorer import load_payload, score_batch
from hyena_platform.vep.alleles import Edit, NeedMoreContext, alt_reason, check_ref, normalize
from hyena_platform.vep.haplotypes import Window, build_window, combine, pad_rows, window_rows, window_span

Fetch = Callable[[str, int, int], str]  # (contig, start, end) -> reference bases, any case
SHIFT_MARGIN = 256  # reference bases fetched left of a variant for left-aligning indels


@dataclass
class VariantRow:
    """One ALT of one record, and what became of it."""

    record: int  # 0-based index of the record in the VCF
    alt_index: int  # 0-based index of the ALT in the record
    chrom: str  # as in the VCF
    contig: str  # in the FASTA
    pos: int  # 1-based VCF POS
    id: str | None
    ref: str
    alt: str | None
    info: dict[str, Any] = field(default_factory=dict)
    ref_match: bool | None = None  # None: not checked (no ALT can be scored)
    reason: str | None = None
    edit: Edit | None = None
    norm: tuple[int, str, str] | None = None  # the edit as 1-based POS, REF, ALT
    window: Window | None = None
    score_fwd: float | None = None
    score_rc: float | None = None
    score: float | None = None


def expand(records: Sequence[dict[str, Any]]) -> list[VariantRow]:
    """Records (``record, chrom, contig, pos, id, ref, alts, info``) -> one row per ALT (one row
    with ALT None for a record without ALT)."""
    rows = []
    for r in records:
        for i, alt in enumerate(r["alts"] or [None]):
            rows.append(VariantRow(r["record"], i, r["chrom"], r["contig"], r["pos"], r["id"], r["ref"],
                                   alt, dict(r.get("info") or {})))
    return rows


def prepare(row: VariantRow, fetch: Fetch, length: int, flank: int, max_allele: int) -> None:
    """REF check, skip reason, normalised edit and window of `row`, in place."""
    start = row.pos - 1
    reference = fetch(row.contig, max(0, start - SHIFT_MARGIN), min(length, start + len(row.ref) + flank))
    offset = max(0, start - SHIFT_MARGIN)
    row.ref_match = check_ref(row.ref, reference[start - offset: start - offset + len(row.ref)])
    row.reason = alt_reason(row.ref, row.alt)
    if row.reason is None and not row.ref_match:
        row.reason = "ref_mismatch"
    if row.reason is not None:
        return
    while True:
        try:
            row.edit = normalize(start, row.ref, row.alt, reference, offset)
            break
        except NeedMoreContext:  # a long repeat: fetch further left and shift again
            offset = max(0, offset - 16 * SHIFT_MARGIN)
            reference = fetch(row.contig, offset, min(length, start + len(row.ref) + flank))
    e = row.edit
    if max(e.bases, len(e.alt)) > max_allele:
        row.reason = "allele_too_long"
        return
    lo, hi = window_span(e.start, e.end, length, flank)
    span = fetch(row.contig, min(lo, max(0, e.start - 1)), max(hi, min(length, e.end + 1)))
    span_start = min(lo, max(0, e.start - 1))
    row.norm = e.vcf(span, span_start)
    codes = np.frombuffer(span.encode("latin-1"), dtype=np.uint8)
    source = getattr(fetch, "sources", {}).get(row.contig, "the reference FASTA")
    tokens = tokenize_codes(codes, source=source, chrom=row.contig, start=span_start)  # InputError on a bad byte
    alt_ids = encode_bytes(np.frombuffer(e.alt.encode("ascii"), dtype=np.uint8))  # A/C/G/T: checked by alt_reason
    row.window = build_window(tokens, span_start, e.start, e.end, alt_ids, length, flank)


def score_windows(model: torch.nn.Module, windows: Sequence[Window], *, batch_size: int,
                  device: torch.device | str = "cpu", precision: str = "fp32"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """score_fwd, score_rc, score (float64) of each window: its 4 sequences (both alleles, both
    strands) in batches of `batch_size` sequences, log P summed over the scored positions."""
    rows = [r for w in windows for r in window_rows(w)]
    sums = np.zeros(len(rows), dtype=np.float64)
    order = np.argsort([r.inputs.shape[0] for r in rows], kind="stable")  # less padding per batch
    with torch.inference_mode():
        for b0 in range(0, len(rows), batch_size):
            idx = order[b0: b0 + batch_size]
            inputs, labels, mask = pad_rows([rows[i] for i in idx])
            out = score_batch(model, torch.from_numpy(inputs).to(device), torch.from_numpy(labels).to(device),
                              precision=precision)
            logp = out["log_prob"].double() * torch.from_numpy(mask).to(device)
            sums[idx] = logp.sum(-1).cpu().numpy()
    return combine(sums)


class VariantScorer:
    """Scores chunks of records with one model replica. `payload`: see score.scorer.load_payload."""

    def __init__(self, payload: Any, *, flank: int, max_allele: int, batch_size: int, device: str = "cpu",
                 threads: int | None = None, precision: str = "fp32"):
        if threads is not None:
            torch.set_num_threads(threads)
        self.model = load_payload(payload, device)
        self.flank, self.max_allele, self.batch_size = flank, max_allele, batch_size
        self.device = torch.device(device)
        self.precision = precision

    def score_records(self, records: Sequence[dict[str, Any]], fetch: Fetch,
                      lengths: dict[str, int]) -> tuple[list[VariantRow], float]:
        """Rows of `records` with scores; and the seconds spent in the model."""
        rows = expand(records)
        for row in rows:
            prepare(row, fetch, lengths[row.contig], self.flank, self.max_allele)
        todo = [r for r in rows if r.window is not None]
        t0 = time.perf_counter()
        if todo:
            fwd, rc, mean = score_windows(self.model, [r.window for r in todo], batch_size=self.batch_size,
                                          device=self.device, precision=self.precision)
            for r, f, b, m in zip(todo, fwd, rc, mean):
                r.score_fwd, r.score_rc, r.score = float(f), float(b), float(m)
        return rows, time.perf_counter() - t0
