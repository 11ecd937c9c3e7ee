"""The per-worker training loop (runs inside Ray Train workers).

One call of `train_loop_per_worker` per worker process. It builds the model, wraps it in DDP
(gloo on CPU, NCCL on GPU, set up by TorchTrainer), restores the latest checkpoint if Ray Train
has one (a restarted worker group, or a rerun of the same job), then runs optimizer steps,
stage by stage, where the stage is a function of the global step.

Reports: every `train.log_every` steps, at each checkpoint, at each validation and at the end,
all workers call ``ray.train.report`` (a barrier). Rank 0's report carries the per-step metrics
since the previous report; the controller-side callback logs them to MLflow (the single writer).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import torch

from hyena_platform.train.schedule import Stage, lr_factor, stage_at
from hyena_platform.train.state import (
    DataPosition,
    load_rank,
    load_shared,
    read_meta,
    read_position,
    read_reported,
    save_rank,
    save_reported,
    save_shared,
)

PAD_ID = 4


class NonFiniteLoss(Exception):
    """Raised inside the loop body; turned into a clean stop report (no retry)."""


def build_optimizer(model: torch.nn.Module, train) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with the HyenaDNA weight-decay groups and the warm-up + cosine schedule."""
    from hyena import param_groups

    fused = next(model.parameters()).is_cuda
    optimizer = torch.optim.AdamW(
        param_groups(model, train.weight_decay), lr=train.lr, betas=tuple(train.betas), fused=fused or None,
    )
    total = train_total_steps(train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total=total, warmup_fraction=train.warmup_fraction,
                           min_ratio=train.min_lr_ratio),
    )
    return optimizer, scheduler


def train_total_steps(train) -> int:
    return train.steps if train.steps is not None else sum(s.steps for s in train.stages)


