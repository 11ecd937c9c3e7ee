"""Alleles and the window rule of variant effects: pure functions, microseconds each.

Normalisation is checked on the real reference (the bundled N16961 chrII) around a real
homopolymer, and against the rule's definition: every representation of one haplotype gives one
edit, and the edit rebuilt into a haplotype is the VCF line's haplotype.
"""

from __future__ import annotations

import numpy as np
import pytest

from hyena.tokenizer import SEP, Tokenizer, reverse_complement_ids
from hyena_platform.vep.alleles import Edit, NeedMoreContext, alt_reason, check_ref, normalize
from hyena_platform.vep.haplotypes import build_window, combine, pad_rows, strand_row, window_rows

TOK = Tokenizer()


@pytest.mark.parametrize("ref,alt,reason", [
    ("A", "G", None), ("ac", "GT", None), ("A", "ATT", None), ("ATT", "A", None),
    ("A", None, "missing_alt"), ("A", ".", "missing_alt"), ("A", "*", "star"),
    ("A", "<DEL>", "symbolic"), ("A", "<INS:ME:ALU>", "symbolic"), ("A", "<*>", "symbolic"),
    ("A", "]chrI:1000]N", "breakend"), ("A", "G[chr2:321682[", "breakend"), ("A", ".A", "breakend"),
    ("A", "G.", "breakend"), ("A", "N", "ambiguous_base"), ("N", "A", "ambiguous_base"),
    ("A", "R", "ambiguous_base"), ("A", "a", "no_change"),
])
def test_alt_reason(ref, alt, reason):
    assert alt_reason(ref, alt) == reason


def test_check_ref_ignores_case_and_accepts_vcf_n():
    assert check_ref("acg", "ACG") and check_ref("ANG", "ACG")
    assert not check_ref("ACG", "ACT") and not check_ref("AC", "ACG")
    assert not check_ref("A", "N")  # an N in the FASTA matches only an N in REF


def haplotype(reference: str, pos: int, ref: str, alt: str) -> str:
    return reference[:pos] + alt + reference[pos + len(ref):]


def apply(reference: str, e: Edit) -> str:
    return reference[:e.start] + e.alt + reference[e.end:]


REPEAT = "GATTACA" + "CAGCAGCAG" + "TTTTT" + "GCGT"  # 0-based: CAG x3 at 7..16, T x5 at 16..21


@pytest.mark.parametrize("pos,ref,alt,edit", [
    (2, "T", "C", Edit(2, 3, "C")),  # SNV
    (1, "ATT", "ACT", Edit(2, 3, "C")),  # a padded SNV
    (2, "TT", "GC", Edit(2, 4, "GC")),  # MNV
    (2, "TTA", "GA", Edit(2, 4, "G")),  # complex: trimmed, not shifted
    (18, "TT", "T", Edit(16, 17, "")),  # one T of the run at 16..21 deleted: the run's first T
    (20, "T", "TT", Edit(16, 16, "T")),  # one T inserted: before the run's first T
])
def test_normalize_examples(pos, ref, alt, edit):
    got = normalize(pos, ref, alt, REPEAT, 0)
    assert got == edit
    assert apply(REPEAT, got) == haplotype(REPEAT, pos, ref, alt)


def test_deletion_and_insertion_in_repeats_left_align_to_one_edit():
    # One T deleted from TTTTT, written at each possible place: one edit at the run's start.
    edits = {normalize(p - 1, REPEAT[p - 1:p + 1], REPEAT[p - 1], REPEAT, 0) for p in range(16, 21)}
    assert edits == {Edit(16, 17, "")}
    # One CAG unit deleted, anchored at each base of the repeat.
    assert {normalize(p, REPEAT[p:p + 4], REPEAT[p], REPEAT, 0) for p in range(6, 13)} == {Edit(7, 10, "")}
    # A CAG unit inserted anywhere in the repeat, and a T inserted in the run.
    ins = {normalize(p, REPEAT[p], REPEAT[p] + REPEAT[p + 1:p + 4], REPEAT, 0) for p in range(6, 13)}
    assert ins == {Edit(7, 7, "CAG")}
    assert {normalize(p, REPEAT[p], REPEAT[p] + "T", REPEAT, 0) for p in range(15, 21)} == {Edit(16, 16, "T")}


