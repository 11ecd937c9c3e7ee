"""Alleles of a VCF record: which ALTs can be scored, and one canonical form of each edit.

Pure Python, no torch and no Ray. Coordinates are 0-based, end-exclusive.

An ALT is scored when it is a sequence of A, C, G, T (any case) that differs from REF. Others are
kept as rows with a ``reason`` and no score, never dropped:

- ``missing_alt``: ``.`` (no ALT), ``star``: ``*`` (an upstream deletion overlaps the site),
- ``symbolic``: ``<DEL>``, ``<INS>``, ``<*>``, ... , ``breakend``: ``]chr:pos]N``, ``N[chr:pos[``,
  ``.A``, ``A.`` (VCF 4.x section 5.4),
- ``ambiguous_base``: REF or ALT holds N or another IUPAC code,
- ``no_change``: ALT equals REF,
- ``ref_mismatch``: REF differs from the reference FASTA (set by `check_ref`, see there),
- ``allele_too_long``: the edit does not fit the window (`window.max_allele`).

Normalisation (`normalize`) gives every representation of the same haplotype one edit: the
shared suffix, then the shared prefix of REF and ALT are trimmed (leaving possibly empty
alleles), then a pure insertion or deletion is shifted left while the base before it equals its
last base (Tan, Abecasis & Kang 2015, "Unified representation of genetic variants"). An edit
replaces the reference bases ``[start, end)`` by ``alt``; two VCF lines describe the same
haplotype exactly when they give the same edit, so they get the same window and the same score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hyena_platform.span import Span

SKIP_REASONS = ("missing_alt", "star", "symbolic", "breakend", "ambiguous_base", "no_change",
                "ref_mismatch", "allele_too_long")
_BREAKEND = re.compile(r"[\[\]]|^\.[A-Za-z]+$|^[A-Za-z]+\.$")
_ACGT = re.compile(r"^[ACGTacgt]+$")


def alt_reason(ref: str, alt: str | None) -> str | None:
    """Why `alt` cannot be scored against `ref`, or None when it can (see the module docstring)."""
    if alt is None or alt in ("", "."):
        return "missing_alt"
    if alt == "*":
        return "star"
    if alt.startswith("<") and alt.endswith(">"):
        return "symbolic"
    if _BREAKEND.search(alt):
        return "breakend"
    if not _ACGT.match(alt) or not _ACGT.match(ref):
        return "ambiguous_base"
    if alt.upper() == ref.upper():
        return "no_change"
    return None


def check_ref(ref: str, reference: str) -> bool:
    """REF against the FASTA's bases at its position, ignoring case. An ``N`` in REF matches any
    base (VCF 4.x: N is an unknown base); IUPAC codes in the FASTA match only themselves."""
    if len(ref) != len(reference):
        return False
    return all(a == b or a == "N" for a, b in zip(ref.upper(), reference.upper()))


@dataclass(frozen=True)
class Edit(Span):
    """The reference bases ``[start, end)`` replaced by `alt` (uppercase; either may be empty)."""

    start: int
    end: int
    alt: str

    def vcf(self, reference: str, offset: int) -> tuple[int, str, str]:
        """The edit as a VCF allele pair (1-based POS, REF, ALT), anchored on the base before an
        indel (after it at a contig's first base). `reference` holds bases from `offset` on and
        must cover ``start - 1`` (or ``end`` at a contig's start)."""
        ref = reference[self.start - offset: self.end - offset].upper()
        if ref and self.alt:
            return self.start + 1, ref, self.alt
        if self.start > 0:
            base = reference[self.start - 1 - offset].upper()
            return self.start, base + ref, base + self.alt
        base = reference[self.end - offset].upper()
        return 1, ref + base, self.alt + base


class NeedMoreContext(Exception):
    """`normalize` shifted an indel to the first base it was given; call again with more."""


def normalize(pos: int, ref: str, alt: str, reference: str, offset: int) -> Edit:
    """The canonical edit of REF -> ALT at 0-based `pos` (see the module docstring).

    `reference` holds the contig's bases from `offset` on (any case) and must cover ``[pos,
    pos + len(ref))``; a left shift that reaches `offset` > 0 raises NeedMoreContext.
    """
    ref, alt = ref.upper(), alt.upper()
    while ref and alt and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    lead = 0
    while lead < len(ref) and lead < len(alt) and ref[lead] == alt[lead]:
        lead += 1
    start, ref, alt = pos + lead, ref[lead:], alt[lead:]
    if ref and alt:
        return Edit(start, start + len(ref), alt)
    moving = ref or alt  # the inserted or deleted bases, rotated as the edit moves left
    while start > 0:
        if start - 1 < offset:
            raise NeedMoreContext(start)
        before = reference[start - 1 - offset].upper()
        if before != moving[-1]:
            break
        moving = before + moving[:-1]
        start -= 1
    if ref:
        return Edit(start, start + len(moving), "")
    return Edit(start, start, moving)
