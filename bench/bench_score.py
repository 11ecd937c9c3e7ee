"""Scoring benchmark: the Ray pipeline against the straightforward baseline, in the same run.

    python bench/bench_score.py                  # tiny-1k on all of chrII, pipeline vs baseline
    python bench/bench_score.py --bases 262144   # a shorter region (chrII:0-262144)
    python bench/bench_score.py --long           # only the long-window run (large-1m, W = 1,000,000)

Throughput: a random tiny-1k (the released geometry: d_model 128, 2 layers, l_max 1026) scores
the bundled genome's chrII (or its first BASES) with window 1024 and stride 512, three ways:

- baseline: a Python loop over the same windows, one at a time (pyfaidx string -> Tokenizer ->
  forward -> log_softmax -> lists -> one Parquet file per chunk), at torch's default thread
  count or at one thread, whichever is faster on the first chunk;
- batched, no Ray: `ChunkScorer` in this process (batch 8, one thread), to separate the gain of
  batching from the gain of parallel replicas;
- the pipeline: `run_score` on a local Ray (two replicas of one thread, batch 8, one writer).

Outputs are compared (max |difference| of log_prob and entropy; they must agree to 1e-5), and
the time split (read, model, write) is printed for the baseline and the pipeline.

Long window: a fresh process scores chrII:0-1000000 with the large-1m geometry (d_model 256,
8 layers, l_max 1,000,002), window 1,000,000 and batch 1 through the same pipeline (one replica,
two threads): one forward pass over [SEP] + 999,999 bases. It reports the wall time and the
replica's peak resident memory. Several minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import hyena
from hyena.tokenizer import SEP, Tokenizer

W, S, CHUNK = 1024, 512, 65536


def tiny_model(tmp: Path) -> Path:
    torch.manual_seed(0)
    model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig.variant("tiny-1k")).eval()
    return model.save_pretrained(tmp / "tiny-1k")


def job(model_dir: Path, out: Path, region: str, **compute):
    from hyena_platform.score import job_from_mapping

    return job_from_mapping({
        "model": {"uri": str(model_dir)},
        "target": {"regions": [region]},
        "window": {"size": W, "stride": S},
        "compute": {"replicas": 2, "cpus_per_replica": 0.75, "batch_size": 8, "writers": 1,
                    "cpus_per_writer": 0.25, **compute},
        "output": {"path": str(out), "chunk_size": CHUNK, "track": None, "bin_size": 0},
        "tracking": {"log_run": False},
    })


# --------------------------------------------------------------------------------- baseline


def baseline(model, plan, out: Path, threads: int, chunks=None) -> dict:
    """One window at a time, the way a notebook would do it."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyfaidx

    from hyena_platform.score.tiling import tile

    torch.set_num_threads(threads)
    tok = Tokenizer()
    fasta = {}
    t = {"read_s": 0.0, "model_s": 0.0, "write_s": 0.0}
    out.mkdir(parents=True, exist_ok=True)
    t_all, cpu_all = time.perf_counter(), time.process_time()
    for chunk in plan.chunks if chunks is None else chunks:
        fa = fasta.setdefault(chunk.source, pyfaidx.Fasta(chunk.source, as_raw=True))
        pos, ref, lps, ents = [], [], [], []
        for own, end, a in tile(chunk.start, chunk.end, W, S).tolist():
            t0 = time.perf_counter()
            text = fa[chunk.chrom][max(a - 1, 0): end]  # context and the bases to predict
            ids = tok.encode(text).tolist()
            inputs = ([SEP] if a == 0 else []) + ids[:-1]
            labels = ids if a == 0 else ids[1:]
            t1 = time.perf_counter()
            with torch.no_grad():
                logits = model(torch.tensor([inputs])).logits[0].float()
                logp = torch.log_softmax(logits, -1)
                lp = logp[torch.arange(len(labels)), torch.tensor(labels)]
                ent = -(logp.exp() * logp).sum(-1)
            t2 = time.perf_counter()
            for i in range(own - a, end - a):
                pos.append(a + i)
                ref.append("ACGTN"[labels[i] - 7])
                is_n = labels[i] == 11
                lps.append(None if is_n else float(lp[i]))
                ents.append(None if is_n else float(ent[i]))
            t["read_s"] += t1 - t0
            t["model_s"] += t2 - t1
            t["model_s"] += time.perf_counter() - t2  # result handling counts as model time
        t0 = time.perf_counter()
        table = pa.table({"pos": pa.array(pos, pa.int64()), "ref": pa.array(ref),
                          "log_prob": pa.array(lps, pa.float32()), "entropy": pa.array(ents, pa.float32())})
        pq.write_table(table, out / f"{chunk.name}.parquet", compression="zstd")
        t["write_s"] += time.perf_counter() - t0
    t["wall_s"] = time.perf_counter() - t_all
    t["cpu_s"] = time.process_time() - cpu_all
    t["threads"] = threads
    return t


def read_baseline(out: Path):
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted(out.glob("*.parquet"))]
    import pyarrow as pa

    return pa.concat_tables(tables)