def train_loop_per_worker(config: dict) -> dict:
    """Returns (rank 0's is kept by Ray Train) {"status": "done" | "stopped", "step", "message"}."""
    import ray
    import ray.train
    import ray.train.torch
    from hyena import HyenaConfig, HyenaDNAForCausalLM

    job = config["job"]
    stages: tuple[Stage, ...] = tuple(config["stages"])
    total = stages[-1].end_step
    train = job.train
    torch.set_num_threads(job.scaling.torch_threads)

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(train.seed)  # identical initial weights on every rank (DDP also broadcasts)

    # Start this attempt's first stage's data now, so Ray Data's start-up overlaps model set-up.
    checkpoint = ray.train.get_checkpoint()
    start_step, start_position = 0, None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start_step = read_meta(directory)["step"]
            start_position = read_position(Path(directory), rank)
    upcoming: _Prefetched | None = None
    if start_step < total:
        first = stage_at(stages, start_step)
        upcoming = _Prefetched(ray.train.get_dataset_shard(f"train_{first.index}"), first,
                               _skip(first, start_step, start_position))

    model = HyenaDNAForCausalLM(HyenaConfig.from_dict(config["model_config"]))
    if config.get("init_weights") is not None:
        model.load_state_dict(ray.get(config["init_weights"]))
    if train.activation_checkpointing:
        model.set_activation_checkpointing(True)
    model.to(device)
    optimizer, scheduler = build_optimizer(model, train)

    step, position, resumed_from, replay = 0, None, None, {}
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            step = load_shared(Path(directory), model, optimizer, scheduler)
            position = load_rank(Path(directory), rank)
            replay = read_reported(Path(directory)) if rank == 0 else {}
        resumed_from = step
    if position is None:
        # Fresh start (or a rank that did not exist before): seed the data-side randomness per rank.
        torch.manual_seed(train.seed * 1000 + 17 + rank)

    ddp = ray.train.torch.prepare_model(model) if world > 1 else model
    use_bf16 = train.precision == "bf16" or (train.precision == "auto" and device.type == "cuda")
    autocast = (partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
                if use_bf16 else contextlib.nullcontext)
    val_sets = config["val_sets"]  # length -> ObjectRef of (input_ids, labels) numpy arrays

    # On resume, the metrics reported with the checkpoint go out again (logged only if missing).
    history: list[dict] = list(replay.get("history", []))
    val_results: list[dict] = list(replay.get("val", []))
    last_report_s = 0.0
    current: Stage | None = None
    batches: Iterator[dict] | None = None
    consumed = 0
    t_start = t_prev = time.perf_counter()
    cpu_prev = time.process_time()  # this worker process's CPU time, all its threads

    def report(event: str, *, save: bool, extra: dict | None = None) -> None:
        nonlocal history, val_results, events, last_report_s
        stage = stage_at(stages, step)
        metrics = {"step": step, "stage": stage.index, "event": event, "pid": os.getpid(), "rank": rank}
        if rank == 0:
            metrics.update(history=history, val=val_results, events=events, last_report_s=last_report_s,
                           **(extra or {}))
        t0 = time.perf_counter()
        if save:
            with tempfile.TemporaryDirectory(prefix="hyena-ckpt-") as tmp:
                tmp_path = Path(tmp)
                if rank == 0:
                    save_shared(tmp_path, model, optimizer, scheduler, step=step,
                                meta={"stage": stage.index, "total_steps": total, "length": stage.length})
                    save_reported(tmp_path, {"history": history, "val": val_results})
                save_rank(tmp_path, rank, DataPosition(current.index if current else stage.index, consumed))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                                 checkpoint_dir_name=f"checkpoint_{step:08d}")
        else:
            ray.train.report(metrics)
        last_report_s = time.perf_counter() - t0
        # New lists: the reported dict may be serialised after report() returns.
        history, val_results, events = [], [], []

    events: list[dict] = []
    if resumed_from is not None:
        events.append({"type": "resumed", "step": resumed_from})

    while step < total:
        stage = stage_at(stages, step)
        if current is None or stage.index != current.index:
            if upcoming is not None and upcoming.stage.index == stage.index:
                batches, consumed = upcoming, upcoming.skip
            else:  # not expected: the first stage and every next one are prefetched
                skip = _skip(stage, step, position)
                batches = _stage_batches(ray.train.get_dataset_shard(f"train_{stage.index}"), stage, skip)
                consumed = skip
            current = stage
            # Start the next stage's data now (its windows are shuffled before the first batch comes
            # out), so the stage change does not wait for it.
            upcoming = None
            if stage.index + 1 < len(stages):
                following = stages[stage.index + 1]
                upcoming = _Prefetched(ray.train.get_dataset_shard(f"train_{following.index}"), following, 0)
        assert batches is not None

        # ---- one optimizer step: grad_accum micro-batches per worker
        data_s = compute_s = 0.0
        loss_sum = torch.zeros((), device=device)
        tokens = torch.zeros((), device=device)
        ddp.train()
        for micro in range(stage.grad_accum):
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            data_s += t1 - t0
            x = batch["input_ids"].to(device, non_blocking=True)  # (B, L)
            y = batch["labels"].to(device, non_blocking=True)  # (B, L)
            last = micro == stage.grad_accum - 1
            sync = contextlib.nullcontext() if (last or ddp is model) else ddp.no_sync()
            with sync:
                with autocast():
                    loss = ddp(x, labels=y).loss / stage.grad_accum
                loss.backward()
            loss_sum += loss.detach()
            tokens += (y != PAD_ID).sum()
            consumed += 1
            compute_s += time.perf_counter() - t1
        t2 = time.perf_counter()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), train.grad_clip if train.grad_clip > 0 else float("inf")
        )
        stats = torch.stack([loss_sum.float(), tokens.float(), grad_norm.float()])
        if world > 1:
            torch.distributed.all_reduce(stats)
        global_loss = float(stats[0]) / world
        global_tokens = int(stats[1])
        norm = float(stats[2]) / world
        if not (math.isfinite(global_loss) and math.isfinite(norm)):
            optimizer.zero_grad(set_to_none=True)
            message = (f"non-finite loss ({global_loss}) or gradient norm ({norm}) at step {step + 1} "
                       f"(stage {stage.index}, length {stage.length}); the weights were not updated")
            report("stopped", save=False, extra={"message": message})
            _flush_reports(rank, step)
            return {"status": "stopped", "step": step, "message": message}
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        compute_s += time.perf_counter() - t2
        now = time.perf_counter()
        step_s = now - t_prev
        t_prev = now
        cpu_now = time.process_time()
        cpu_s, cpu_prev = cpu_now - cpu_prev, cpu_now
        if rank == 0:
            history.append({
                "step": step, "loss": global_loss, "lr": lr, "grad_norm": norm, "stage": stage.index,
                "seq_len": stage.length, "tokens": global_tokens, "tokens_per_s": global_tokens / step_s,
                "step_s": step_s, "data_s": data_s, "compute_s": compute_s, "cpu_s": cpu_s,
                "time_s": now - t_start,
            })

        # ---- validation: at the end of every stage, and every val_every steps
        stage_done = step == stage.end_step
        if stage_done or (train.val_every and step % train.val_every == 0):
            loss, count = _validate(model, ray.get(val_sets[stage.length]), rank, world, stage.micro_batch,
                                    device, autocast)
            if rank == 0:
                val_results.append({"step": step, "stage": stage.index, "seq_len": stage.length,
                                    "loss": loss, "tokens": count, "stage_end": stage_done})
        save = step % job.checkpoint.every_steps == 0 or step == total
        if save or stage_done or step % train.log_every == 0:
            report("done" if step == total else "progress", save=save)  # its time counts in the next step_s

    if resumed_from == total:
        report("done", save=False)  # rerun of a finished run: nothing to do
    _flush_reports(rank, step)
    return {"status": "done", "step": step, "message": ""}


