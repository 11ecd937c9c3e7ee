"""Variant effect benchmark: batched scoring against a per-variant loop, in the same run.

    python bench/bench_vep.py                 # tiny-1k, the asset's 79 scorable variants x 4
    python bench/bench_vep.py --repeat 2 --rounds 2 --no-ray

A random tiny-1k (the released geometry: d_model 128, 2 layers, l_max 1026; flank 480, so each
haplotype is ~960 bases) scores the real variants of tests/assets/vep against the bundled
N16961 genome (the records repeated `--repeat` times), three ways:

- baseline: a per-variant loop, as in the GPN/Evo 2 notebooks: for each variant, its two
  haplotypes, then their reverse complements, one forward pass each (batch 1);
- batched, no Ray: `VariantScorer.score_records` in this process (both alleles and strands of
  many variants per forward pass, `--batch` sequences per call);
- the pipeline: `run_vep` on a local Ray (two replicas of one thread, one writer), end to end.

Both in-process ways run on one torch thread, in alternation for `--rounds` rounds; throughput is
variants per CPU-second of this process (wall time is noisy on a shared machine) and per wall
second. Scores must agree to 1e-4 (float32 sums of ~1,000 log-probabilities).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import hyena
from hyena.tokenizer import SEP

REPO = Path(__file__).resolve().parents[1]
VCF = REPO / "tests/assets/vep/o395_vs_n16961_chrII.vcf"
MAX_ALLELE = 64


def records(repeat: int) -> list[dict]:
    from hyena_platform.vep.vcf import iter_records

    recs = [dict(r, contig=r["chrom"]) for r in iter_records(str(VCF), {})]
    return [dict(r, record=i) for i, r in enumerate(recs * repeat)]


def baseline(model, rows, device: str = "cpu") -> tuple[np.ndarray, float, float]:
    """One forward pass per haplotype and strand (batch 1); the windows are the library's."""
    from hyena_platform.vep.haplotypes import window_rows

    t0, c0 = time.perf_counter(), time.process_time()
    scores = []
    with torch.inference_mode():
        for r in rows:
            sums = []
            for row in window_rows(r.window):
                logits = model(torch.from_numpy(row.inputs).to(device)[None]).logits
                logp = torch.log_softmax(logits.float(), -1)[0]
                lp = logp.gather(-1, torch.from_numpy(row.labels).to(device)[:, None])[:, 0]
                sums.append(float(lp[row.first:].double().sum()))
            fwd, rc = sums[1] - sums[0], sums[3] - sums[2]
            scores.append((fwd + rc) / 2)
    return np.array(scores), time.perf_counter() - t0, time.process_time() - c0


def batched(scorer, recs, fetch, lengths) -> tuple[np.ndarray, float, float, list]:
    t0, c0 = time.perf_counter(), time.process_time()
    rows, _ = scorer.score_records(recs, fetch, lengths)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    scored = [r for r in rows if r.window is not None]
    return np.array([r.score for r in scored]), wall, cpu, scored


def pipeline(model_dir: Path, out: Path, vcf: Path, batch: int) -> tuple[int, float, dict]:
    from hyena_platform.vep import job_from_mapping, run_vep

    job = job_from_mapping({
        "model": {"uri": str(model_dir)}, "vcf": {"path": str(vcf)}, "window": {"max_allele": MAX_ALLELE},
        "compute": {"replicas": 2, "cpus_per_replica": 0.75, "threads_per_replica": 1, "batch_size": batch,
                    "writers": 1, "cpus_per_writer": 0.25},
        "output": {"path": str(out), "chunk_size": 64}, "tracking": {"log_run": False}})
    t0 = time.perf_counter()
    result = run_vep(job, ray_progress=False)
    return result.scored, time.perf_counter() - t0, result.timings


def repeated_vcf(tmp: Path, repeat: int) -> Path:
    lines = VCF.read_text().splitlines(keepends=True)
    header = [x for x in lines if x.startswith("#")]
    body = [x for x in lines if not x.startswith("#")]
    path = tmp / "repeated.vcf"
    path.write_text("".join(header + body * repeat))  # unsorted when repeated: no tabix index
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="sequences per forward pass (4 per variant)")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--device", default="cpu", help="cuda: the in-process ways on a GPU (CPU time is then not the cost)")
    args = ap.parse_args()

    from hyena_platform.genome_assets import BUNDLED_GENOME
    from hyena_platform.vep.reference import ReferenceFetcher
    from hyena_platform.vep.scorer import VariantScorer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig.variant("tiny-1k")).eval().to(args.device)
    flank = (model.config.l_max - 2 - MAX_ALLELE) // 2
    lengths = {"chrII": 1_072_315}
    fetch = ReferenceFetcher({"chrII": str(BUNDLED_GENOME)}, lengths)
    scorer = VariantScorer(model, flank=flank, max_allele=MAX_ALLELE, batch_size=args.batch, device=args.device)
    recs = records(args.repeat)
    _, _, _, rows = batched(scorer, recs[:8], fetch, lengths)  # warm-up: first calls allocate
    baseline(model, rows[:2], args.device)
    print(f"tiny-1k (random), flank {flank}, {len(recs)} records, batch {args.batch} sequences, 1 thread, SEP={SEP}")
    print(f"{'round':>5s} {'way':>10s} {'variants':>8s} {'wall s':>8s} {'CPU s':>8s} {'var/s wall':>10s} {'var/CPU-s':>10s}")
    ratios_cpu, ratios_wall = [], []
    for rnd in range(args.rounds):
        b_scores, b_wall, b_cpu, rows = batched(scorer, recs, fetch, lengths)
        l_scores, l_wall, l_cpu = baseline(model, rows, args.device)
        n = len(rows)
        diff = float(np.abs(b_scores - l_scores).max())
        assert diff < 1e-4, f"scores differ by {diff}"
        for way, wall, cpu in (("batched", b_wall, b_cpu), ("loop", l_wall, l_cpu)):
            print(f"{rnd:5d} {way:>10s} {n:8d} {wall:8.2f} {cpu:8.2f} {n / wall:10.1f} {n / cpu:10.1f}")
        ratios_cpu.append(l_cpu / b_cpu)
        ratios_wall.append(l_wall / b_wall)
        print(f"      batched / loop: {l_cpu / b_cpu:.2f}x per CPU-s, {l_wall / b_wall:.2f}x wall; "
              f"max |score difference| {diff:.1e}")
    print(f"median batched / loop: {np.median(ratios_cpu):.2f}x per CPU-s, {np.median(ratios_wall):.2f}x wall")
    if not args.no_ray:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = model.cpu().save_pretrained(Path(tmp) / "tiny-1k")
            scored, wall, t = pipeline(model_dir, Path(tmp) / "out", repeated_vcf(Path(tmp), args.repeat), args.batch)
            print(f"pipeline (Ray, 2 replicas x 1 thread): {scored} variants in {wall:.1f} s end to end "
                  f"({scored / wall:.1f} variants/s; Ray start and first chunk {t['first_chunk_s']:.1f} s); "
                  f"replica model time {t['model_s']:.1f} s in total = {scored / t['model_s']:.1f} variants per "
                  f"replica-second")


if __name__ == "__main__":
    main()
