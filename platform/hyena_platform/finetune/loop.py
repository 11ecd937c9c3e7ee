"""The per-worker fine-tuning loop (runs inside Ray Train workers), on pretraining's steps.

    worker = set_up_worker(cfg.worker)        # train.loop: threads, rank, device, task model, restore, DDP
    while worker.step < total:
        stats = train_step(worker, stage, batches.batches_for(stage, step), batches)   # train.loop
        reporter.record_step(...)              # train.loop.Reporter
        if due: metrics = evaluate(...); track_best(...); reporter.record_validation(metrics)
        reporter.report(..., data=batches)     # train.loop.save_checkpoint: + best/ and progress
    finish(...)                                # the best weights on valid and test, a last checkpoint

What is fine-tuning's own: the batches of labelled examples (`finetune.batches.ExampleBatches`),
validation with task metrics, the best model so far (in memory and in every checkpoint as
best/), early stopping, and the test split on the best model. The worker receives
`FinetuneWorkerConfig` (its slice of the job), never the job itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from hyena_platform.finetune.batches import ExampleBatches
from hyena_platform.finetune.evaluate import split_metrics, split_scores
from hyena_platform.finetune.metrics import better
from hyena_platform.finetune.paired import ScoredRows
from hyena_platform.train.loop import (
    Reporter,
    Worker,
    WorkerConfig,
    flush_reports,
    set_up_worker,
    stop_non_finite,
    train_step,
)
from hyena_platform.train.state import read_meta

BEST_DIR = "best"


@dataclass(frozen=True)
class FinetuneWorkerConfig:
    """What a fine-tuning worker needs: pretraining's WorkerConfig (train section, one stage, the
    model with its head, threads, initial weights) and the task's data and validation rules."""

    worker: WorkerConfig
    splits: Any  # ObjectRef of {"train": Split, "valid": Split, "test": Split}
    problem_type: str
    steps_per_epoch: int
    global_batch: int  # sequences per optimizer step, all workers
    eval_every: int  # steps between validations (and checkpoints)
    eval_batch: int
    metric: str  # the validation metric that picks the best checkpoint
    patience: int | None  # validations without improvement before stopping early
    class_weights: tuple[float, ...] | None = None
    reverse_complement: bool = False  # training examples on either strand (sequence tasks)
    probe: bool = False  # fit the head on the frozen backbone before the first step (finetune.probe)
    test_picks: Any = None  # token tasks: (n, 2) test bases the k-mer baseline scored (finetune.paired)


@dataclass
class Progress:
    """What a checkpoint carries beyond the model, optimizer and step (meta.json "progress")."""

    best_value: float | None = None
    best_step: int = 0
    evals_since_best: int = 0
    stopped_early: bool = False
    best_metrics: dict[str, float] = field(default_factory=dict)  # the best validation's metrics


