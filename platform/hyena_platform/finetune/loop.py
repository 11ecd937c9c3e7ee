"""The per-worker fine-tuning loop (runs inside Ray Train workers).

Reuses the pretraining machinery: the HyenaDNA optimizer groups and warm-up + cosine schedule
(`train.loop.build_optimizer`), the checkpoint directory layout and resume (`train.state`:
model/, trainer.pt, meta.json, rank files), DDP through `ray.train.torch.prepare_model`, and
the controller-side single MLflow writer (reports carry the metrics). What is new is small:
batches of labelled examples, validation with task metrics, the best model so far (kept in
memory and in every checkpoint as best/), early stopping, and the test split on the best model.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from hyena_platform.finetune.batches import collate, worker_indices
from hyena_platform.finetune.evaluate import split_metrics, split_scores
from hyena_platform.finetune.metrics import better
from hyena_platform.train.loop import build_optimizer
from hyena_platform.train.state import DataPosition, load_rank, load_shared, read_meta, save_rank, save_shared

BEST_DIR = "best"


@dataclass
class Progress:
    """What a checkpoint carries beyond the model and optimizer."""

    step: int = 0
    best_value: float | None = None
    best_step: int = 0
    evals_since_best: int = 0
    stopped_early: bool = False


def finetune_loop_per_worker(config: dict) -> dict:
    import ray.train
    import ray.train.torch

    job, plan = config["job"], config["plan"]
    torch.set_num_threads(job.scaling.torch_threads)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    data = ray.get(config["data"])
    model, optimizer, scheduler = build_model(config, device)
    progress, best_state = restore(model, optimizer, scheduler, rank)
    ddp = ray.train.torch.prepare_model(model) if world > 1 else model
    use_bf16 = job.train.precision == "bf16" or (job.train.precision == "auto" and device.type == "cuda")
    autocast = partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext
    weights = config["class_weights"]
    class_weights = torch.tensor(weights, device=device) if weights is not None else None
    history: list[dict] = []
    t_prev, c_prev = time.perf_counter(), time.process_time()  # step time includes the last report

    while progress.step < plan["total_steps"] and not progress.stopped_early:
        row = train_step(ddp, model, optimizer, scheduler, data["train"], progress.step, job, plan, rank, world,
                         device, autocast, class_weights)
        progress.step += 1
        now, cpu = time.perf_counter(), time.process_time()
        row.update(step=progress.step, epoch=progress.step / plan["steps_per_epoch"], step_s=now - t_prev,
                   cpu_s=cpu - c_prev, examples_per_s=job.train.batch_size / (now - t_prev))
        t_prev, c_prev = now, cpu
        if rank == 0:
            history.append(row)
        if not math.isfinite(row["loss"]):
            report(history, progress, rank, event="stopped",
                   message=f"non-finite loss ({row['loss']}) at step {progress.step}; lower train.lr or check the labels")
            return {"status": "stopped", "step": progress.step}
        if progress.step % plan["eval_every"] == 0 or progress.step == plan["total_steps"]:
            metrics = evaluate(model, data["valid"], job, rank, world, device, autocast)
            best_state = track_best(model, metrics[job.metric], progress, best_state, job.train.patience)
            val = [{"step": progress.step, **metrics}]
            save(model, optimizer, scheduler, best_state, progress, rank, history, val, event="eval")
            history = []
        elif progress.step % job.train.log_every == 0:
            report(history, progress, rank)
            history = []
    return finish(model, best_state, data, job, progress, rank, world, device, autocast, optimizer, scheduler)


def build_model(config: dict, device) -> tuple[torch.nn.Module, Any, Any]:
    import ray

    from hyena import HyenaConfig
    from hyena.heads import TASK_MODELS, HeadConfig

    job = config["job"]
    model = TASK_MODELS[job.task.type](HyenaConfig.from_dict(config["model_config"]),
                                       HeadConfig.from_dict(config["head_config"]))
    model.load_state_dict(ray.get(config["init_weights"]))
    model.freeze_backbone(job.train.freeze_backbone)
    model.to(device)
    schedule = replace(job.train, steps=config["plan"]["total_steps"])  # build_optimizer reads train.steps
    optimizer, scheduler = build_optimizer(model, schedule)
    return model, optimizer, scheduler


def restore(model, optimizer, scheduler, rank: int) -> tuple[Progress, dict | None]:
    """Resume from Ray Train's latest checkpoint (a restarted worker group or a rerun)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return Progress(), None
    with checkpoint.as_directory() as directory:
        directory = Path(directory)
        load_shared(directory, model, optimizer, scheduler)
        load_rank(directory, rank)
        progress = Progress(**read_meta(directory)["progress"])
        best_state = None
        if (directory / BEST_DIR).is_dir():
            best_state = {k: v.clone() for k, v in type(model).from_pretrained(directory / BEST_DIR).state_dict().items()}
    return progress, best_state


