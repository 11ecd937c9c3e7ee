"""The per-worker training loop (runs inside Ray Train workers), as a handful of reusable steps.

One call of `train_loop_per_worker` per worker process; it reads like its table of contents:

    worker = set_up_worker(cfg)              # threads, rank, device, restore, model, optimizer, DDP
    while worker.step < total:
        batches = data.batches_for(stage)    # StageData: this stage's shard, next one prefetched
        stats = train_step(worker, stage, batches)
        validate_if_due(...)                 # held-out loss at stage ends and every val_every
        reporter.report(...)                 # Reporter: metrics + checkpoint to ray.train.report

A fine-tuning job (hyena_platform.finetune.loop) reuses these as they are: its `WorkerConfig`
names a task head (`head`, `task`), its batches carry an ``attention_mask`` and its loss takes
class weights (`Worker.loss_kwargs`); `set_up_worker`, `train_step`, `Reporter`,
`save_checkpoint` and `flush_reports` do not know which objective the model's ``labels`` train.

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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from hyena.tokenizer import PAD
from hyena_platform.train.config import OptimizerSection
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


@dataclass(frozen=True)
class WorkerConfig:
    """What a training worker needs, and nothing more (not the whole job)."""

    train: OptimizerSection  # the job's train section (pretraining's or fine-tuning's)
    stages: tuple[Stage, ...]
    model_config: dict[str, Any]  # HyenaConfig.to_dict()
    checkpoint_every: int  # optimizer steps between checkpoints
    torch_threads: int
    init_weights: Any = None  # ObjectRef of a state dict, or None: fresh weights
    val_sets: dict[int, Any] = field(default_factory=dict)  # length -> ObjectRef of (input_ids, labels)
    head: dict[str, Any] | None = None  # hyena.heads.HeadConfig.to_dict(): a task model instead of the LM
    task: str = ""  # with head: "sequence" or "token" (hyena.heads.TASK_MODELS)
    freeze_backbone: bool = False  # with head: train the head only

    @property
    def total_steps(self) -> int:
        return self.stages[-1].end_step


def build_optimizer(model: torch.nn.Module, train: OptimizerSection) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with the HyenaDNA weight-decay groups and the warm-up + cosine schedule."""
    from hyena import param_groups

    fused = next(model.parameters()).is_cuda
    optimizer = torch.optim.AdamW(
        param_groups(model, train.weight_decay), lr=train.lr, betas=tuple(train.betas), fused=fused or None,
    )
    total = train.steps if train.steps is not None else sum(s.steps for s in train.stages)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total=total, warmup_fraction=train.warmup_fraction,
                           min_ratio=train.min_lr_ratio),
    )
    return optimizer, scheduler


# ------------------------------------------------------------------------------- set-up


@dataclass
class Worker:
    """One worker's model, optimizer and place in the run."""

    cfg: WorkerConfig
    rank: int
    world: int
    device: torch.device
    model: torch.nn.Module
    ddp: torch.nn.Module  # the model wrapped in DDP (the model itself with one worker)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast: Callable[[], Any]
    step: int = 0
    position: DataPosition | None = None  # restored data position of this rank
    resumed_from: int | None = None
    replay: dict[str, Any] = field(default_factory=dict)  # metrics reported with the checkpoint
    loss_kwargs: dict[str, Any] = field(default_factory=dict)  # extra loss arguments (class_weights)


def set_up_worker(cfg: WorkerConfig) -> Worker:
    """Threads, rank, device, model (fresh, initial weights or the checkpoint's), optimizer, DDP."""
    import ray.train
    import ray.train.torch

    torch.set_num_threads(cfg.torch_threads)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank (DDP also broadcasts)
    model = build_model(cfg)
    if cfg.init_weights is not None:
        model.load_state_dict(ray.get(cfg.init_weights))
    if cfg.freeze_backbone:
        model.freeze_backbone(True)
    if cfg.train.activation_checkpointing:
        model.set_activation_checkpointing(True)
    model.to(device)
    optimizer, scheduler = build_optimizer(model, cfg.train)
    use_bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and device.type == "cuda")
    autocast = (partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
                if use_bf16 else contextlib.nullcontext)
    worker = Worker(cfg, rank, world, device, model, model, optimizer, scheduler, autocast)
    restore(worker)
    if worker.position is None:
        # Fresh start (or a rank that did not exist before): seed the data-side randomness per rank.
        torch.manual_seed(cfg.train.seed * 1000 + 17 + rank)
    worker.ddp = ray.train.torch.prepare_model(model) if world > 1 else model
    return worker


