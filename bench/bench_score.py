"""Scoring benchmark: the Ray pipeline against the straightforward baseline, in the same run.

    python bench/bench_score.py                  # tiny-1k on all of chrII, pipeline vs baseline
    python bench/bench_score.py --bases 262144   # a shorter region (chrII:0-262144)
    python bench/bench_score.py --long           # only the long-window run (large-1m, W = 1,000,000)
    python bench/bench_score.py --centred        # only centred vs causal windows (chrII:0-262144)

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

Centred windows (`--centred`, about 3 minutes at load 5): what the centred layout of a both-strands
per-base head costs (hyena_platform.score.tiling, `window_layout`) against the causal layout, the
named baseline, in the same run. Two random tiny-1k token heads (3 classes, same seed): one that
reads both strands (scored in centred windows) and its forward-only twin (causal windows).

- counts: windows (model inputs), model calls (batches of 8) and input tokens per output base of
  each layout over all of chrII at output.chunk_size 2^20 and 65,536, for this bench's window
  and for the demo gene head's (W 1022, S 511) (`tiling.chunk_windows`);
- layout alone, no Ray, one thread: the both-strands model through `ChunkScorer` in causal and in
  centred windows, and the forward twin in causal ones, over the region's first chunk,
  alternated over `--rounds`; CPU seconds of this process;
- the pipeline: `run_score` of each model over the region (the configuration of the throughput
  run), alternated over `--rounds`; wall time and the replicas' model CPU time. The both-strands
  head runs the backbone over both reads (twice the backbone work of its forward twin), so this
  ratio is the layout's times the second strand's.

Each pipeline output must cover every base of the region exactly once (rows = bases, positions
in order), and the centred pipeline must agree with the in-process centred scorer.
"""

from __future__ import annotations

import argparse
import contextlib
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


@contextlib.contextmanager
def local_ray():
    """A 2-CPU local Ray for the pipeline runs. Ray runs its workers at nice 15 by default; on a
    machine shared with other work that would handicap the replicas against the baseline (nice 0,
    this process), so they get this process's priority."""
    import ray

    os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def throughput(bases: int) -> dict:
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

        marks = []
        with local_ray():
            res = run_score(job(model_dir, tmp / "out", region), progress=lambda e: marks.append(
                (time.perf_counter(), e.get("end", 0) - e.get("start", 0))) if e.get("event") == "chunk" else None)
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


# --------------------------------------------------------------------------- centred windows


def token_model(tmp: Path, strands: str) -> Path:
    """A random tiny-1k per-base head of 3 classes; the same seed for both strand settings."""
    from hyena.heads import HeadConfig, HyenaDNAForTokenPrediction

    torch.manual_seed(0)
    model = HyenaDNAForTokenPrediction(hyena.HyenaConfig.variant("tiny-1k"), HeadConfig(num_labels=3, strands=strands))
    return model.eval().save_pretrained(tmp / f"tiny-1k-{strands}")


