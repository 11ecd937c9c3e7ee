"""Embedding benchmark: one 1,000,000-base sequence through large-1m, in a fresh process.

    python bench/bench_embed.py               # mean + per-base, final layer, 1,000,000 bases
    python bench/bench_embed.py --length 200000

Prints wall time and peak RSS (VmHWM) of `hyena.embed(model, [seq], pooling=...)` for a
randomly initialised large-1m (8 layers, D = 256, l_max 1,000,002; no released weights are
reachable here, and the cost does not depend on the weights), beside the baseline measured in
the same run: the plain backbone forward at the same length, i.e. the low-memory forward
`hyena.embed` rides on, so the ratio is the cost of pooling and of keeping the per-base rows.
The sequence is real DNA: the bundled V. cholerae chrI from position 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def peak_rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def child(mode: str, length: int) -> None:
    import torch

    import hyena
    from hyena_platform.data.genome import ChunkSpec, bundled_genome_path, fetch_codes, tokenize_codes

    torch.manual_seed(0)
    model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig.variant("large-1m")).eval()
    path = str(bundled_genome_path())
    ids = tokenize_codes(fetch_codes(ChunkSpec(path, "chrI", 0, length, "bench", 0)), source=path, chrom="chrI", start=0)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        if mode == "forward":
            out = model.backbone(torch.from_numpy(ids).long()[None])
            shape = tuple(out.shape)
        else:
            out = hyena.embed(model, [ids], pooling=mode)
            shape = tuple(out[0].shape)
    print(json.dumps({"mode": mode, "length": length, "wall_s": time.perf_counter() - t0,
                      "cpu_s": time.process_time() - c0, "peak_rss_gib": peak_rss_gib(), "shape": shape}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1_000_000)
    parser.add_argument("--modes", default="forward,mean,none", help="forward (baseline), mean, last, none")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.length)
        return
    for mode in args.modes.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--length", str(args.length)],
                              capture_output=True, text=True)
        line = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else json.dumps(
            {"mode": mode, "error": proc.stderr.strip().splitlines()[-1:]})
        print(line, flush=True)


if __name__ == "__main__":
    main()
