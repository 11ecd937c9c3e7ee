"""Generation benchmark: the cached decoder against the full-recompute loop, same model, same seed.

    python bench/bench_generate.py            # tiny-1k (prompt 512 + 512 new) and small-32k (prompt 16k)
    python bench/bench_generate.py --quick    # tiny-1k only

Baseline: `generate(..., use_cache=False)`, which reruns the full FFT forward over the whole
sequence for every new base (what the Hugging Face pipeline on the model card does). Both
decode with the same seed and sampling options and must produce the same bases; the script
checks it. Rates are new tokens per CPU-second of one torch thread (CPU time, so that the ratio
holds on a shared machine). At 16k the baseline decodes only `--long-full-steps` tokens (each
costs a full forward at ~16k tokens; its per-token cost grows by < 4% over 512 steps), the
cached decoder all 512; the ratio compares per-token rates and the common tokens must agree.
"""

from __future__ import annotations

import argparse
import time

import torch

from hyena import HyenaConfig, HyenaDNAForCausalLM
from hyena.generation import generate

SAMPLING = dict(temperature=1.0, top_k=None, top_p=0.95, seed=0)


def timed_generate(model, prompt, new_tokens: int, use_cache: bool):
    t0 = time.process_time()
    out = generate(model, prompt, new_tokens, use_cache=use_cache, **SAMPLING)
    return out, time.process_time() - t0


def bench_case(variant: str, prompt_length: int, new_tokens: int, full_steps: int) -> dict:
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(HyenaConfig.variant(variant)).eval()
    prompt = torch.randint(7, 11, (prompt_length,), generator=torch.Generator().manual_seed(1))
    generate(model, prompt[:64], 8, **SAMPLING)  # warm-up (allocator, filter code paths)
    cached, cached_s = timed_generate(model, prompt, new_tokens, use_cache=True)
    full, full_s = timed_generate(model, prompt, full_steps, use_cache=False)
    same = torch.equal(cached.sequences[:, :prompt_length + full_steps], full.sequences)
    return {"variant": variant, "prompt": prompt_length, "new": new_tokens, "full_steps": full_steps,
            "cached_tok_s": new_tokens / cached_s, "full_tok_s": full_steps / full_s,
            "cached_s": cached_s, "full_s": full_s, "identical": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny-1k only")
    parser.add_argument("--long-full-steps", type=int, default=16,
                        help="tokens the full-recompute baseline decodes at prompt 16k (default 16)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = [("tiny-1k", 512, 512, 512)]
    if not args.quick:
        cases.append(("small-32k", 16384, 512, args.long_full_steps))
    print(f"{'model':10s} {'prompt':>7s} {'new':>5s} {'cached tok/s':>13s} {'full tok/s':>11s} "
          f"{'speedup':>8s}  same tokens")
    for variant, prompt, new, full_steps in cases:
        r = bench_case(variant, prompt, new, full_steps)
        print(f"{variant:10s} {prompt:>7,d} {new:>5d} {r['cached_tok_s']:>13,.1f} {r['full_tok_s']:>11,.2f} "
              f"{r['cached_tok_s'] / r['full_tok_s']:>7.1f}x  {r['identical']} "
              f"(cached {r['cached_s']:.1f} s CPU for {new}, full {r['full_s']:.1f} s CPU for {full_steps})",
              flush=True)


if __name__ == "__main__":
    main()