def build_model(cfg: WorkerConfig) -> torch.nn.Module:
    """The language model, or with `cfg.head` a hyena.heads task model on the same backbone."""
    from hyena import HyenaConfig, HyenaDNAForCausalLM

    config = HyenaConfig.from_dict(cfg.model_config)
    if cfg.head is None:
        return HyenaDNAForCausalLM(config)
    from hyena.heads import TASK_MODELS, HeadConfig

    return TASK_MODELS[cfg.task](config, HeadConfig.from_dict(cfg.head))


def restore(worker: Worker) -> None:
    """Load Ray Train's latest checkpoint, if any, into the worker (step, weights, data position)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return
    with checkpoint.as_directory() as directory:
        worker.step = load_shared(Path(directory), worker.model, worker.optimizer, worker.scheduler)
        worker.position = load_rank(Path(directory), worker.rank)
        worker.replay = read_reported(Path(directory)) if worker.rank == 0 else {}
    worker.resumed_from = worker.step


def first_step_and_position(rank: int) -> tuple[int, DataPosition | None]:
    """The step and data position of the checkpoint this attempt resumes from (read before the
    model is built, so the first stage's data can start loading at once)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0, None
    with checkpoint.as_directory() as directory:
        return read_meta(directory)["step"], read_position(Path(directory), rank)


# ------------------------------------------------------------------------------- data


class StageData:
    """Each stage's micro-batches from this worker's dataset shard ``train_<stage index>``; the
    next stage's first batch is fetched in the background while the current one trains."""

    def __init__(self, stages: tuple[Stage, ...], step: int, position: DataPosition | None):
        self.stages = stages
        self.position = position
        self.current: Stage | None = None
        self.batches: Iterator[dict] | None = None
        self.consumed = 0  # micro-batches of the current stage consumed so far
        first = stage_at(stages, step) if step < stages[-1].end_step else None
        self.upcoming = _Prefetched(_shard(first), first, _skip(first, step, position)) if first else None

    def batches_for(self, stage: Stage, step: int) -> Iterator[dict]:
        """The micro-batch iterator of `stage`, switching stage (and prefetching the next) if needed."""
        if self.current is not None and stage.index == self.current.index:
            assert self.batches is not None
            return self.batches
        if self.upcoming is not None and self.upcoming.stage.index == stage.index:
            self.batches, self.consumed = self.upcoming, self.upcoming.skip
        else:  # not expected: the first stage and every next one are prefetched
            skip = _skip(stage, step, self.position)
            self.batches, self.consumed = _stage_batches(_shard(stage), stage, skip), skip
        self.current = stage
        # Start the next stage's data now (its windows are shuffled before the first batch comes
        # out), so the stage change does not wait for it.
        following = self.stages[stage.index + 1] if stage.index + 1 < len(self.stages) else None
        self.upcoming = _Prefetched(_shard(following), following, 0) if following else None
        return self.batches


def _shard(stage: Stage):
    import ray.train

    return ray.train.get_dataset_shard(f"train_{stage.index}")


# ------------------------------------------------------------------------------- one step


@dataclass(frozen=True)
class StepStats:
    loss: float  # mean over workers
    tokens: int  # non-pad labels (real tokens with an attention mask), all workers
    grad_norm: float
    lr: float
    data_s: float
    compute_s: float
    examples: int = 0  # sequences in the step, all workers

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss) and math.isfinite(self.grad_norm)


