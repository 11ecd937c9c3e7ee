"""Sequence-length warm-up stages and the learning-rate schedule, as pure functions.

HyenaDNA (Nguyen et al. 2023, sec. 3.2 and appendix A.2) trains with a sequence-length
warm-up: short windows first, doubling up to the target length. The official recipe keeps the
global batch fixed *in sequences* and raises gradient accumulation as the per-device batch
shrinks; we do the same.

Micro-batch policy (documented in docs/performance.md and jobs/pretrain.yaml):

- ``train.global_batch`` sequences make one optimizer step, in every stage.
- Each worker handles ``global_batch / num_workers`` sequences per step (must divide).
- ``train.micro_batch`` is the per-worker forward batch *at the target length*: the memory
  budget. A shorter stage of length L may use up to ``micro_batch * target_length / L``
  sequences per forward (the same tokens per forward); we take the largest divisor of the
  per-worker batch within that budget. Gradient accumulation = per-worker batch / micro-batch.
- An explicit stage ``{length, steps, micro_batch}`` overrides the micro-batch for its stage.

Steps are optimizer steps. The stage of a step is a function of the global step only, so a run
resumed from a checkpoint at step S lands in the stage that step S+1 belongs to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Stage:
    """One warm-up stage, resolved for a given number of workers."""

    index: int
    length: int  # tokens per input window (input_ids length)
    steps: int  # optimizer steps in this stage
    micro_batch: int  # sequences per forward, per worker
    grad_accum: int  # forwards per optimizer step, per worker
    start_step: int  # optimizer steps completed before this stage starts

    @property
    def end_step(self) -> int:
        """Global step count when this stage is done (exclusive upper bound)."""
        return self.start_step + self.steps

    @property
    def per_worker_batch(self) -> int:
        return self.micro_batch * self.grad_accum


class ScheduleError(ValueError):
    """An inconsistent warm-up specification; the message names the dotted config key."""


def doubling_lengths(start_length: int, target_length: int) -> list[int]:
    """start, 2*start, 4*start, ... below target, then target itself (always the last)."""
    if start_length < 1 or target_length < 1:
        raise ScheduleError(f"train.start_length ({start_length}) and the target length ({target_length}) must be >= 1")
    if start_length > target_length:
        raise ScheduleError(
            f"train.start_length={start_length} is longer than train.target_length={target_length}"
        )
    lengths = []
    length = start_length
    while length < target_length:
        lengths.append(length)
        length *= 2
    lengths.append(target_length)
    return lengths


def micro_batch_for(length: int, target_length: int, micro_batch: int, per_worker_batch: int) -> int:
    """Largest divisor of `per_worker_batch` not above ``micro_batch * target_length / length``."""
    budget = max(1, (micro_batch * target_length) // length)
    budget = min(budget, per_worker_batch)
    for candidate in range(budget, 0, -1):
        if per_worker_batch % candidate == 0:
            return candidate
    return 1  # unreachable: 1 divides everything


def split_steps(total_steps: int, n_stages: int, warmup_stage_steps: int | None) -> list[int]:
    """Steps per generated stage: each warm-up stage gets `warmup_stage_steps` (default: half
    of the run shared evenly by the warm-up stages), the target stage gets the rest."""
    if n_stages == 1:
        return [total_steps]
    n_warm = n_stages - 1
    if warmup_stage_steps is None:
        warmup_stage_steps = max(1, total_steps // (2 * n_warm))
    if warmup_stage_steps < 1:
        raise ScheduleError(f"train.warmup_stage_steps must be >= 1, got {warmup_stage_steps}")
    rest = total_steps - n_warm * warmup_stage_steps
    if rest < 1:
        raise ScheduleError(
            f"train.steps={total_steps} leaves no step for the target length: {n_warm} warm-up stages x "
            f"train.warmup_stage_steps={warmup_stage_steps} = {n_warm * warmup_stage_steps} steps; "
            "raise train.steps or lower train.warmup_stage_steps"
        )
    return [warmup_stage_steps] * n_warm + [rest]


def plan_stages(
    *,
    global_batch: int,
    micro_batch: int,
    num_workers: int,
    target_length: int,
    l_max: int,
    steps: int | None = None,
    start_length: int = 64,
    warmup_stage_steps: int | None = None,
    explicit: Sequence[tuple[int, int, int | None]] | None = None,
) -> tuple[Stage, ...]:
    """Resolve the warm-up into stages. `explicit` lists (length, steps, micro_batch or None).

    Raises ScheduleError naming the offending key with the actual numbers.
    """
    if num_workers < 1:
        raise ScheduleError(f"scaling.num_workers must be >= 1, got {num_workers}")
    if global_batch % num_workers:
        raise ScheduleError(
            f"train.global_batch={global_batch} is not divisible by scaling.num_workers={num_workers}"
        )
    per_worker = global_batch // num_workers
    if micro_batch < 1:
        raise ScheduleError(f"train.micro_batch must be >= 1, got {micro_batch}")
    if global_batch % (num_workers * micro_batch):
        raise ScheduleError(
            f"train.global_batch={global_batch} is not divisible by scaling.num_workers={num_workers} x "
            f"train.micro_batch={micro_batch} = {num_workers * micro_batch}; use a multiple of "
            f"{num_workers * micro_batch} or another micro-batch"
        )
    if explicit:
        specs = list(explicit)
        if steps is not None and steps != sum(s[1] for s in specs):
            raise ScheduleError(
                f"train.steps={steps} but train.stages add up to {sum(s[1] for s in specs)} steps; "
                "drop train.steps or make them agree"
            )
        keys = [f"train.stages[{i}]" for i in range(len(specs))]
    else:
        if steps is None:
            raise ScheduleError("train.steps is required unless train.stages lists the stages explicitly")
        if target_length > l_max:
            raise ScheduleError(
                f"train.target_length={target_length} is longer than the model's l_max={l_max}; use at most "
                f"{l_max} (l_max - 2 = {l_max - 2} leaves room for special tokens) or a model with a larger l_max"
            )
        lengths = doubling_lengths(start_length, target_length)
        specs = [(L, n, None) for L, n in zip(lengths, split_steps(steps, len(lengths), warmup_stage_steps))]
        keys = ["train.start_length"] * (len(specs) - 1) + ["train.target_length"]

    stages = []
    start = 0
    previous_length = 0
    for index, ((length, n_steps, mb), key) in enumerate(zip(specs, keys)):
        if length > l_max:
            raise ScheduleError(
                f"{key}: stage {index} length {length} is longer than the model's l_max={l_max}; "
                f"use at most {l_max} or a model with a larger l_max"
            )
        if length < 2:
            raise ScheduleError(f"{key}: stage {index} length must be >= 2, got {length}")
        if n_steps < 1:
            raise ScheduleError(f"{key}: stage {index} must have >= 1 step, got {n_steps}")
        if length < previous_length:
            raise ScheduleError(f"{key}: stage lengths must not decrease ({previous_length} then {length})")
        previous_length = length
        if mb is None:
            mb = micro_batch_for(length, target_length, micro_batch, per_worker)
        elif per_worker % mb:
            raise ScheduleError(
                f"{key}.micro_batch={mb} does not divide the per-worker batch: train.global_batch={global_batch} "
                f"/ scaling.num_workers={num_workers} = {per_worker} sequences per worker per step"
            )
        stages.append(Stage(index, length, n_steps, mb, per_worker // mb, start))
        start += n_steps
    return tuple(stages)


def stage_at(stages: Sequence[Stage], step: int) -> Stage:
    """The stage that optimizer step ``step + 1`` belongs to (``step`` = steps completed).

    A finished run (step == total) maps to the last stage.
    """
    for stage in stages:
        if step < stage.end_step:
            return stage
    return stages[-1]


def total_steps(stages: Sequence[Stage]) -> int:
    return stages[-1].end_step if stages else 0


def lr_factor(step: int, total: int, warmup_fraction: float = 0.01, min_ratio: float = 0.1) -> float:
    """Multiplier of the peak learning rate for optimizer step index ``step`` (0-based).

    Linear warm-up over ``ceil(warmup_fraction * total)`` steps (at least 1), then a cosine
    decay from 1 to ``min_ratio`` at the last step, never below ``min_ratio``.
    """
    warmup = max(1, math.ceil(warmup_fraction * total))
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
