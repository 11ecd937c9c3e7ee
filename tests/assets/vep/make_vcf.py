"""Recreate `o395_vs_n16961_chrII.vcf` from minimap2 alignments (see README.md here).

    python tests/assets/vep/make_vcf.py REF.fa O395.paf INABA.paf > OUT.vcf

REF.fa is the bundled N16961 genome, decompressed; the PAF files come from
``minimap2 -cx asm10 --cs REF.fa STRAIN.fa``. Differences of the alignments that cover
``chrII`` within REGIONS become VCF records exactly as minimap2 placed them (not left-aligned):
runs of adjacent mismatches are one MNV record, an insertion or deletion is anchored on the base
before it (the base after it at a contig's first base). Sites where the two strains carry
different alleles at the same position and REF become one multi-allelic record. The hand-added
records (symbolic, breakend, `*`, a REF mismatch) are appended by `HAND_MADE`.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

CHROM = "chrII"
# 0-based, end-exclusive. 95,383 and 199,302 are the only sites of chrII where two strains carry
# different alleles (multi-allelic records); the last two regions are rich in indels.
REGIONS = [(94_500, 96_500), (198_500, 200_000), (960_000, 1_000_000), (1_040_000, 1_072_315)]
MAX_ALLELE = 50  # longer events (a few structural differences) are left out
CS_OP = re.compile(r"(:[0-9]+|\*[a-z][a-z]|[+\-][a-z]+)")


def read_fasta(path: str) -> dict[str, str]:
    from Bio import SeqIO  # Biopython: a dependency already

    return {record.id: str(record.seq) for record in SeqIO.parse(path, "fasta")}


def alignments(paf: str):
    with open(paf) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if cols[5] != CHROM:
                continue
            cs = next(c[5:] for c in cols[12:] if c.startswith("cs:Z:"))
            yield int(cols[7]), cs


def variants(ref: str, start: int, cs: str):
    """(pos0, ref_allele, alt_allele) in reference coordinates, minimap2's placement."""
    pos, subst = start, None
    for op in CS_OP.findall(cs):
        if op[0] != "*" and subst is not None:
            yield subst
            subst = None
        if op[0] == ":":
            pos += int(op[1:])
        elif op[0] == "*":
            r, a = op[1].upper(), op[2].upper()
            if subst is not None and subst[0] + len(subst[1]) == pos:
                subst = (subst[0], subst[1] + r, subst[2] + a)
            else:
                subst = (pos, r, a)
            pos += 1
        elif op[0] == "+":
            yield anchored(ref, pos, "", op[1:].upper())
        else:
            yield anchored(ref, pos, op[1:].upper(), "")
            pos += len(op) - 1
    if subst is not None:
        yield subst


def anchored(ref: str, pos: int, deleted: str, inserted: str):
    if pos == 0:  # VCF: an event at a contig's first base is anchored on the base after it
        after = ref[len(deleted)].upper()
        return 0, deleted + after, inserted + after
    before = ref[pos - 1].upper()
    return pos - 1, before + deleted, before + inserted


def merge(pos: int, alleles: list[tuple[str, str, str]]):
    """One record per position: REF is the longest REF, each ALT extended by the rest of it."""
    longest = max((r for r, _, _ in alleles), key=len)
    carriers: dict[str, set[str]] = defaultdict(set)
    for r, a, strain in alleles:
        carriers[a + longest[len(r):]].add(strain)
    return pos, longest, sorted(carriers), carriers


def in_regions(pos: int) -> bool:
    return any(s <= pos < e for s, e in REGIONS)


STRAINS = ("O395", "Inaba", "H1")  # the PAF files, in this order
HAND_MADE = [  # (pos0, REF, ALT, ID): not from the alignments; see README.md
    (0, None, "flip", "hand_contig_start"),  # SNVs at chrII's first and last base
    (1_072_314, None, "flip", "hand_contig_end"),
    (1_050_000, None, "<DEL>", "hand_symbolic"),
    (1_050_100, None, "]chrI:1000]N", "hand_breakend"),
    (1_050_200, None, "*", "hand_star"),
    (1_050_300, None, ".", "hand_missing_alt"),
    (1_050_400, "mismatch", "A", "hand_ref_mismatch"),
]


def main(ref_path: str, *pafs: str) -> None:
    ref = read_fasta(ref_path)[CHROM]
    sites: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for paf, strain in zip(pafs, STRAINS):
        for start, cs in alignments(paf):
            for pos, r, a in variants(ref, start, cs):
                if in_regions(pos):
                    sites[pos].append((r, a, strain))
    records = [merge(pos, alleles) for pos, alleles in sites.items()
               if max(len(x) for r, a, _ in alleles for x in (r, a)) <= MAX_ALLELE]
    for pos, r, a, ident in HAND_MADE:
        base = ref[pos].upper()
        if r == "mismatch":
            r = "C" if base != "C" else "G"
        if a == "flip":
            a = {"A": "G", "C": "T", "G": "A", "T": "C"}[base]
        records.append((pos, r or base, [a], {a: {ident}}))
    records.sort(key=lambda rec: rec[0])
    out = sys.stdout
    out.write("##fileformat=VCFv4.2\n")
    out.write(f"##contig=<ID={CHROM},length={len(ref)},assembly=AE003853.1>\n")
    out.write('##INFO=<ID=STRAINS,Number=.,Type=String,Description="Strains carrying each ALT, | separated">\n')
    out.write('##INFO=<ID=SRC,Number=1,Type=String,Description="minimap2 (alignment) or hand (added by hand)">\n')
    out.write("##source=tests/assets/vep/make_vcf.py (minimap2 2.24 -cx asm10 --cs)\n")
    out.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    for n, (pos, r, alts, carriers) in enumerate(records):
        hand = any(s.startswith("hand_") for c in carriers.values() for s in c)
        ident = next(iter(next(iter(carriers.values())))) if hand else f"v{n + 1}"
        strains = ",".join("|".join(sorted(carriers[a])) for a in alts)
        info = f"SRC={'hand' if hand else 'minimap2'}" + ("" if hand else f";STRAINS={strains}")
        out.write(f"{CHROM}\t{pos + 1}\t{ident}\t{r}\t{','.join(alts)}\t.\tPASS\t{info}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