def layout_counts(chunks, layout: str, window: int = W, stride: int = S, batch_size: int = 8) -> dict:
    """Windows, model calls (batches; they never mix chunks) and input tokens of `chunks`."""
    from hyena_platform.score.tiling import chunk_windows, input_end

    windows = calls = tokens = 0
    for c in chunks:
        blocks = chunk_windows(c, window, stride, reverse_strand=False, layout=layout).forward
        windows += len(blocks)
        calls += -(-len(blocks) // batch_size)
        tokens += int((input_end(blocks) - blocks[:, 2]).sum())
    bases = sum(c.bases for c in chunks)
    return {"windows": windows, "model_calls": calls, "input_tokens": tokens, "tokens_per_base": tokens / bases}


def whole_chromosome_counts(region) -> dict:
    """Counts of both layouts over all of the region's chromosome: this bench's window and the
    demo's gene head's (l_max 1024: W 1022, S 511, which does not divide the chunk sizes), each
    at two chunk sizes."""
    from hyena_platform.score.tiling import CAUSAL, CENTRED, Region, plan_chunks

    whole = [Region(region.chrom, 0, region.length, region.length, region.source)]
    return {f"{layout} W{w} S{s} chunk {size}": layout_counts(plan_chunks(whole, size), layout, w, s)
            for w, s in ((W, S), (1022, 511)) for size in (2 ** 20, CHUNK) for layout in (CAUSAL, CENTRED)}


def check_coverage(table, start: int, end: int) -> bool:
    """Every base of [start, end) exactly once, in order."""
    pos = table["pos"].to_numpy()
    return table.num_rows == end - start and bool(np.array_equal(pos, np.arange(start, end)))


def inprocess_layouts(models: dict, plan, rounds: int) -> dict:
    """The first chunk through `ChunkScorer` on one thread, alternated: CPU seconds of each way."""
    from hyena_platform.data.chunks import fetch_codes
    from hyena_platform.data.fasta import tokenize_codes
    from hyena_platform.data.genome import ChunkSpec
    from hyena_platform.score.scorer import ChunkScorer
    from hyena_platform.score.tiling import CAUSAL, CENTRED

    chunk = plan.chunks[0]
    ways = {"forward head, causal": (models["forward"], CAUSAL), "both strands, causal": (models["both"], CAUSAL),
            "both strands, centred": (models["both"], CENTRED)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs: dict = {name: [] for name in ways}
    scores = {}
    for r in range(rounds):
        for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):  # alternate the order
            model, layout = ways[name]
            scorer = ChunkScorer(model, window=W, stride=S, batch_size=8, layout=layout)
            span = scorer.windows(chunk)
            codes = fetch_codes(ChunkSpec(chunk.source, chunk.chrom, span.fetch_start, span.fetch_end, "score",
                                          span.fetch_start))
            tokens = tokenize_codes(codes, source=chunk.source, chrom=chunk.chrom, start=span.fetch_start)
            t0, c0 = time.perf_counter(), time.process_time()
            scores[name] = scorer.score_chunk(chunk, tokens, span.fetch_start)
            runs[name].append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
    torch.set_num_threads(threads)
    base = min(x["cpu_s"] for x in runs["both strands, causal"])
    return {"chunk": str(chunk), "bases": chunk.bases, "runs": runs,
            "best_cpu_s": {k: min(x["cpu_s"] for x in v) for k, v in runs.items()},
            "centred_over_causal_cpu": min(x["cpu_s"] for x in runs["both strands, centred"]) / base,
            "scores_centred": scores["both strands, centred"]}


def pipeline_layouts(model_dirs: dict, tmp: Path, region: str, rounds: int) -> dict:
    """`run_score` of the forward head (causal) and the both-strands head (centred), alternated."""
    from hyena_platform.score.pipeline import run_score

    runs: dict = {"causal": [], "centred": []}
    tables = {}
    with local_ray():
        for r in range(rounds):
            for layout in (("causal", "centred") if r % 2 == 0 else ("centred", "causal")):
                strands = "both" if layout == "centred" else "forward"
                out = tmp / f"out-{layout}-{r}"
                res = run_score(job(model_dirs[strands], out, region))
                runs[layout].append({k: res.timings[k] for k in ("score_wall_s", "model_s", "model_cpu_s",
                                                                 "read_s", "write_s")})
                tables[layout] = read_pipeline(out)
                print(f"pipeline round {r + 1}, {layout} ({strands} head): {res.timings['score_wall_s']:.1f} s wall, "
                      f"{res.timings['model_cpu_s']:.1f} CPU-s in the replicas' model", flush=True)
    best = {k: {m: min(x[m] for x in v) for m in ("score_wall_s", "model_cpu_s")} for k, v in runs.items()}
    return {"runs": runs, "best": best, "tables": tables,
            "centred_over_causal_wall": best["centred"]["score_wall_s"] / best["causal"]["score_wall_s"],
            "centred_over_causal_cpu": best["centred"]["model_cpu_s"] / best["causal"]["model_cpu_s"]}


def centred_layouts(bases: int, rounds: int) -> dict:
    from hyena_platform.score.plan import plan_job
    from hyena_platform.score.tiling import CAUSAL, CENTRED

    region = f"chrII:0-{bases}"
    result: dict = {"region": region, "window": W, "stride": S, "chunk_size": CHUNK, "rounds": rounds,
                    "model": "tiny-1k token head, 3 classes (random weights)", "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-score-centred-") as tmp:
        tmp = Path(tmp)
        dirs = {strands: token_model(tmp, strands) for strands in ("forward", "both")}
        plans = {s: plan_job(job(d, tmp / f"plan-{s}", region)) for s, d in dirs.items()}
        assert plans["both"].layout == CENTRED and plans["forward"].layout == CAUSAL
        result["counts_region"] = {layout: layout_counts(plans["both"].chunks, layout) for layout in (CAUSAL, CENTRED)}
        result["counts_whole_chromosome"] = whole_chromosome_counts(plans["both"].regions[0])
        models = {s: p.model.model for s, p in plans.items()}
        inproc = inprocess_layouts(models, plans["both"], rounds)
        pipe = pipeline_layouts(dirs, tmp, region, rounds)
    first = plans["both"].chunks[0]
    centred_table = pipe.pop("tables")
    result["coverage_exactly_once"] = {k: check_coverage(t, 0, bases) for k, t in centred_table.items()}
    piece = centred_table["centred"].slice(0, first.bases)
    direct = inproc.pop("scores_centred").columns
    result["centred_pipeline_vs_inprocess_max_abs_diff"] = max(
        float(np.nanmax(np.abs(piece[col].to_numpy(zero_copy_only=False) - direct[col])))
        for col in ("log_prob", "p_0", "p_1", "p_2"))
    result["inprocess"], result["pipeline"] = inproc, pipe
    result["load_after"] = os.getloadavg()[0]
    return result


def per_round(runs: list, baseline: list, key: str) -> str:
    """The ratio of each alternated round and their median, as text."""
    ratios = [run[key] / base[key] for run, base in zip(runs, baseline)]
    return f"per round {', '.join(f'{x:.3f}x' for x in ratios)}, median {np.median(ratios):.3f}x"


def print_timed(title: str, rounds: int, rows: list, ratio: str) -> None:
    print(f"\n{title} (best of {rounds}, alternated):")
    for line in (*rows, ratio):
        print("  " + line)


def print_centred(r: dict) -> None:
    print(f"\ncentred vs causal windows, W {r['window']}, S {r['stride']}, batch 8 ({r['model']})")
    print(f"{'layout, window, chunk size':36s} {'windows':>8s} {'calls':>7s} {'tokens/base':>12s}")
    for key, c in [*r["counts_whole_chromosome"].items(), *((f"{k}, {r['region']}", v)
                                                           for k, v in r["counts_region"].items())]:
        print(f"{key:36s} {c['windows']:>8,} {c['model_calls']:>7,} {c['tokens_per_base']:>12.4f}")
    i, p = r["inprocess"], r["pipeline"]
    layout_rounds = per_round(i["runs"]["both strands, centred"], i["runs"]["both strands, causal"], "cpu_s")
    print_timed(f"no Ray, one thread, {i['chunk']}", r["rounds"],
                [f"{name:24s} {cpu:6.2f} CPU-s  ({i['bases'] / cpu:,.0f} bases/CPU-s)"
                 for name, cpu in i["best_cpu_s"].items()],
                f"layout alone, centred / causal (both-strands model): {i['centred_over_causal_cpu']:.3f}x CPU "
                f"(best of each; {layout_rounds})")
    print_timed(f"pipeline, {r['region']}, 2 replicas x 1 thread", r["rounds"],
                [f"{layout:8s} {b['score_wall_s']:6.1f} s wall   {b['model_cpu_s']:6.1f} CPU-s in the model"
                 for layout, b in p["best"].items()],
                f"both-strands head centred / forward head causal: {p['centred_over_causal_wall']:.2f}x wall, "
                f"{p['centred_over_causal_cpu']:.2f}x model CPU "
                f"({per_round(p['runs']['centred'], p['runs']['causal'], 'model_cpu_s')}; "
                "the second strand's backbone pass included)")
    print(f"every base exactly once: {r['coverage_exactly_once']}; centred pipeline vs in-process "
          f"max |diff| {r['centred_pipeline_vs_inprocess_max_abs_diff']:.2e}")
    print(f"load average {r['load_before']:.1f} before, {r['load_after']:.1f} after (2 cores, shared)")
    assert all(r["coverage_exactly_once"].values()), r["coverage_exactly_once"]
    assert r["centred_pipeline_vs_inprocess_max_abs_diff"] <= 1e-5, r["centred_pipeline_vs_inprocess_max_abs_diff"]


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
    parser.add_argument("--bases", type=int, default=None,
                        help="region chrII:0-BASES (default: all of chrII, 1,072,315; 262,144 with --centred)")
    parser.add_argument("--long", action="store_true", help="only the long-window run")
    parser.add_argument("--centred", action="store_true",
                        help="only centred vs causal windows (region chrII:0-BASES, default 262,144)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of --centred (default 3)")
    args = parser.parse_args()
    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)
    if args.centred:
        r = centred_layouts(args.bases or 262_144, args.rounds)
        print_centred(r)
        print(json.dumps(r, default=str))
        return
    if args.long:
        with tempfile.TemporaryDirectory(prefix="bench-score-long-") as tmp:
            r = long_window(Path(tmp))
        print(f"large-1m, window 1,000,000, batch 1: scored {r['bases']:,} bases in {r['score_wall_s']:.0f} s "
              f"(model {r['model_s']:.0f} s), replica peak RSS {r['replica_max_rss_mb'] / 1024:.2f} GiB, "
              f"process wall {r['process_wall_s']:.0f} s; load average {r['load_before']:.1f} before, "
              f"{r['load_after']:.1f} after (2 cores, shared)")
        print(json.dumps(r, default=str))
        return
    args.bases = args.bases or 1_072_315
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