def test_normalize_is_exact_on_real_reference(bundled_genome):
    """Random indels on the real chrII: the edit rebuilds the same haplotype, and a left-aligned
    edit cannot move further left."""
    import pyfaidx

    seq = str(pyfaidx.Fasta(str(bundled_genome))["chrII"][100_000:110_000]).upper()
    rng = np.random.default_rng(0)
    for _ in range(300):
        pos = int(rng.integers(50, len(seq) - 50))
        k = int(rng.integers(1, 6))
        if rng.random() < 0.5:
            ref, alt = seq[pos:pos + k + 1], seq[pos]
        else:
            ref, alt = seq[pos], seq[pos] + "".join(rng.choice(list("ACGT"), k))
        e = normalize(pos, ref, alt, seq, 0)
        assert apply(seq, e) == haplotype(seq, pos, ref, alt)
        assert e.bases == 0 or e.alt == ""
        assert seq[e.start - 1] != (e.alt or seq[e.start:e.end])[-1]  # cannot shift further left


def test_normalize_asks_for_more_context_and_stops_at_contig_start():
    with pytest.raises(NeedMoreContext):
        normalize(12, "AA", "A", "AAAAAAAAAAAAAAAA", 10)  # reference starts at 10 inside the run
    assert normalize(5, "AA", "A", "AAAAAAAA", 0) == Edit(0, 1, "")


def test_edit_as_vcf():
    assert Edit(2, 3, "C").vcf(REPEAT, 0) == (3, "T", "C")
    assert Edit(16, 17, "").vcf(REPEAT, 0) == (16, "GT", "G")  # anchored on the base before
    assert Edit(16, 16, "T").vcf(REPEAT, 0) == (16, "G", "GT")
    assert Edit(0, 1, "").vcf("AAC", 0) == (1, "AA", "A")  # at the contig start: the base after


# ------------------------------------------------------------------------------------------ windows


SEQ = "GATTACAGGCTTAACCGTAC"  # 20 bases


def test_window_inside_a_contig():
    x = TOK.encode(SEQ)
    w = build_window(x, 0, 10, 11, TOK.encode("A"), 20, 4)  # SNV T -> A at 10
    assert TOK.decode(w.ref) == SEQ[6:15] and TOK.decode(w.alt) == SEQ[6:10] + "A" + SEQ[11:15]
    assert (w.left, w.right, w.at_start, w.at_end) == (4, 4, False, False)
    d = build_window(x[3:], 3, 10, 12, TOK.encode(""), 20, 4)  # deletion of 10..12; tokens from 3
    assert TOK.decode(d.ref) == SEQ[6:16] and TOK.decode(d.alt) == SEQ[6:10] + SEQ[12:16]


def test_window_at_contig_edges_uses_what_exists():
    x = TOK.encode(SEQ)
    w = build_window(x, 0, 1, 2, TOK.encode("G"), 20, 4)
    assert (w.left, w.right, w.at_start, w.at_end) == (1, 4, True, False)
    assert TOK.decode(w.alt) == "GG" + SEQ[2:6]
    e = build_window(x, 0, 19, 20, TOK.encode("A"), 20, 4)
    assert (e.left, e.right, e.at_start, e.at_end) == (4, 0, False, True)
    assert TOK.decode(e.alt) == SEQ[15:19] + "A"


def test_strand_rows_sum_exactly_the_positions_the_variant_can_change():
    hap = TOK.encode(SEQ[6:15])
    inner = strand_row(hap, 4, False)
    assert TOK.decode(inner.inputs) == SEQ[6:14] and TOK.decode(inner.labels) == SEQ[7:15]
    assert TOK.decode(inner.labels[inner.first:]) == SEQ[10:15]  # the edit and everything after
    edge = strand_row(hap, 0, True)
    assert edge.inputs[0] == SEP and edge.first == 0 and TOK.decode(edge.labels) == SEQ[6:15]
    rows = window_rows(build_window(TOK.encode(SEQ), 0, 10, 11, TOK.encode("A"), 20, 4))
    alt = SEQ[6:10] + "A" + SEQ[11:15]
    rc = str.maketrans("ACGT", "TGCA")
    expect = [SEQ[10:15], alt[4:], SEQ[6:11].translate(rc)[::-1], alt[:5].translate(rc)[::-1]]
    assert [TOK.decode(r.labels[r.first:]) for r in rows] == expect
    assert np.array_equal(rows[2].labels, reverse_complement_ids(TOK.encode(SEQ[6:15]))[1:].astype(np.int64))


def test_pad_rows_and_combine():
    rows = [strand_row(TOK.encode("ACGTA"), 2, False), strand_row(TOK.encode("AC"), 0, True)]
    inputs, labels, mask = pad_rows(rows)
    assert inputs.shape == (2, 4) and mask.sum(1).tolist() == [3, 2] and not mask[1, 2:].any()
    fwd, rc, score = combine(np.array([-1.0, -3.0, -2.0, -2.5]))
    assert fwd.tolist() == [-2.0] and rc.tolist() == [-0.5] and score.tolist() == [-1.25]
