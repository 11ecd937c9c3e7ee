"""Sequence heads' cost: a fine-tuning step with a token MLP before pooling (`task.token_mlp`)
against the plain mean-pooling head, and the one-off linear probe (`train.head_init: probe`)
against those steps.

    .venv/bin/python bench/bench_heads.py                 # ~3 minutes on 2 cores
    .venv/bin/python bench/bench_heads.py --widths 256 1024 --json out.json

The task is the bundled species sample (tests/assets/finetune/species_small.parquet: 1,024-base
windows of bacterial references), read on both strands with mean pooling, as
jobs/finetune_species.yaml does. Every head runs the same model (tiny-1k, d_model 128, the
example jobs' base), optimizer and batches as bench_finetune's plain loop (one process, no Ray,
one torch thread), one after another, `--rounds` times each.

Baseline: the mean-pooling head (token_mlp 0), measured in the same run. Printed per head: the
steady-state step (median after `--skip`) and its ratio to the baseline's; the probe's seconds
(the frozen model's features for every train window and its reverse complement, then
finetune.probe.fit_probe over its C grid) and what they equal in the baseline's steps. Ratios
only, no assertion.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_finetune import job_mapping, plain_loop

SLC = "single_label_classification"


def probe_seconds(model, data) -> dict:
    """The job's probe on this model: features (both strands) of train, features of valid, the fit."""
    from hyena_platform.finetune.probe import fit_probe, split_features

    train, valid = data.splits["train"], data.splits["valid"]
    t0 = time.perf_counter()
    rows = split_features(model, train, range(len(train)), task="sequence", problem_type=SLC, batch_size=16,
                          both_strands=True)
    held = split_features(model, valid, range(len(valid)), task="sequence", problem_type=SLC, batch_size=16)
    t1 = time.perf_counter()
    fit_probe(rows, held, problem_type=SLC, num_labels=model.head_config.num_labels, metric="mcc")
    return {"features_s": t1 - t0, "fit_s": time.perf_counter() - t1, "rows": len(rows[1])}


def head_job(tmp: Path, base: Path, width: int, args):
    """bench_finetune's job, its head reading both strands through a token MLP of `width`."""
    from hyena_platform.config import from_mapping
    from hyena_platform.finetune.config import FinetuneJob

    mapping = job_mapping(tmp, base, steps=args.steps, batch=args.batch, log_every=10)
    mapping["task"].update(strands="both", token_mlp=width)
    return from_mapping(FinetuneJob, mapping, source="bench")


def measure(job, data, tmp: Path, args) -> dict:
    from hyena_platform.finetune.launch import build_start_model, plan_steps, resolve_base

    plan = plan_steps(job, len(data.splits["train"]), source="bench")
    start = resolve_base(job, "", tmp, source="bench")
    steps = [plain_loop(job, build_start_model(job, start, data, source="bench"), data, plan, skip=args.skip)
             for _ in range(args.rounds)]
    probe = probe_seconds(build_start_model(job, start, data, source="bench").eval(), data)
    return {"step_s": statistics.median(s["step_s"] for s in steps),
            "cpu_s": statistics.median(s["cpu_s"] for s in steps), **probe}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[512, 1024], help="token MLP widths to compare")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--skip", type=int, default=3)
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)

    from hyena import HyenaConfig, HyenaDNAForCausalLM

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-heads-") as tmp_s:
        tmp = Path(tmp_s)
        torch.manual_seed(0)
        HyenaDNAForCausalLM(HyenaConfig.variant("tiny-1k", d_model=128, d_inner=512, embed_dropout=0.0)).save_pretrained(
            tmp / "base")
        print(f"HyenaDNA tiny-1k (d_model 128) + sequence head, both strands, mean pooling; {args.batch} x 1,024-base "
              f"windows per step, {args.steps} steps (first {args.skip} skipped) x {args.rounds}; 1 torch thread")
        from hyena_platform.finetune.launch import load_data

        data = load_data(head_job(tmp, tmp / "base", 0, args))  # the heads differ, the data does not
        rows = {}
        for width in [0, *args.widths]:
            rows[width] = r = measure(head_job(tmp, tmp / "base", width, args), data, tmp, args)
            base = rows[0]
            name = "mean states (baseline)" if width == 0 else f"token MLP {width}"
            print(f"{name + ':':24s}{args.batch / r['step_s']:6.2f} seq/s  step {r['step_s'] / base['step_s']:.2f}x "
                  f"baseline  | probe {r['features_s']:.1f} s features + {r['fit_s']:.1f} s fit "
                  f"({r['rows']} rows) = {(r['features_s'] + r['fit_s']) / base['step_s']:.0f} baseline steps",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({str(k): v for k, v in rows.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