def finetune_loop_per_worker(config: dict) -> dict:
    """Returns (rank 0's is kept by Ray Train) {"status": "done" | "stopped", "step", ...}.
    `config` is ``{"worker": FinetuneWorkerConfig}``."""
    import ray

    cfg: FinetuneWorkerConfig = config["worker"]
    worker = set_up_worker(cfg.worker)
    if cfg.class_weights is not None:
        worker.loss_kwargs["class_weights"] = torch.tensor(cfg.class_weights, device=worker.device)
    progress, best_state = restore_progress(worker)
    splits = ray.get(cfg.splits)
    stage, total = cfg.worker.stages[0], cfg.worker.total_steps
    batches = ExampleBatches(splits["train"], task=cfg.worker.task, problem_type=cfg.problem_type,
                             per_epoch=cfg.steps_per_epoch, global_batch=cfg.global_batch, rank=worker.rank,
                             world=worker.world, seed=cfg.worker.train.seed,
                             reverse_complement=cfg.reverse_complement)
    reporter = Reporter(worker)
    if cfg.probe and worker.resumed_from is None:
        best_state = start_from_probe(worker, reporter, splits, cfg, progress)
    while worker.step < total and not progress.stopped_early:
        stats = train_step(worker, stage, batches.batches_for(stage, worker.step), batches)
        if not stats.finite:
            return stop_non_finite(worker, reporter, stats)
        reporter.record_step(stage, stats, epoch=worker.step / cfg.steps_per_epoch)
        step = worker.step
        evaluated = step % cfg.eval_every == 0 or step == total
        if evaluated:
            metrics = evaluate(worker, splits["valid"], cfg)
            best_state = track_best(worker.model, metrics, cfg.metric, step, progress, best_state, cfg.patience)
            reporter.record_validation(metrics)
        if evaluated or step % cfg.worker.checkpoint_every == 0:
            reporter.report("eval" if evaluated else "progress", data=batches, extra=asdict(progress),
                            meta={"progress": asdict(progress)}, write=best_writer(worker.model, best_state))
        elif step % cfg.worker.train.log_every == 0:
            reporter.report("progress", extra=asdict(progress))
    return finish(worker, reporter, batches, best_state, splits, cfg, progress)


def start_from_probe(worker: Worker, reporter: Reporter, splits: dict, cfg: FinetuneWorkerConfig,
                     progress: Progress) -> dict | None:
    """LP-FT's first half: fit the head on the frozen backbone's features of train (C picked on
    valid), then validate it as step 0, so the best checkpoint is never worse than the probe."""
    from hyena_platform.finetune.probe import fit_into_head

    train = gathered_features(worker, splits["train"], cfg, both_strands=cfg.reverse_complement)
    probe = fit_into_head(worker.model, train, gathered_features(worker, splits["valid"], cfg),
                          problem_type=cfg.problem_type, metric=cfg.metric, class_weights=cfg.class_weights)
    # Validated again through the model, as every later validation is: the whole split (a token
    # task's probe rows are a sample) in the run's precision, so step 0 competes on equal terms.
    metrics = evaluate(worker, splits["valid"], cfg)
    best_state = track_best(worker.model, metrics, cfg.metric, 0, progress, None, cfg.patience)
    reporter.record_validation(metrics)
    reporter.events.append({"type": "probe", "C": probe.C, "rows": len(train[0])})
    reporter.report("eval", extra=asdict(progress))
    return best_state


def gathered_features(worker: Worker, split, cfg: FinetuneWorkerConfig, both_strands: bool = False):
    """The frozen model's (features, labels) of a whole split: worker r scores examples r, r +
    world, ...; every worker gets all rows in the same order."""
    import numpy as np

    from hyena_platform.finetune.probe import split_features

    rank, world = worker.rank, worker.world
    rows = split_features(worker.model, split, range(rank, len(split), world), task=cfg.worker.task,
                          problem_type=cfg.problem_type, batch_size=cfg.eval_batch, device=worker.device,
                          autocast=worker.autocast, seed=cfg.worker.train.seed, both_strands=both_strands)
    if world == 1:
        return rows
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, rows)
    return np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered])


