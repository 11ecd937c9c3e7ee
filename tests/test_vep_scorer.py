"""Variant scores with a real (tiny, random) model on the real reference, no Ray.

Each score is checked against a direct computation that shares no code with the scorer: the
log-likelihood of each whole haplotype string (pyfaidx + the tokenizer + one forward pass), so
that the windowing, the masks, the padding and the strands are all under test.
"""

from __future__ import annotations

from pathlib import Path

import pyfaidx
import pytest
import torch

import hyena
from hyena.tokenizer import SEP, Tokenizer
from hyena_platform.vep.reference import ReferenceFetcher
from hyena_platform.vep.scorer import VariantScorer, score_windows

REPO = Path(__file__).resolve().parents[1]
FLANK, MAX_ALLELE = 40, 16
CHRII = 1_072_315
TOK = Tokenizer()
RC = str.maketrans("ACGTacgt", "TGCAtgca")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2, l_max=2 * FLANK + MAX_ALLELE + 2)).eval()


@pytest.fixture(scope="module")
def chrii(bundled_genome) -> str:
    return str(pyfaidx.Fasta(str(bundled_genome))["chrII"][:]).upper()


@pytest.fixture(scope="module")
def scorer(model):
    return VariantScorer(model, flank=FLANK, max_allele=MAX_ALLELE, batch_size=64, threads=1)


@pytest.fixture(scope="module")
def fetch(bundled_genome):
    return ReferenceFetcher({"chrII": str(bundled_genome)}, {"chrII": CHRII})


def loglik(model, seq: str, start_token: bool) -> float:
    """Sum of log P of every predicted base of `seq` (all of them after [SEP], else all but the first)."""
    ids = torch.tensor(([SEP] if start_token else []) + TOK.encode(seq).tolist())[None]
    with torch.inference_mode():
        logp = torch.log_softmax(model(ids[:, :-1]).logits.double(), -1)
    return float(logp.gather(-1, ids[:, 1:, None]).sum())


def direct(model, genome: str, pos: int, ref: str, alt: str, flank: int = FLANK) -> tuple[float, float]:
    """(score_fwd, score_rc) of a left-aligned, trimmed VCF-style edit at 1-based `pos`, by the
    rule's definition: log P(alt_hap) - log P(ref_hap) on each strand."""
    s, e = pos - 1, pos - 1 + len(ref)
    lo, hi = max(0, s - flank), min(len(genome), e + flank)
    ref_hap, alt_hap = genome[lo:hi], genome[lo:s] + alt + genome[e:hi]
    fwd = loglik(model, alt_hap, lo == 0) - loglik(model, ref_hap, lo == 0)
    rc = (loglik(model, alt_hap.translate(RC)[::-1], hi == len(genome))
          - loglik(model, ref_hap.translate(RC)[::-1], hi == len(genome)))
    return fwd, rc


def record(i, pos, ref, alts, contig="chrII"):
    return {"record": i, "chrom": contig, "contig": contig, "pos": pos, "id": f"r{i}", "ref": ref,
            "alts": alts, "info": {}}


CASES = [  # real variants of tests/assets/vep (POS, REF, ALT), and the contig edges
    (94783, "A", "G"), (973260, "CGA", "GAC"), (969851, "G", "GT"), (986610, "TAA", "T"),
    (1050698, "TTTGACCAG", "T"), (1, "T", "C"), (CHRII, "T", "C"), (3, "G", "GAT"),
]


def test_scores_equal_the_direct_haplotype_log_likelihoods(model, chrii, scorer, fetch):
    records = [record(i, p, r, [a]) for i, (p, r, a) in enumerate(CASES)]
    rows, _ = scorer.score_records(records, fetch, {"chrII": CHRII})
    for row, (p, r, a) in zip(rows, CASES):
        assert row.reason is None and row.ref_match
        trimmed = row.norm  # the normalised VCF-style edit: what the window is built around
        fwd, rc = direct(model, chrii, *trimmed)
        assert row.score_fwd == pytest.approx(fwd, abs=1e-3), (p, r, a)
        assert row.score_rc == pytest.approx(rc, abs=1e-3), (p, r, a)
        assert row.score == pytest.approx((fwd + rc) / 2, abs=1e-3)
    assert (rows[5].window.left, rows[5].window.at_start) == (0, True)  # first base of chrII
    assert (rows[6].window.right, rows[6].window.at_end) == (0, True)  # last base of chrII


def test_batching_and_padding_do_not_change_scores(model, chrii, scorer, fetch):
    records = [record(i, p, r, [a]) for i, (p, r, a) in enumerate(CASES)]
    rows, _ = scorer.score_records(records, fetch, {"chrII": CHRII})
    windows = [r.window for r in rows]
    one = score_windows(model, windows, batch_size=1)
    many = score_windows(model, windows, batch_size=7)  # mixed lengths in one batch
    for a, b in zip(one, many):
        assert torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-5)


def test_equivalent_indel_representations_get_one_score(chrii, scorer, fetch):
    """One T deleted from a real T run of chrII, written at every base of the run (left-aligned
    or not), and one T inserted likewise: each set gets one score."""
    start = chrii.index("ATTTTTG", 960_000) + 1  # a T run of chrII (0-based start)
    run = range(start, start + 5)
    dels = [record(i, p, chrii[p - 1:p + 1], [chrii[p - 1]]) for i, p in enumerate(run, 1)]  # VCF POS p
    ins = [record(10 + i, p, chrii[p - 1], [chrii[p - 1] + "T"]) for i, p in enumerate(run, 1)]
    rows, _ = scorer.score_records(dels + ins, fetch, {"chrII": CHRII})
    assert len({(r.norm, r.score) for r in rows[:5]}) == 1 and rows[0].norm == (start, "AT", "A")
    assert len({(r.norm, r.score) for r in rows[5:]}) == 1 and rows[5].norm == (start, "A", "AT")
    assert rows[0].score != rows[5].score


def test_multiallelic_split_skips_and_ref_mismatch(chrii, scorer, fetch):
    records = [record(0, 95385, "TA", ["T", "TGA", "<DEL>", "*"]), record(1, 94783, "C", ["G"]),
               record(2, 94783, "A", None), record(3, 94783, "A", ["A" * 40])]
    rows, _ = scorer.score_records(records, fetch, {"chrII": CHRII})
    assert [(r.record, r.alt_index, r.alt, r.reason) for r in rows] == [
        (0, 0, "T", None), (0, 1, "TGA", None), (0, 2, "<DEL>", "symbolic"), (0, 3, "*", "star"),
        (1, 0, "G", "ref_mismatch"), (2, 0, None, "missing_alt"), (3, 0, "A" * 40, "allele_too_long")]
    assert [r.ref_match for r in rows] == [True] * 4 + [False, True, True]
    assert rows[1].norm == (95385, "T", "TG")  # TA -> TGA is an insertion of G after T
    assert all(r.score is None for r in rows[2:]) and rows[0].score != rows[1].score