def train_step(ddp, model, optimizer, scheduler, split, step: int, job, plan, rank: int, world: int, device,
               autocast, class_weights) -> dict:
    indices = worker_indices(len(split), step, per_epoch=plan["steps_per_epoch"], global_batch=job.train.batch_size,
                             rank=rank, world=world, seed=job.train.seed)
    batch = collate(split, indices, task=job.task.type, problem_type=job.task.problem_type)
    ddp.train()
    with autocast():
        out = ddp(batch["input_ids"].to(device), batch["attention_mask"].to(device), batch["labels"].to(device),
                  class_weights=class_weights)
    out.loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    clip = job.train.grad_clip if job.train.grad_clip > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(params, clip)
    stats = torch.stack([out.loss.detach().float(), norm.detach().float()])
    if world > 1:
        torch.distributed.all_reduce(stats)
        stats /= world
    lr = optimizer.param_groups[0]["lr"]
    if math.isfinite(float(stats[0])):
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": float(stats[0]), "grad_norm": float(stats[1]), "lr": lr,
            "tokens": int(batch["attention_mask"].sum()) * world}


def evaluate(model, split, job, rank: int, world: int, device, autocast) -> dict[str, float]:
    """Task metrics over a split; worker r scores examples r, r + world, ...; all see the result."""
    import numpy as np

    labels, scores = split_scores(model, split, range(rank, len(split), world), task=job.task.type,
                                  problem_type=job.task.problem_type, batch_size=job.train.eval_batch,
                                  device=device, autocast=autocast)
    if world > 1:
        gathered: list[Any] = [None] * world
        torch.distributed.all_gather_object(gathered, (labels, scores))
        labels = np.concatenate([g[0] for g in gathered])
        scores = np.concatenate([g[1] for g in gathered])
    return split_metrics(labels, scores, job.task.problem_type)


def track_best(model, value: float, progress: Progress, best_state: dict | None, patience: int | None) -> dict | None:
    """Keep the best weights (CPU copy); count validations without improvement."""
    if better("", value, progress.best_value) or best_state is None:
        progress.best_value, progress.best_step, progress.evals_since_best = value, progress.step, 0
        return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    progress.evals_since_best += 1
    if patience is not None and progress.evals_since_best >= patience:
        progress.stopped_early = True
    return best_state


def save(model, optimizer, scheduler, best_state, progress: Progress, rank: int, history, val,
         *, event: str = "progress", extra: dict | None = None, suffix: str = "") -> None:
    import ray.train

    with tempfile.TemporaryDirectory(prefix="hyena-ft-ckpt-") as tmp:
        directory = Path(tmp)
        if rank == 0:
            save_shared(directory, model, optimizer, scheduler, step=progress.step,
                        meta={"progress": dict(progress.__dict__)})
            _save_best(model, best_state, directory / BEST_DIR)
        save_rank(directory, rank, DataPosition(0, progress.step))
        ray.train.report(_metrics(history, val, progress, rank, event, extra),
                         checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=f"checkpoint_{progress.step:08d}{suffix}")


def _save_best(model, best_state: dict | None, directory: Path) -> None:
    current = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.save_pretrained(directory)
    model.load_state_dict(current)


def report(history, progress: Progress, rank: int, *, event: str = "progress", message: str | None = None) -> None:
    import ray.train

    ray.train.report(_metrics(history, [], progress, rank, event, {"message": message} if message else None))


def _metrics(history, val, progress: Progress, rank: int, event: str, extra: dict | None) -> dict:
    out = {"step": progress.step, "event": event, "rank": rank}
    if rank == 0:
        out.update(history=history, val=val, best_value=progress.best_value, best_step=progress.best_step,
                   stopped_early=progress.stopped_early, **(extra or {}))
    return out


def finish(model, best_state, data, job, progress: Progress, rank: int, world: int, device, autocast,
           optimizer, scheduler) -> dict:
    """The best weights on valid and test, and a last checkpoint holding them (model/ and best/)."""
    import ray.train

    if best_state is not None:
        model.load_state_dict(best_state)
    extra = {"test": evaluate(model, data["test"], job, rank, world, device, autocast),
             "best_valid": evaluate(model, data["valid"], job, rank, world, device, autocast)}
    save(model, optimizer, scheduler, None, progress, rank, [], [], event="done", extra=extra, suffix="_final")
    ray.train.report({"event": "flush", "step": progress.step, "rank": rank})  # see train.loop._flush_reports
    return {"status": "done", "step": progress.step, **extra}