def restore_progress(worker: Worker) -> tuple[Progress, dict | None]:
    """The best value, step and weights saved with the checkpoint this attempt resumed from."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return Progress(), None
    with checkpoint.as_directory() as directory:
        progress = Progress(**read_meta(directory)["progress"])
        best = Path(directory) / BEST_DIR
        best_state = None
        if best.is_dir():
            best_state = {k: v.clone() for k, v in type(worker.model).from_pretrained(best).state_dict().items()}
    return progress, best_state


def evaluate(worker: Worker, split, cfg: FinetuneWorkerConfig) -> dict[str, float]:
    """Task metrics over a split; worker r scores examples r, r + world, ...; all see the result."""
    labels, scores, _ = gathered_scores(worker, split, cfg)
    return split_metrics(labels, scores, cfg.problem_type)


def gathered_scores(worker: Worker, split, cfg: FinetuneWorkerConfig):
    """(labels, scores, examples) of every worker's rows (worker r scores examples r, r + world,
    ...); `examples` is the example order, whose rows (one, or one per real base) follow it."""
    import numpy as np

    rank, world = worker.rank, worker.world
    mine = np.arange(rank, len(split), world)
    labels, scores = split_scores(worker.model, split, mine, task=cfg.worker.task,
                                  problem_type=cfg.problem_type, batch_size=cfg.eval_batch, device=worker.device,
                                  autocast=worker.autocast)
    if world == 1:
        return labels, scores, mine
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, (labels, scores, mine))
    return tuple(np.concatenate([g[i] for g in gathered]) for i in range(3))


def paired_rows(split, labels, scores, examples, picks, task: str) -> ScoredRows | None:
    """The test rows the k-mer baseline scored, in its order: every example (sequence tasks) or
    the (example, position) `picks` (token tasks; None without a baseline), for finetune.paired."""
    import numpy as np

    if task == "token" and picks is None:
        return None
    if task == "sequence":
        order = np.argsort(examples, kind="stable")
        return ScoredRows(labels=labels[order], scores=scores[order].astype(np.float32), groups=examples[order])
    lengths = np.array([len(split.tokens[e]) for e in examples], dtype=np.int64)
    first_row = dict(zip(examples.tolist(), (np.cumsum(lengths) - lengths).tolist()))
    rows = np.array([first_row[e] + p for e, p in picks.tolist()], dtype=np.int64)
    return ScoredRows(labels=labels[rows], scores=scores[rows].astype(np.float32), groups=picks[:, 0].copy())


def track_best(model, metrics: dict[str, float], metric: str, step: int, progress: Progress,
               best_state: dict | None, patience: int | None) -> dict | None:
    """Keep the best weights (CPU copy) and their validation metrics; count validations without
    improvement."""
    value = metrics[metric]
    if better("", value, progress.best_value) or best_state is None:
        progress.best_value, progress.best_step, progress.evals_since_best = value, step, 0
        progress.best_metrics = dict(metrics)
        return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    progress.evals_since_best += 1
    if patience is not None and progress.evals_since_best >= patience:
        progress.stopped_early = True
    return best_state


def best_writer(model, best_state: dict | None):
    """A `save_checkpoint` writer: the best weights so far as best/ (the model's own if none)."""

    def write(directory: Path) -> None:
        current = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        if best_state is not None:
            model.load_state_dict(best_state)
        model.save_pretrained(directory / BEST_DIR)
        model.load_state_dict(current)

    return write


def finish(worker: Worker, reporter: Reporter, batches: ExampleBatches, best_state: dict | None, splits: dict,
           cfg: FinetuneWorkerConfig, progress: Progress) -> dict:
    """The best weights on valid and test, and a last checkpoint holding them (model/ and best/)."""
    if best_state is not None:
        worker.model.load_state_dict(best_state)
    # The best weights were validated when they were found (a checkpoint from before best_metrics
    # existed has none: validate them again).
    best_valid = progress.best_metrics or evaluate(worker, splits["valid"], cfg)
    labels, scores, examples = gathered_scores(worker, splits["test"], cfg)
    extra = {"test": split_metrics(labels, scores, cfg.problem_type), "best_valid": best_valid}
    reporter.report("done", data=batches, extra={**asdict(progress), **extra}, meta={"progress": asdict(progress)},
                    write=best_writer(worker.model, None), suffix="_final")
    flush_reports(worker.rank, worker.step)
    # The rows go back in the return value only (not into the reported metrics); Ray Train keeps
    # rank 0's, so only rank 0 pairs them.
    rows = (paired_rows(splits["test"], labels, scores, examples, cfg.test_picks, cfg.worker.task)
            if worker.rank == 0 else None)
    return {"status": "done", "step": worker.step, **extra, "test_rows": rows}