def train_step(worker: Worker, stage: Stage, batches: Iterator[dict], data: StageData) -> StepStats:
    """One optimizer step: `stage.grad_accum` micro-batches per worker, clipped, all-reduced stats.

    A non-finite loss or gradient norm leaves the weights as they were (see StepStats.finite).
    """
    ddp, model = worker.ddp, worker.model
    data_s = compute_s = 0.0
    loss_sum = torch.zeros((), device=worker.device)
    tokens = torch.zeros((), device=worker.device)
    examples = 0
    ddp.train()
    for micro in range(stage.grad_accum):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        data_s += t1 - t0
        x = batch["input_ids"].to(worker.device, non_blocking=True)  # (B, L)
        y = batch["labels"].to(worker.device, non_blocking=True)  # (B, L) next tokens, or task labels
        mask = batch.get("attention_mask")  # task batches: right padding marked
        inputs = {} if mask is None else {"attention_mask": mask.to(worker.device, non_blocking=True)}
        last = micro == stage.grad_accum - 1
        sync = contextlib.nullcontext() if (last or ddp is model) else ddp.no_sync()
        with sync:
            with worker.autocast():
                loss = ddp(x, labels=y, **inputs, **worker.loss_kwargs).loss / stage.grad_accum
            loss.backward()
        loss_sum += loss.detach()
        examples += x.shape[0]
        tokens += (y != PAD).sum() if mask is None else inputs["attention_mask"].sum()
        data.consumed += 1
        compute_s += time.perf_counter() - t1
    t2 = time.perf_counter()
    clip = worker.cfg.train.grad_clip
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf"))
    stats = torch.stack([loss_sum.float(), tokens.float(), grad_norm.float()])
    if worker.world > 1:
        torch.distributed.all_reduce(stats)
    lr = worker.optimizer.param_groups[0]["lr"]
    out = StepStats(float(stats[0]) / worker.world, int(stats[1]), float(stats[2]) / worker.world, lr,
                    data_s, 0.0, examples * worker.world)
    if out.finite:
        worker.optimizer.step()
        worker.scheduler.step()
        worker.step += 1
    worker.optimizer.zero_grad(set_to_none=True)
    return StepStats(out.loss, out.tokens, out.grad_norm, lr, data_s, compute_s + time.perf_counter() - t2,
                     out.examples)


# ------------------------------------------------------------------------------- reports


class Reporter:
    """Collects rank 0's per-step metrics and validations and sends them, with a checkpoint when
    asked, through ``ray.train.report`` (every rank calls it: it is a barrier)."""

    def __init__(self, worker: Worker):
        self.worker = worker
        # On resume, the metrics reported with the checkpoint go out again (logged only if missing).
        self.history: list[dict] = list(worker.replay.get("history", []))
        self.val: list[dict] = list(worker.replay.get("val", []))
        self.events: list[dict] = []
        if worker.resumed_from is not None:
            self.events.append({"type": "resumed", "step": worker.resumed_from})
        self.last_report_s = 0.0
        self.t_start = self.t_prev = time.perf_counter()
        self.cpu_prev = time.process_time()  # this worker process's CPU time, all its threads

    def record_step(self, stage: Stage, stats: StepStats, **extra: float) -> None:
        """One row of per-step metrics (rank 0); `extra` adds fields (a fine-tuning epoch, ...)."""
        now, cpu_now = time.perf_counter(), time.process_time()
        step_s, self.t_prev = now - self.t_prev, now
        cpu_s, self.cpu_prev = cpu_now - self.cpu_prev, cpu_now
        if self.worker.rank == 0:
            self.history.append({
                "step": self.worker.step, "loss": stats.loss, "lr": stats.lr, "grad_norm": stats.grad_norm,
                "stage": stage.index, "seq_len": stage.length, "tokens": stats.tokens,
                "tokens_per_s": stats.tokens / step_s, "step_s": step_s, "data_s": stats.data_s,
                "compute_s": stats.compute_s, "cpu_s": cpu_s, "time_s": now - self.t_start,
                "examples_per_s": stats.examples / step_s, **extra,
            })

    def record_validation(self, row: dict[str, Any]) -> None:
        """One validation's metrics at the current step (rank 0)."""
        if self.worker.rank == 0:
            self.val.append({"step": self.worker.step, **row})

    def report(self, event: str, *, data: StageData | None = None, extra: dict | None = None,
               meta: dict | None = None, write: Callable[[Path], None] | None = None, suffix: str = "") -> None:
        """Report; with `data`, also save a checkpoint (this worker's data position included;
        `meta`, `write` and `suffix` as for `save_checkpoint`)."""
        import ray.train

        w = self.worker
        stage = stage_at(w.cfg.stages, w.step)
        metrics = {"step": w.step, "stage": stage.index, "event": event, "pid": os.getpid(), "rank": w.rank}
        if w.rank == 0:
            metrics.update(history=self.history, val=self.val, events=self.events,
                           last_report_s=self.last_report_s, **(extra or {}))
        t0 = time.perf_counter()
        if data is not None:
            save_checkpoint(w, stage, data, metrics, {"history": self.history, "val": self.val},
                            meta=meta, write=write, suffix=suffix)
        else:
            ray.train.report(metrics)
        self.last_report_s = time.perf_counter() - t0
        # New lists: the reported dict may be serialised after report() returns.
        self.history, self.val, self.events = [], [], []


