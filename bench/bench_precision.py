"""bf16 against fp32 scoring on CPU: speed and the largest deviation of per-base log P.

    python bench/bench_precision.py                     # tiny-1k trained briefly here, all of chrII
    python bench/bench_precision.py --model DIR         # a checkpoint of yours instead
    python bench/bench_precision.py --bases 262144      # a shorter region (chrII:0-262144)

A model with random weights predicts nearly uniform distributions, which hides rounding; so the
default first trains a tiny-1k for `--train-steps` AdamW steps (fp32, batches of 4 512-token windows of chrI
of the bundled V. cholerae genome), then scores chrII (held out) with `ChunkScorer` (window 1024,
stride 512, batch 8) in fp32 and in bf16 (`compute.precision: bf16`), alternating chunk by chunk
in this one process on one torch thread. It prints bases per second (wall and per CPU-second)
for both, the ratio, and |log P bf16 - log P fp32| over every base: max, 99.9th percentile,
mean, and the share of bases whose most likely base differs. A second row times the small-32k
geometry (random weights, window 32768) on the first 256 kb for the speed at long windows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import hyena
from gpu_check import genome_windows
from hyena import HyenaConfig, HyenaDNAForCausalLM, param_groups
from hyena_platform.score.scorer import ChunkScorer
from hyena_platform.score.tiling import Chunk

CHUNK = 65536


def chromosome_tokens(chrom: str) -> np.ndarray:
    from hyena.tokenizer import encode_bytes
    from hyena_platform.data.fasta import fasta_reader
    from hyena_platform.genome_assets import BUNDLED_GENOME

    reader = fasta_reader(str(BUNDLED_GENOME))
    raw = reader.raw(chrom, 0, int(reader.index[chrom].rlen)).translate(None, b"\r\n")
    return encode_bytes(np.frombuffer(raw, dtype=np.uint8))


def pretrained_tiny(steps: int, batch: int = 4, length: int = 512) -> HyenaDNAForCausalLM:
    """tiny-1k after `steps` AdamW steps on chrI windows: sharp enough distributions to matter."""
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(HyenaConfig.variant("tiny-1k")).train()
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=2e-3)
    windows = genome_windows(length, steps * batch, seed=5).view(steps, batch, -1)
    t0 = time.perf_counter()
    for i, b in enumerate(windows):
        loss = model(b[:, :-1], labels=b[:, 1:]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i % 20 == 0 or i == steps - 1:
            print(f"  train step {i + 1}/{steps}: loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return model.eval()


def compare(model: HyenaDNAForCausalLM, tokens: np.ndarray, window: int, stride: int, batch: int) -> dict:
    scorers = {p: ChunkScorer(model, window=window, stride=stride, batch_size=batch, precision=p)
               for p in ("fp32", "bf16")}
    wall = {p: 0.0 for p in scorers}
    cpu = {p: 0.0 for p in scorers}
    logp = {p: [] for p in scorers}
    n = tokens.size
    for i, start in enumerate(range(0, n, CHUNK)):
        chunk = Chunk("chrII", start, min(start + CHUNK, n), n, "bench", index=i)
        order = ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")  # alternate who goes first
        for p in order:
            out = scorers[p].score_chunk(chunk, tokens, 0)
            wall[p] += out.model_s
            cpu[p] += out.model_cpu_s
            logp[p].append(out.columns["log_prob"])
    a, b = (np.concatenate(logp[p]) for p in ("fp32", "bf16"))
    ok = np.isfinite(a)  # N bases are NaN in both
    diff = np.abs(b[ok] - a[ok]).astype(np.float64)
    return {"bases": n, "wall": wall, "cpu": cpu, "max": diff.max(), "p999": np.quantile(diff, 0.999),
            "mean": diff.mean(), "mean_logp": float(a[ok].mean())}


def print_row(name: str, r: dict) -> None:
    rate = {p: r["bases"] / r["wall"][p] for p in r["wall"]}
    per_cpu = {p: r["bases"] / r["cpu"][p] for p in r["cpu"]}
    print(f"{name}: {r['bases']:,} bases, mean log P (fp32) {r['mean_logp']:.4f}")
    print(f"  fp32 {rate['fp32']:10,.0f} bases/s wall  {per_cpu['fp32']:10,.0f} per CPU-s")
    print(f"  bf16 {rate['bf16']:10,.0f} bases/s wall  {per_cpu['bf16']:10,.0f} per CPU-s")
    print(f"  bf16 / fp32: {rate['bf16'] / rate['fp32']:.2f}x wall, {per_cpu['bf16'] / per_cpu['fp32']:.2f}x CPU")
    print(f"  |log P bf16 - fp32|: max {r['max']:.4f}, 99.9th pct {r['p999']:.4f}, mean {r['mean']:.5f} nats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a checkpoint directory (default: tiny-1k trained here)")
    parser.add_argument("--train-steps", type=int, default=80)
    parser.add_argument("--bases", type=int, default=None, help="score chrII:0-BASES (default: all of chrII)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); CPU bf16 via autocast "
          f"(mkldnn bf16 supported: {torch.ops.mkldnn._is_mkldnn_bf16_supported()})")
    tokens = chromosome_tokens("chrII")[: args.bases]
    model = hyena.from_pretrained(args.model).eval() if args.model else pretrained_tiny(args.train_steps)
    print_row(f"{'checkpoint' if args.model else 'tiny-1k'} on chrII, window 1024 stride 512 batch 8",
              compare(model, tokens, 1024, 512, 8))
    torch.manual_seed(0)
    long_model = HyenaDNAForCausalLM(HyenaConfig.variant("small-32k")).eval()
    print_row("small-32k (random weights), chrII:0-262144, window 32768 stride 16384 batch 1",
              compare(long_model, tokens[:262144], 32768, 16384, 1))


if __name__ == "__main__":
    main()