def read_pipeline(out: Path):
    import pyarrow.dataset as pads

    return pads.dataset(out / "scores", format="parquet", partitioning="hive").to_table().sort_by("pos")


def compare(a, b) -> dict:
    out = {}
    assert a["pos"].to_pylist() == b["pos"].to_pylist()
    for col in ("log_prob", "entropy"):
        x = a[col].to_numpy(zero_copy_only=False).astype(np.float32)
        y = b[col].to_numpy(zero_copy_only=False).astype(np.float32)
        assert np.array_equal(np.isnan(x), np.isnan(y)), f"{col}: nulls differ"
        ok = ~np.isnan(x)
        out[f"{col}_max_abs_diff"] = float(np.abs(x[ok] - y[ok]).max()) if ok.any() else 0.0
        out[f"{col}_bit_identical"] = float(np.mean(x[ok].view(np.int32) == y[ok].view(np.int32)))
    return out


# ------------------------------------------------------------------------------- throughput


def throughput(bases: int) -> dict:
    import ray

    from hyena_platform.score.pipeline import run_score
    from hyena_platform.score.plan import plan_job
    from hyena_platform.score.scorer import ChunkScorer
    from hyena_platform.score.tiling import tile

    region = f"chrII:0-{bases}"
    result: dict = {"region": region, "window": W, "stride": S, "model": "tiny-1k (random weights)",
                    "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        tmp = Path(tmp)
        model_dir = tiny_model(tmp)
        plan = plan_job(job(model_dir, tmp / "out", region))
        model = plan.model.model
        result["windows"] = int(sum(len(tile(c.start, c.end, W, S)) for c in plan.chunks))

        # The baseline runs at the thread count that suits it best here: each count is timed on
        # the first chunk, then the whole region runs with the faster one.
        default_threads = torch.get_num_threads()
        probe = {}
        for threads in sorted({default_threads, 1}):
            r = baseline(model, plan, tmp / f"probe-{threads}", threads, chunks=plan.chunks[:1])
            probe[threads] = plan.chunks[0].bases / r["wall_s"]
            print(f"baseline probe, {threads} thread(s): {probe[threads]:,.0f} bases/s", flush=True)
        best = max(probe, key=probe.get)
        runs = {best: baseline(model, plan, tmp / f"baseline-{best}", best)}
        print(f"baseline, {best} thread(s): {bases / runs[best]['wall_s']:,.0f} bases/s "
              f"(read {runs[best]['read_s']:.1f} s, model {runs[best]['model_s']:.1f} s, "
              f"write {runs[best]['write_s']:.1f} s)", flush=True)
        result["baseline_probe_bases_per_s"] = {str(k): v for k, v in probe.items()}
        result["baseline"] = {str(k): v for k, v in runs.items()}
        result["baseline_best_threads"] = best

        torch.set_num_threads(1)
        scorer = ChunkScorer(model, window=W, stride=S, batch_size=8)
        from hyena_platform.data.chunks import fetch_codes
        from hyena_platform.data.fasta import tokenize_codes
        from hyena_platform.data.genome import ChunkSpec
        from hyena_platform.score.tiling import chunk_windows

        t0 = time.perf_counter()
        model_s = 0.0
        for c in plan.chunks:
            span = chunk_windows(c, W, S, reverse_strand=False)
            codes = fetch_codes(ChunkSpec(c.source, c.chrom, span.fetch_start, span.fetch_end, "score", span.fetch_start))
            model_s += scorer.score_chunk(c, tokenize_codes(codes, source=c.source, chrom=c.chrom,
                                                            start=span.fetch_start), span.fetch_start).model_s
        result["batched_no_ray"] = {"wall_s": time.perf_counter() - t0, "model_s": model_s, "threads": 1,
                                    "batch_size": 8}
        print(f"batched (8), no Ray, 1 thread: {bases / result['batched_no_ray']['wall_s']:,.0f} bases/s", flush=True)
        torch.set_num_threads(default_threads)

        # Ray runs its workers at nice 15 by default; on a machine shared with other work that
        # would handicap the replicas against the baseline (nice 0, this process). Same priority:
        os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
        marks = []
        res = run_score(job(model_dir, tmp / "out", region), progress=lambda e: marks.append(
            (time.perf_counter(), e.get("end", 0) - e.get("start", 0))) if e.get("event") == "chunk" else None)
        ray.shutdown()
        steady = None
        if len(marks) > 1:
            steady = sum(n for _, n in marks[1:]) / (marks[-1][0] - marks[0][0])
        result["pipeline"] = {**res.timings, "bases_per_s": res.bases_per_s, "steady_bases_per_s": steady,
                              "replicas": 2, "threads_per_replica": 1, "batch_size": 8}
        print(f"pipeline (2 replicas x 1 thread, batch 8): {res.bases_per_s:,.0f} bases/s end to end "
              f"(first chunk after {res.timings.get('first_chunk_s', 0):.1f} s), "
              f"{steady or float('nan'):,.0f} bases/s after the first chunk", flush=True)
        result["compare_baseline_vs_pipeline"] = compare(read_baseline(tmp / f"baseline-{best}"),
                                                         read_pipeline(tmp / "out"))
    b = runs[best]["wall_s"]
    result["speedup_end_to_end"] = b / result["pipeline"]["score_wall_s"]
    result["speedup_steady"] = (steady * b / bases) if steady else None
    result["speedup_batched_no_ray"] = b / result["batched_no_ray"]["wall_s"]
    result["load_after"] = os.getloadavg()[0]
    return result


# ------------------------------------------------------------------------------- long window


def long_window(tmp: Path) -> dict:
    """In a fresh process: large-1m, window 1,000,000, batch 1, one forward over chrII:0-1000000."""
    torch.manual_seed(0)
    model_dir = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig.variant("large-1m")).eval().save_pretrained(tmp / "large-1m")
    code = f"""
import json, time, ray
from hyena_platform.score import job_from_mapping
from hyena_platform.score.pipeline import run_score
ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
job = job_from_mapping({{
    "model": {{"uri": {str(model_dir)!r}}},
    "target": {{"regions": ["chrII:0-1000000"]}},
    "window": {{"size": 1000000, "stride": 1000000}},
    "compute": {{"replicas": 1, "cpus_per_replica": 1.75, "threads_per_replica": 2, "batch_size": 1,
                 "writers": 1, "cpus_per_writer": 0.25}},
    "output": {{"path": {str(tmp / 'out')!r}, "chunk_size": 1048576, "track": "log_prob", "bin_size": 10000}},
    "tracking": {{"log_run": False}},
}})
t0 = time.perf_counter()
res = run_score(job)
print("RESULT " + json.dumps({{"wall_s": time.perf_counter() - t0, **res.timings, **res.extra,
                               "bases": res.bases_scored, "chromosomes": res.chromosomes}}))
"""
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["process_wall_s"] = time.perf_counter() - t0
    result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, default=1_072_315,
                        help="region chrII:0-BASES (default: all of chrII, 1,072,315)")
    parser.add_argument("--long", action="store_true", help="only the long-window run")
    args = parser.parse_args()
    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)
    if args.long:
        with tempfile.TemporaryDirectory(prefix="bench-score-long-") as tmp:
            r = long_window(Path(tmp))
        print(f"large-1m, window 1,000,000, batch 1: scored {r['bases']:,} bases in {r['score_wall_s']:.0f} s "
              f"(model {r['model_s']:.0f} s), replica peak RSS {r['replica_max_rss_mb'] / 1024:.2f} GiB, "
              f"process wall {r['process_wall_s']:.0f} s; load average {r['load_before']:.1f} before, "
              f"{r['load_after']:.1f} after (2 cores, shared)")
        print(json.dumps(r, default=str))
        return
    r = throughput(args.bases)
    best = r["baseline"][str(r["baseline_best_threads"])]
    p = r["pipeline"]
    bases = args.bases
    print()
    print(f"{'':34s} {'bases/s':>10s} {'read s':>8s} {'model s':>8s} {'write s':>8s} {'wall s':>8s}")
    for k, v in r["baseline"].items():
        print(f"{'baseline, ' + k + ' thread(s)':34s} {bases / v['wall_s']:>10,.0f} {v['read_s']:>8.2f} "
              f"{v['model_s']:>8.2f} {v['write_s']:>8.2f} {v['wall_s']:>8.2f}")
    nb = r["batched_no_ray"]
    print(f"{'batched 8, no Ray, 1 thread':34s} {bases / nb['wall_s']:>10,.0f} {'':>8s} {nb['model_s']:>8.2f} "
          f"{'':>8s} {nb['wall_s']:>8.2f}")
    print(f"{'pipeline, 2 replicas (task time)':34s} {p['bases_per_s']:>10,.0f} {p['read_s']:>8.2f} "
          f"{p['model_s']:>8.2f} {p['write_s']:>8.2f} {p['score_wall_s']:>8.2f}")
    print(f"\nspeed-up over the best baseline ({r['baseline_best_threads']} thread(s)): "
          f"{r['speedup_end_to_end']:.2f}x end to end (Ray Data and actor start-up included), "
          f"{(r['speedup_steady'] or float('nan')):.2f}x after the first chunk; batching alone "
          f"{r['speedup_batched_no_ray']:.2f}x")
    c = r["compare_baseline_vs_pipeline"]
    print(f"outputs: log_prob max |diff| {c['log_prob_max_abs_diff']:.2e} "
          f"({c['log_prob_bit_identical']:.1%} bit-identical), entropy max |diff| {c['entropy_max_abs_diff']:.2e}")
    print(f"bases per CPU-second in the model: baseline {bases / best['cpu_s']:,.0f} (whole loop), "
          f"pipeline replicas {bases / p['model_cpu_s']:,.0f} (model and post-processing)")
    print(f"load average {r['load_before']:.1f} before, {r['load_after']:.1f} after (2 cores, shared)")
    assert c["log_prob_max_abs_diff"] <= 1e-5 and c["entropy_max_abs_diff"] <= 1e-5, c
    print(json.dumps(r, default=str))


if __name__ == "__main__":
    main()
