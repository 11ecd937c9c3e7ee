"""Training throughput: Ray Train against a plain PyTorch loop of the same model and batch.

    .venv/bin/python bench/bench_train.py                  # tiny-1k at 1024 tokens, ~4 minutes on 2 cores
    .venv/bin/python bench/bench_train.py --quick          # d_model 64, fewer steps (~2 minutes)
    .venv/bin/python bench/bench_train.py --json out.json

In one process, with the same model, batch, optimizer (AdamW groups, cosine schedule, grad clip)
and torch threads per worker:

1. plain loop: one process, pre-made batches, no Ray (the baseline), measured before and after
   the Ray runs (this machine is shared: the mean of the two brackets the drift);
2. Ray Train, 1 worker: the full `hyena pretrain` path (Ray Data windows from the bundled
   genome, DDP wrapper off at world size 1, reports every `log_every` steps, MLflow logging by
   the controller, a checkpoint at the end);
3. Ray Train, 2 workers (DDP over gloo), same global batch.

Steady state = steps after the first `--skip` (Ray Data start-up, first-call allocations).
Prints tokens/s, the Ray overhead vs the plain loop, the per-step time split (data wait,
compute, report and other) and the 1 -> 2 worker scaling. Ratios only: no assertion.
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


def job_mapping(tmp: Path, name: str, *, d_model: int, length: int, micro: int, global_batch: int, steps: int,
                workers: int, threads: int, log_every: int) -> dict:
    return {
        "model": {"variant": "tiny-1k", "overrides": {"d_model": d_model, "d_inner": 4 * d_model}},
        "data": {},
        "train": {"stages": [{"length": length, "steps": steps, "micro_batch": micro}],
                  "global_batch": global_batch, "micro_batch": micro, "log_every": log_every,
                  "val_windows": 4, "baseline_orders": []},
        "scaling": {"num_workers": workers, "cpus_per_worker": 0.5 if workers > 1 else 1.0,
                    "threads_per_worker": threads},
        "checkpoint": {"every_steps": 10 * steps, "keep": 1, "storage_path": str(tmp / "runs"), "name": name},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "register_as": "bench"},
    }


def plain_loop(job, *, steps: int, skip: int, threads: int) -> dict:
    """The same model/optimizer/batch in one process, no Ray, no data pipeline."""
    from hyena import HyenaDNAForCausalLM
    from hyena_platform.train.loop import build_optimizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(job.model.hyena_config())
    optimizer, scheduler = build_optimizer(model, job.train)
    stage = job.stages(model.config.l_max)[0]
    accum = job.train.global_batch // stage.micro_batch  # one process does every worker's share
    batches = [torch.randint(7, 12, (stage.micro_batch, stage.length + 1)) for _ in range(accum)]

    def backward(step: int) -> None:
        for b in batches:
            (model(b[:, :-1], labels=b[:, 1:]).loss / accum).backward()

    times, cpu = timed_steps(steps, backward, model, optimizer, scheduler, job.train.grad_clip)
    steady = times[skip:]
    tokens = job.train.global_batch * stage.length
    return {"tokens_per_s": tokens * len(steady) / sum(steady), "step_s": statistics.mean(steady),
            "cpu_s": statistics.mean(cpu[skip:])}


def ray_run(job, name: str, *, skip: int) -> dict:
    from mlflow import MlflowClient  # bench only: reads the metrics the run logged

    from hyena_platform.train.launch import run_pretrain

    t0 = time.perf_counter()
    result = run_pretrain(job, source=f"{name}.yaml")
    wall = time.perf_counter() - t0
    c = MlflowClient(result.tracking_uri)

    def hist(key):
        return {m.step: m.value for m in c.get_metric_history(result.run_id, key)}

    time_s, data_s, compute_s, cpu_s = (hist(f"train/{k}") for k in ("time_s", "data_s", "compute_s", "cpu_s"))
    report_s = hist("train/report_s")
    last = max(time_s)
    steady = [s for s in range(skip + 1, last + 1)]
    tokens = job.train.global_batch * job.train.stages[0].length * len(steady)
    elapsed = time_s[last] - time_s[skip]
    mean = lambda d: statistics.mean(d[s] for s in steady)  # noqa: E731
    split = {"data_s": mean(data_s), "compute_s": mean(compute_s)}
    reports = [v for s, v in report_s.items() if s > skip]
    split["report_s"] = sum(reports) / len(steady) if reports else 0.0
    split["other_s"] = elapsed / len(steady) - split["data_s"] - split["compute_s"] - split["report_s"]
    return {"tokens_per_s": tokens / elapsed, "step_s": elapsed / len(steady), "split": split,
            "cpu_s": mean(cpu_s),  # rank 0's process
            "wall_s": wall, "timings": result.timings}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d_model 64, 30 steps")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the steady state")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import ray

    from hyena_platform.train.config import job_from_mapping

    d_model = 64 if args.quick else 128
    steps = args.steps or (30 if args.quick else 40)
    length, micro, global_batch, log_every = 1024, 4, 8, 10
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    import logging

    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)

    out: dict = {"config": {"d_model": d_model, "length": length, "micro_batch": micro, "global_batch": global_batch,
                            "steps": steps, "skip": args.skip, "log_every": log_every, "cpus": os.cpu_count(),
                            "torch": torch.__version__, "ray": ray.__version__}}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        kw = dict(d_model=d_model, length=length, micro=micro, global_batch=global_batch, steps=steps,
                  log_every=log_every)
        one = job_from_mapping(job_mapping(tmp, "w1", workers=1, threads=1, **kw), source="bench")
        two = job_from_mapping(job_mapping(tmp, "w2", workers=2, threads=1, **kw), source="bench")
        print(f"tiny-1k d_model={d_model}, {length} tokens x global batch {global_batch} "
              f"(micro-batch {micro}), {steps} steps, steady state after {args.skip}", flush=True)
        before = plain_loop(one, steps=steps, skip=args.skip, threads=1)
        print(f"plain loop, 1 thread:     {before['tokens_per_s']:9,.0f} tokens/s", flush=True)
        r1 = ray_run(one, "w1", skip=args.skip)
        print(f"Ray Train, 1 worker:      {r1['tokens_per_s']:9,.0f} tokens/s", flush=True)
        r2 = ray_run(two, "w2", skip=args.skip)
        print(f"Ray Train, 2 workers:     {r2['tokens_per_s']:9,.0f} tokens/s", flush=True)
        after = plain_loop(one, steps=steps, skip=args.skip, threads=1)
        print(f"plain loop, 1 thread:     {after['tokens_per_s']:9,.0f} tokens/s (again)", flush=True)
        plain2 = plain_loop(one, steps=steps, skip=args.skip, threads=2)
        print(f"plain loop, 2 threads:    {plain2['tokens_per_s']:9,.0f} tokens/s", flush=True)

    plain = (before["tokens_per_s"] + after["tokens_per_s"]) / 2
    overhead = 1 - r1["tokens_per_s"] / plain
    out.update(plain_1thread=[before, after], plain_2threads=plain2, ray_1worker=r1, ray_2workers=r2,
               ray_overhead=overhead, scaling_1_to_2=r2["tokens_per_s"] / r1["tokens_per_s"])
    print()
    print(f"Ray overhead, 1 worker vs plain loop: {100 * overhead:+.1f}% (target <= 10%)")
    print(f"1 -> 2 workers: x{out['scaling_1_to_2']:.2f} tokens/s (2 threads in one process: "
          f"x{plain2['tokens_per_s'] / plain:.2f})")
    plain_cpu = (before["cpu_s"] + after["cpu_s"]) / 2
    out["cpu_ratio_1worker"] = r1["cpu_s"] / plain_cpu
    print(f"CPU-seconds per step (load-independent): plain loop {plain_cpu:.3f}, Ray worker {r1['cpu_s']:.3f} "
          f"(x{out['cpu_ratio_1worker']:.3f}); 2 workers: {r2['cpu_s']:.3f} per worker for half the batch")
    for label, r in (("1 worker", r1), ("2 workers", r2)):
        s = r["split"]
        print(f"per step, {label:9s}: {r['step_s'] * 1000:7.1f} ms = data wait {s['data_s'] * 1000:6.1f} + "
              f"compute {s['compute_s'] * 1000:7.1f} + report {s['report_s'] * 1000:5.1f} + other "
              f"{s['other_s'] * 1000:5.1f} ms   (driver phases: "
              + ", ".join(f"{k} {v:.1f}s" for k, v in r["timings"].items()) + ")")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
