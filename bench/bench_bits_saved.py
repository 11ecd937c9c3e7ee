"""Bits-saved benchmark: our k-mer chain (counts, per-base log2 P) against a plain-Python chain.

    python bench/bench_bits_saved.py                 # chain: fit on chrI, per-base log2 P on chrII
    python bench/bench_bits_saved.py --pipeline      # also the scoring run with and without bits_saved

The `bits_saved` scoring column (hyena_platform.score.kmer) is log2 P_model(base) minus log2 P
of an order-k Markov chain counted on the records that are not scored. Its cost is the chain:
counting orders 0..k over the training records, and one log2 P per scored base.

1. Chain, bundled V. cholerae genome, order 5 (the order the demo's held-out choice picks),
   additive smoothing alpha = 1 over A C G T N: ours (`MarkovBaselines.fit` + `per_base_log2`,
   vectorised numpy) against the way a notebook would write it: `collections.Counter` over the
   k-mer substrings of the chromosome string, then a Python loop over the scored bases with
   dictionary look-ups (backing off to the order the chromosome's start allows). Both are timed in
   CPU seconds in this process; the two chains' per-base log2 P must agree to 1e-9.
2. (`--pipeline`) The price in a scoring run: `hyena score` of chrII:0-262144 with a random
   tiny-1k on a local Ray (2 replicas), with and without `baseline.bits_saved`, alternated, wall
   seconds. The difference is the chain's fit on chrI on the driver plus the column.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyfaidx

from hyena.tokenizer import Tokenizer
from hyena_platform.genome_assets import BUNDLED_GENOME
from hyena_platform.train.baselines import MarkovBaselines, per_base_log2

ORDER = 5
ALPHABET = "ACGTN"


def cpu_timed(fn, *args):
    c0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - c0


# ---------------------------------------------------------------------------- plain Python


def python_fit(seq: str, order: int) -> list[Counter]:
    """counts[j][(context, base)] for orders 0..order (contexts of j bases)."""
    return [Counter((seq[i - j:i], seq[i]) for i in range(j, len(seq))) for j in range(order + 1)]


def python_log2(counts: list[Counter], seq: str, order: int) -> list[float]:
    """log2 p(seq[t] | up to `order` bases before t), Laplace alpha = 1 over A C G T N."""
    totals = []
    for j, c in enumerate(counts):
        per_context: Counter = Counter()
        for (ctx, _), n in c.items():
            per_context[ctx] += n
        totals.append(per_context)
    out = []
    for t in range(len(seq)):
        j = min(order, t)
        ctx = seq[t - j:t]
        out.append(math.log2((counts[j][(ctx, seq[t])] + 1) / (totals[j][ctx] + len(ALPHABET))))
    return out


# ---------------------------------------------------------------------------- ours


def ours_fit(tokens: np.ndarray, order: int) -> list[np.ndarray]:
    chain = MarkovBaselines.fit([tokens], order)
    return [chain.log2_probs(j) for j in range(order + 1)]


def chain_bench(fasta: str) -> dict:
    genome = pyfaidx.Fasta(fasta, sequence_always_upper=True)
    ambiguous_to_n = str.maketrans("RYSWKMBDHV", "N" * 10)  # as the tokenizer does: IUPAC codes are N
    train, test = (str(genome[c]).translate(ambiguous_to_n) for c in ("chrI", "chrII"))
    assert set(train) | set(test) <= set(ALPHABET)
    tok = Tokenizer()
    train_ids = np.asarray(tok.encode(train, add_special_tokens=False))
    test_ids = np.asarray(tok.encode(test, add_special_tokens=False))

    tables, ours_fit_s = cpu_timed(ours_fit, train_ids, ORDER)
    ours_bits, ours_score_s = cpu_timed(per_base_log2, tables, test_ids, ORDER)
    counts, py_fit_s = cpu_timed(python_fit, train, ORDER)
    py_bits, py_score_s = cpu_timed(python_log2, counts, test, ORDER)

    diff = float(np.max(np.abs(np.asarray(py_bits) - ours_bits)))
    assert diff < 1e-9, f"the two chains disagree by {diff}"
    return {"order": ORDER, "train_bases": len(train), "scored_bases": len(test),
            "ours": {"fit_cpu_s": ours_fit_s, "score_cpu_s": ours_score_s},
            "python": {"fit_cpu_s": py_fit_s, "score_cpu_s": py_score_s},
            "mean_log2p": float(np.mean(ours_bits)), "max_abs_diff": diff}


def print_chain(r: dict) -> None:
    o, p = r["ours"], r["python"]
    print(f"order-{r['order']} chain: counted on {r['train_bases']:,} bases (chrI), "
          f"log2 P of {r['scored_bases']:,} bases (chrII); max |difference| {r['max_abs_diff']:.1e}")
    print(f"{'step':22s} {'plain Python CPU s':>18s} {'ours CPU s':>11s} {'ratio':>8s}")
    for step, key, n in (("count orders 0..5", "fit_cpu_s", r["train_bases"]),
                         ("per-base log2 P", "score_cpu_s", r["scored_bases"])):
        print(f"{step:22s} {p[key]:18.2f} {o[key]:11.3f} {p[key] / o[key]:7.0f}x   "
              f"(ours {n / o[key] / 1e6:,.1f} M bases per CPU-s)")
    total_p, total_o = p["fit_cpu_s"] + p["score_cpu_s"], o["fit_cpu_s"] + o["score_cpu_s"]
    print(f"{'both':22s} {total_p:18.2f} {total_o:11.3f} {total_p / total_o:7.0f}x", flush=True)


# ---------------------------------------------------------------------------- the scoring run


def pipeline_bench(fasta: str, rounds: int) -> dict:
    import ray

    from bench_score import tiny_model
    from hyena_platform.score.pipeline import run_score

    region = "chrII:0-262144"
    walls: dict[str, list[float]] = {"plain": [], "bits_saved": []}
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-bits-") as tmp:
            tmp = Path(tmp)
            model_dir = tiny_model(tmp)
            for r in range(rounds):
                for name in ("plain", "bits_saved") if r % 2 == 0 else ("bits_saved", "plain"):
                    spec = score_job(model_dir, tmp / f"{name}-{r}", region, name == "bits_saved", fasta)
                    t0 = time.perf_counter()
                    run_score(spec)
                    walls[name].append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    best = {k: min(v) for k, v in walls.items()}
    return {"region": region, "rounds": rounds, "wall_s": walls, "best_wall_s": best,
            "overhead": best["bits_saved"] / best["plain"] - 1.0}


def score_job(model_dir: Path, out: Path, region: str, bits_saved: bool, fasta: str):
    from hyena_platform.score import job_from_mapping

    return job_from_mapping({
        "model": {"uri": str(model_dir)},
        "data": {"fasta": [fasta]},
        "target": {"regions": [region]},
        "window": {"size": 1024, "stride": 512},
        "compute": {"replicas": 2, "cpus_per_replica": 0.75, "batch_size": 8, "writers": 1,
                    "cpus_per_writer": 0.25},
        "output": {"path": str(out), "chunk_size": 65536, "track": None, "bin_size": 0},
        "baseline": {"bits_saved": bits_saved, "order": ORDER, "fit_on": ["chrI"], "track": False},
        "tracking": {"log_run": False},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", action="store_true", help="also time a scoring run with and without bits_saved")
    parser.add_argument("--rounds", type=int, default=2, help="--pipeline: alternated rounds")
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    args = parser.parse_args()
    fasta = str(BUNDLED_GENOME)
    print(f"bundled genome {fasta}; load average {os.getloadavg()[0]:.1f}\n")
    results = {"chain": chain_bench(fasta)}
    print_chain(results["chain"])
    if args.pipeline:
        r = results["pipeline"] = pipeline_bench(fasta, args.rounds)
        b = r["best_wall_s"]
        print(f"\nscoring {r['region']} (tiny-1k, 2 replicas), best of {r['rounds']} alternated: "
              f"{b['plain']:.1f} s plain, {b['bits_saved']:.1f} s with bits_saved: "
              f"{100 * r['overhead']:+.1f}% wall", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
