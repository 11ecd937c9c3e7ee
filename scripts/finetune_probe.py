"""Recipe probe for fine-tuning: a job's model, data, batches (`finetune.batches.ExampleBatches`),
optimizer and metrics stepped in a plain PyTorch loop (no Ray, no MLflow, no k-mer baseline),
validating every few steps and printing the validation metrics against CPU minutes, so that
recipes can be compared per CPU-minute before a real `hyena finetune` run.

    python scripts/finetune_probe.py jobs/finetune_species.yaml --init-from BASE_DIR \\
        --set train.batch_size=16 --set train.lr=3e-3 --minutes 8 --eval-every 50

The schedule (warm-up + cosine) is the job's own over its full `train.steps`/`train.epochs`, so
a probe cut short by `--minutes` shows the early part of that run's curve. `--valid-limit`
validates on a seeded subset (faster; the whole split by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def load(args):
    from hyena_platform.finetune.config import load_finetune_job
    from hyena_platform.finetune.launch import (
        build_start_model,
        class_weights,
        fit_data_lengths,
        load_data,
        plan_steps,
        resolve_base,
    )

    sets = list(args.set) + ([f"model.init_from={args.init_from}"] if args.init_from else [])
    job = load_finetune_job(args.job, sets)
    data = load_data(job)
    base = resolve_base(job, job.tracking.resolved().uri, Path(tempfile.mkdtemp(prefix="probe-")), source=args.job)
    model = build_start_model(job, base, data, source=args.job)
    fit_data_lengths(job, data, model.config.l_max)
    plan = plan_steps(job, len(data.splits["train"]), source=args.job)
    weights = class_weights(job, data, source=args.job)
    return job, data, model, plan, weights


def start_from_probe(model, data, job, weights) -> None:
    """`train.head_init: probe` as the workers do it (finetune.loop.start_from_probe), one process."""
    from hyena_platform.finetune.probe import fit_into_head, split_features

    kw = dict(task=job.task.type, problem_type=job.task.problem_type, batch_size=job.train.eval_batch,
              seed=job.train.seed)
    train, valid = data.splits["train"], data.splits["valid"]
    probe = fit_into_head(model, split_features(model, train, range(len(train)),
                                                both_strands=job.train.reverse_complement, **kw),
                          split_features(model, valid, range(len(valid)), **kw), problem_type=job.task.problem_type,
                          metric=job.metric, class_weights=weights)
    print(json.dumps({"step": 0, "probe_C": probe.C, **{k: round(v, 4) for k, v in probe.valid_metrics.items()}}),
          flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("job")
    p.add_argument("--init-from", default="", help="base checkpoint (overrides model.init_from)")
    p.add_argument("--set", action="append", default=[], help="job override a.b=value (repeatable)")
    p.add_argument("--minutes", type=float, default=8.0, help="stop after this many CPU minutes")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--valid-limit", type=int, default=0, help="validate on this many examples (0 = all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="append one JSON line per validation here")
    args = p.parse_args(argv)

    from hyena_platform.finetune.batches import ExampleBatches
    from hyena_platform.finetune.evaluate import split_metrics, split_scores
    from hyena_platform.train.loop import build_optimizer

    torch.set_num_threads(args.threads)
    job, data, model, plan, weights = load(args)
    total, per_epoch = plan["total_steps"], plan["steps_per_epoch"]
    if job.train.head_init == "probe":
        start_from_probe(model, data, job, weights)
    if job.train.freeze_backbone:
        model.freeze_backbone(True)
    optimizer, scheduler = build_optimizer(model, replace(job.train, steps=total))
    loss_kwargs = {} if weights is None else {"class_weights": torch.tensor(weights)}
    train, valid = data.splits["train"], data.splits["valid"]
    rng = np.random.default_rng(1)
    valid_idx = (np.sort(rng.choice(len(valid), args.valid_limit, replace=False))
                 if 0 < args.valid_limit < len(valid) else np.arange(len(valid)))
    print(f"{args.job} {' '.join(args.set)}: {len(train)} train, {len(valid_idx)} valid examples, "
          f"{per_epoch} steps/epoch, schedule over {total} steps", flush=True)
    c0, w0 = time.process_time(), time.perf_counter()
    batches = ExampleBatches(train, task=job.task.type, problem_type=job.task.problem_type, per_epoch=per_epoch,
                             global_batch=job.train.batch_size, rank=0, world=1, seed=job.train.seed,
                             reverse_complement=job.train.reverse_complement).batches_for(None, 0)
    for step in range(1, total + 1):
        model.train()
        b = next(batches)
        loss = model(b["input_ids"], b["attention_mask"], b["labels"], **loss_kwargs).loss
        loss.backward()
        if job.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), job.train.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        cpu_min = (time.process_time() - c0) / 60
        if step % args.eval_every == 0 or cpu_min >= args.minutes or step == total:
            labels, scores = split_scores(model, valid, valid_idx, task=job.task.type,
                                          problem_type=job.task.problem_type, batch_size=job.train.eval_batch)
            m = split_metrics(labels, scores, job.task.problem_type)
            row = {"step": step, "epoch": round(step / per_epoch, 3), "loss": round(float(loss.detach()), 4),
                   "cpu_min": round((time.process_time() - c0) / 60, 2),
                   "wall_min": round((time.perf_counter() - w0) / 60, 2), **{k: round(v, 4) for k, v in m.items()}}
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({"job": args.job, "set": args.set, **row}) + "\n")
            if cpu_min >= args.minutes:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