def save_checkpoint(worker: Worker, stage: Stage, data: StageData, metrics: dict, reported: dict, *,
                    meta: dict | None = None, write: Callable[[Path], None] | None = None, suffix: str = "") -> None:
    """Write this worker's part of a checkpoint and report it (Ray Train merges the ranks' files).

    `data` is any batch source with `current` (its stage) and `consumed` (micro-batches);
    `meta` adds to meta.json and `write(directory)` adds files (rank 0: a fine-tuning run's best
    model); `suffix` ends the directory name (checkpoint_00000120_final)."""
    import ray.train

    with tempfile.TemporaryDirectory(prefix="hyena-ckpt-") as tmp:
        tmp_path = Path(tmp)
        if worker.rank == 0:
            save_shared(tmp_path, worker.model, worker.optimizer, worker.scheduler, step=worker.step,
                        meta={"stage": stage.index, "total_steps": worker.cfg.total_steps, "length": stage.length,
                              **(meta or {})})
            save_reported(tmp_path, reported)
            if write is not None:
                write(tmp_path)
        current = data.current.index if data.current else stage.index
        save_rank(tmp_path, worker.rank, DataPosition(current, data.consumed))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=f"checkpoint_{worker.step:08d}{suffix}")


# ------------------------------------------------------------------------------- the loop


def train_loop_per_worker(config: dict) -> dict:
    """Returns (rank 0's is kept by Ray Train) {"status": "done" | "stopped", "step", "message"}.

    `config` is ``{"worker": WorkerConfig}``.
    """
    import ray
    import ray.train

    cfg: WorkerConfig = config["worker"]
    total = cfg.total_steps
    # Start this attempt's first stage's data now, so Ray Data's start-up overlaps model set-up.
    data = StageData(cfg.stages, *first_step_and_position(ray.train.get_context().get_world_rank()))
    worker = set_up_worker(cfg)
    data.position = worker.position
    reporter = Reporter(worker)
    while worker.step < total:
        stage = stage_at(cfg.stages, worker.step)
        stats = train_step(worker, stage, data.batches_for(stage, worker.step), data)
        if not stats.finite:
            return stop_non_finite(worker, reporter, stats, f" (stage {stage.index}, length {stage.length})")
        reporter.record_step(stage, stats)
        step = worker.step
        stage_done = step == stage.end_step
        if stage_done or (cfg.train.val_every and step % cfg.train.val_every == 0):
            loss, count = validate(worker, ray.get(cfg.val_sets[stage.length]), stage.micro_batch)
            reporter.record_validation({"stage": stage.index, "seq_len": stage.length, "loss": loss,
                                        "tokens": count, "stage_end": stage_done})
        save = step % cfg.checkpoint_every == 0 or step == total
        if save or stage_done or step % cfg.train.log_every == 0:
            # its time counts in the next step_s
            reporter.report("done" if step == total else "progress", data=data if save else None)
    if worker.resumed_from == total:
        reporter.report("done")  # rerun of a finished run: nothing to do
    flush_reports(worker.rank, worker.step)
    return {"status": "done", "step": worker.step, "message": ""}


def stop_non_finite(worker: Worker, reporter: Reporter, stats: StepStats, where: str = "") -> dict:
    """Report a non-finite step (the weights were left as they were) and end the loop's attempt;
    the driver turns the returned status into TrainingDivergedError, registering nothing."""
    message = (f"non-finite loss ({stats.loss}) or gradient norm ({stats.grad_norm}) at step {worker.step + 1}"
               f"{where}; the weights were not updated")
    reporter.report("stopped", extra={"message": message})
    flush_reports(worker.rank, worker.step)
    return {"status": "stopped", "step": worker.step, "message": message}


def flush_reports(rank: int, step: int) -> None:
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
def validate(worker: Worker, data, batch_size: int) -> tuple[float, int]:
    """Mean next-token cross-entropy (nats) over non-pad labels of the held-out windows.

    Rank r evaluates windows r, r + world, ...; sums are all-reduced so every rank gets the result.
    """
    import torch.nn.functional as F

    model, rank, world, device = worker.model, worker.rank, worker.world, worker.device
    input_ids, labels = data
    input_ids, labels = input_ids[rank::world], labels[rank::world]
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for i in range(0, len(input_ids), batch_size):
        x = torch.as_tensor(input_ids[i:i + batch_size], dtype=torch.int64, device=device)
        y = torch.as_tensor(labels[i:i + batch_size], dtype=torch.int64, device=device)
        with worker.autocast():
            logits = model(x).logits
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                              ignore_index=PAD, reduction="sum")
        total += torch.stack([nll.double(), (y != PAD).sum().double()])
    if world > 1:
        torch.distributed.all_reduce(total)
    model.train(was_training)
    count = int(total[1])
    return (float(total[0]) / count if count else math.nan), count
