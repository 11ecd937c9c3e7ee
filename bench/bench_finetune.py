"""Fine-tuning throughput: `hyena finetune` on Ray Train against a plain PyTorch loop on the same
batches.

    .venv/bin/python bench/bench_finetune.py            # ~4 minutes on 2 cores
    .venv/bin/python bench/bench_finetune.py --rounds 3 --json out.json

The task is the bundled species sample (tests/assets/finetune/species_small.parquet: 1,024-base
windows of bacterial references). Both sides run the same model (by default the architecture of
the example jobs' base model: tiny-1k as jobs/pretrain_local.yaml trains it, d_model 128, with a
sequence head), the same optimizer (train.loop.build_optimizer), the same batches (the job's
`worker_indices` + `collate` for every step) and one torch thread:

1. plain loop: one process, no Ray;
2. `run_finetune` with 1 Ray Train worker: the whole job (reports every `log_every` steps, the
   controller-side MLflow writer, a validation and checkpoint at the end);

alternated `--rounds` times (plain, Ray, plain, ..., plain: the machine is shared, so every Ray
run is bracketed by plain runs and the ratio uses the brackets around each).

Steady state = steps after the first `--skip`. Prints examples/s and CPU seconds per step for
both and the Ray overhead (1 - plain / Ray); ratios only, no assertion. The plain runs take the
Ray workers' CPU priority (Ray nices its workers by 15), so wall clock compares like with like
on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from plain_steps import timed_steps

REPO = Path(__file__).resolve().parents[1]
SPECIES = REPO / "tests" / "assets" / "finetune" / "species_small.parquet"
RAY_WORKER_NICENESS = 15  # Ray's default `worker_niceness` (src/ray/common/ray_config_def.h)


def job_mapping(tmp: Path, base: Path, *, steps: int, batch: int, log_every: int) -> dict:
    return {
        "model": {"init_from": str(base)},
        "task": {"type": "sequence", "pooling": "mean"},
        "data": {"path": str(SPECIES)},
        "train": {"steps": steps, "batch_size": batch, "eval_every": steps, "log_every": log_every, "lr": 1e-3},
        "baseline": {"enabled": False},
        "scaling": {"num_workers": 1, "cpus_per_worker": 1.0, "threads_per_worker": 1},
        "checkpoint": {"storage_path": str(tmp / "runs"), "name": "bench", "keep": 1},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "register_as": "bench-finetune"},
    }


def plain_loop(job, model, data, plan: dict, *, skip: int) -> dict:
    """The job's model, optimizer and batches, stepped in this process."""
    from dataclasses import replace

    from hyena_platform.finetune.batches import collate, worker_indices
    from hyena_platform.train.loop import build_optimizer

    torch.set_num_threads(1)
    model = model.train()
    optimizer, scheduler = build_optimizer(model, replace(job.train, steps=plan["total_steps"]))
    split = data.splits["train"]

    def backward(step: int) -> None:
        idx = worker_indices(len(split), step, per_epoch=plan["steps_per_epoch"], global_batch=job.train.batch_size,
                             rank=0, world=1, seed=job.train.seed)
        b = collate(split, idx, task="sequence", problem_type="single_label_classification")
        model(b["input_ids"], b["attention_mask"], b["labels"]).loss.backward()

    walls, cpus = timed_steps(plan["total_steps"], backward, model, optimizer, scheduler, job.train.grad_clip)
    return {"step_s": statistics.median(walls[skip:]), "cpu_s": statistics.median(cpus[skip:])}


def ray_run(job, tmp: Path, *, skip: int) -> dict:
    from hyena_platform import tracking
    from hyena_platform.finetune.launch import run_finetune

    t0 = time.perf_counter()
    result = run_finetune(job, source="bench_finetune.yaml", fresh=True, ray_logs=False)
    wall = time.perf_counter() - t0
    cfg = job.tracking.resolved()
    step_s = [v for _, v in tracking.metric_history(cfg, result.run_id, "train/step_s")][skip:]
    cpu_s = [v for _, v in tracking.metric_history(cfg, result.run_id, "train/cpu_s")][skip:]
    return {"step_s": statistics.median(step_s), "cpu_s": statistics.median(cpu_s), "job_wall_s": wall}


def show(name: str, row: dict, batch: int, tail: str = "") -> None:
    print(f"{name + ':':22s}{batch / row['step_s']:7.2f} seq/s  cpu {row['cpu_s']:.3f} s/step{tail}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--d-model", type=int, default=128, help="tiny-1k is 128 (the example jobs' base model)")
    p.add_argument("--rounds", type=int, default=2, help="Ray runs, each between two plain runs")
    p.add_argument("--skip", type=int, default=4)
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)

    import ray

    from hyena import HyenaConfig, HyenaDNAForCausalLM
    from hyena_platform.config import from_mapping
    from hyena_platform.finetune.config import FinetuneJob
    from hyena_platform.finetune.launch import build_start_model, fit_data_lengths, load_data, plan_steps, resolve_base

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    # Ray starts its workers 15 nice levels below the raylet (the raylet's worker_niceness): on
    # a shared machine a plain loop at this process's priority would win CPU the Ray worker
    # loses. The plain runs take the workers' priority, so that wall clock compares the loops.
    os.nice(RAY_WORKER_NICENESS)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp_s:
        tmp = Path(tmp_s)
        torch.manual_seed(0)
        d = args.d_model
        HyenaDNAForCausalLM(HyenaConfig.variant("tiny-1k", d_model=d, d_inner=4 * d, embed_dropout=0.0)).save_pretrained(
            tmp / "base")
        job = from_mapping(FinetuneJob, job_mapping(tmp, tmp / "base", steps=args.steps, batch=args.batch,
                                                    log_every=10), source="bench")
        data = load_data(job)
        base = resolve_base(job, "", tmp, source="bench")
        plan = plan_steps(job, len(data.splits["train"]), source="bench")
        fresh_model = lambda: build_start_model(job, base, data, source="bench")  # noqa: E731 - same seed, same start
        fit_data_lengths(job, data, 1026)
        print(f"HyenaDNA tiny-1k, d_model={d}, 2 layers + sequence head; {args.batch} x 1,024-base windows per "
              f"step, {args.steps} steps (first {args.skip} skipped); 1 torch thread; machine shared", flush=True)
        plain = [plain_loop(job, fresh_model(), data, plan, skip=args.skip)]
        show("plain loop", plain[-1], args.batch)
        rays = []
        for _ in range(args.rounds):
            rays.append(ray_run(job, tmp, skip=args.skip))
            show("hyena finetune (Ray)", rays[-1], args.batch, f"  (whole job {rays[-1]['job_wall_s']:.1f} s)")
            plain.append(plain_loop(job, fresh_model(), data, plan, skip=args.skip))
            show("plain loop", plain[-1], args.batch)
    out = {"plain": plain, "ray": rays}
    for key, name in (("step_s", "wall"), ("cpu_s", "cpu")):
        # Each Ray run against the mean of the plain runs just before and after it.
        ratios = [1 - (plain[i][key] + plain[i + 1][key]) / 2 / r[key] for i, r in enumerate(rays)]
        out[f"overhead_{name}"] = statistics.median(ratios)
        out[f"overhead_{name}_rounds"] = ratios
    print()
    print(f"Ray overhead vs the plain loop (median of {args.rounds} bracketed rounds): wall "
          f"{100 * out['overhead_wall']:+.1f}%, CPU-seconds per step {100 * out['overhead_cpu']:+.1f}% "
          f"(rounds: {', '.join(f'{100 * v:+.1f}%' for v in out['overhead_cpu_rounds'])}; target <= 10%)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