def _flush_reports(rank: int, step: int) -> None:
    """One last, empty report. A worker's report sits in a one-slot queue that the controller
    polls; a poll racing with the end of the training thread can see "no report, not running"
    and finish the run without the last report. This report blocks until the real last one
    was taken, and is itself safe to lose."""
    import ray.train

    ray.train.report({"event": "flush", "step": step, "rank": rank})


def _stage_batches(shard, stage: Stage, skip: int) -> Iterator[dict]:
    """Micro-batches of this worker's shard of a stage, repeating epochs, after `skip` batches."""
    skipped = 0
    while True:
        produced = False
        for batch in shard.iter_torch_batches(batch_size=stage.micro_batch, drop_last=True,
                                              dtypes=torch.int64, prefetch_batches=2):
            produced = True
            if skipped < skip:
                skipped += 1
                continue
            yield batch
        if not produced:
            raise RuntimeError(
                f"stage {stage.index} (length {stage.length}) has no training windows for this worker; "
                "the training split is too small for this length and batch"
            )


def _skip(stage: Stage, step: int, position: DataPosition | None) -> int:
    """Micro-batches of `stage` this worker already consumed when `step` steps are done."""
    if position is not None and position.stage == stage.index:
        return position.micro_batches
    return (step - stage.start_step) * stage.grad_accum


class _Prefetched:
    """A stage's micro-batches (after `skip`), the first one fetched in a background thread
    started now."""

    def __init__(self, shard, stage: Stage, skip: int):
        self.stage = stage
        self.skip = skip
        self._it = _stage_batches(shard, stage, skip)
        self._first: list = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._fetch, daemon=True, name=f"prefetch-stage-{stage.index}")
        self._thread.start()

    def _fetch(self) -> None:
        try:
            self._first.append(next(self._it))
        except BaseException as err:  # handed to the training thread on first use
            self._error.append(err)

    def __iter__(self) -> "_Prefetched":
        return self

    def __next__(self) -> dict:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._error:
                raise self._error[0]
            return self._first.pop()
        return next(self._it)


@torch.no_grad()
def _validate(model, data, rank: int, world: int, batch_size: int, device, autocast) -> tuple[float, int]:
    """Mean next-token cross-entropy (nats) over non-pad labels of the held-out windows.

    Rank r evaluates windows r, r + world, ...; sums are all-reduced so every rank gets the result.
    """
    import torch.nn.functional as F

    input_ids, labels = data
    input_ids, labels = input_ids[rank::world], labels[rank::world]
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for i in range(0, len(input_ids), batch_size):
        x = torch.as_tensor(input_ids[i:i + batch_size], dtype=torch.int64, device=device)
        y = torch.as_tensor(labels[i:i + batch_size], dtype=torch.int64, device=device)
        with autocast():
            logits = model(x).logits
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                              ignore_index=PAD_ID, reduction="sum")
        total += torch.stack([nll.double(), (y != PAD_ID).sum().double()])
    if world > 1:
        torch.distributed.all_reduce(total)
    model.train(was_training)
    count = int(total[1])
    return (float(total[0]) / count if count else math.nan), count
