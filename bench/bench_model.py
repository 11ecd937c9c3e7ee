"""Model benchmark: our HyenaDNA against MultiMolecule's, measured in the same run.

    python bench/bench_model.py            # everything (MultiMolecule columns only if installed)
    python bench/bench_model.py --quick    # fewer repeats, no 1M-token run

Prints tokens per CPU-second of one thread for eval forward (tiny-1k at L=1024 batch 8, small-32k at L=32768 batch 1) and
for a training step (forward + backward + AdamW), each with the ratio ours / MultiMolecule for the
same weights, and the wall time and peak memory (max RSS of a fresh process) of a no-grad
forward over 1,000,000 tokens with the large-1m geometry, beside the same forward through the
plain (non-chunked) path at a shorter length to show the memory it would need.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import hyena
from hyena import HyenaConfig, HyenaDNAForCausalLM


def load_multimolecule(model: HyenaDNAForCausalLM):
    """The same weights in MultiMolecule's HyenaDnaForCausalLM, or None if it is not installed."""
    try:
        from multimolecule.models import HyenaDnaForCausalLM
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        hyena.export_multimolecule(model, Path(tmp) / "mm")
        return HyenaDnaForCausalLM.from_pretrained(str(Path(tmp) / "mm")).eval()


def mm_ids(ids: torch.Tensor) -> torch.Tensor:
    return torch.tensor(hyena.checkpoint.OFFICIAL_TO_MM)[ids]


def timed(fn, repeats: int, warmup: int = 1) -> float:
    """Best CPU time of `repeats` calls. CPU time of one torch thread, not wall time: the ratio
    between two implementations then holds on a machine that other work is also using."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def bench_eval(variant: str, length: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ours = HyenaDNAForCausalLM(HyenaConfig.variant(variant)).eval()
    theirs = load_multimolecule(ours)
    ids = torch.randint(7, 12, (batch, length))
    row = {"case": f"eval {variant} L={length} B={batch}"}
    with torch.inference_mode():
        t = timed(lambda: ours(ids), repeats)
        row["ours_tok_s"] = batch * length / t
        if theirs is not None:
            x = mm_ids(ids)
            diff = (theirs(x).logits[..., hyena.checkpoint.OFFICIAL_TO_MM] - ours(ids).logits).abs().max().item()
            t_mm = timed(lambda: theirs(x), repeats)
            row.update(mm_tok_s=batch * length / t_mm, ratio=t_mm / t, max_abs_logit_diff=diff)
    return row


def bench_train(variant: str, length: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ours = HyenaDNAForCausalLM(HyenaConfig.variant(variant, embed_dropout=0.0)).train()
    theirs = load_multimolecule(ours)
    ids = torch.randint(7, 12, (batch, length + 1))
    row = {"case": f"train step {variant} L={length} B={batch}"}

    def step_fn(model, inputs, labels, loss_of):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_of(model, inputs, labels).backward()
            opt.step()
        return step

    ours_step = step_fn(ours, ids[:, :-1], ids[:, 1:], lambda m, x, y: m(x, labels=y).loss)
    row["ours_tok_s"] = batch * length / timed(ours_step, repeats)
    if theirs is not None:
        theirs.train()
        x, y = mm_ids(ids[:, :-1]), mm_ids(ids[:, 1:])

        def mm_loss(m, x, y):
            logits = m(x).logits
            return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

        t_mm = timed(step_fn(theirs, x, y, mm_loss), repeats)
        row.update(mm_tok_s=batch * length / t_mm, ratio=row["ours_tok_s"] / (batch * length / t_mm))
    return row


def _vm_hwm_kib() -> int:
    """Peak RSS of this process image (VmHWM). Unlike getrusage's ru_maxrss it is not inherited
    across fork + exec, so a child does not report its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def long_context_child(length: int, low_memory: bool) -> None:
    """Run in a fresh process so max RSS measures this forward alone."""
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(HyenaConfig.variant("large-1m")).eval()
    if not low_memory:
        hyena.HyenaDNAModel.low_memory_threshold = 1 << 62
    ids = torch.randint(7, 12, (1, length))
    rss_before = _vm_hwm_kib()
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = model(ids).logits
    wall = time.perf_counter() - t0
    peak = _vm_hwm_kib()
    print(json.dumps({"length": length, "low_memory": low_memory, "wall_s": wall, "peak_gib": peak / 2**20,
                      "model_rss_gib": rss_before / 2**20, "finite": bool(torch.isfinite(logits).all())}))


def bench_long_context(length: int, low_memory: bool) -> dict:
    cmd = [sys.executable, __file__, "--long-context-child", str(length)] + ([] if low_memory else ["--plain"])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"length": length, "low_memory": low_memory, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--long-context-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.long_context_child:
        long_context_child(args.long_context_child, low_memory=not args.plain)
        return

    repeats = 2 if args.quick else 5
    torch.set_num_threads(1)  # see timed(): CPU time per token of one thread
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread (CPU-time throughput), "
          f"MultiMolecule {'installed' if load_multimolecule(HyenaDNAForCausalLM(HyenaConfig(d_model=8, n_layer=1, l_max=8))) else 'not installed'}")
    rows = [
        bench_eval("tiny-1k", 1024, 8, repeats),
        bench_eval("small-32k", 32768, 1, max(1, repeats // 2)),
        bench_train("tiny-1k", 1024, 8, repeats),
        bench_train("small-32k", 32768, 1, max(1, repeats // 2)),
    ]
    print(f"{'case':40s} {'ours tok/s':>12s} {'MM tok/s':>12s} {'speedup':>8s}")
    for r in rows:
        mm = f"{r['mm_tok_s']:12,.0f}" if "mm_tok_s" in r else f"{'-':>12s}"
        ratio = f"{r['ratio']:7.2f}x" if "ratio" in r else f"{'-':>8s}"
        extra = f"  (max |logit diff| {r['max_abs_logit_diff']:.1e})" if "max_abs_logit_diff" in r else ""
        print(f"{r['case']:40s} {r['ours_tok_s']:12,.0f} {mm} {ratio}{extra}")
    if not args.quick:
        print("\nLong context, large-1m geometry, batch 1, no grad (fresh process each):")
        for length, low in [(1_000_000, True), (250_000, True), (250_000, False)]:
            r = bench_long_context(length, low)
            path = "low-memory" if low else "plain"
            if "error" in r:
                print(f"  L={length:>9,} {path:10s} failed: {r['error']}")
            else:
                print(f"  L={length:>9,} {path:10s} wall {r['wall_s']:7.1f} s  peak RSS {r['peak_gib']:5.2f} GiB "
                      f"(model alone {r['model_rss_gib']:.2f} GiB)  finite={r['finite']}")


if __name__ == "__main__":
    main()
