"""The plain PyTorch baseline loop of the training benchmarks (bench_train, bench_finetune): the
same optimizer step as the platform's loops, timed in wall and CPU seconds, without Ray."""

from __future__ import annotations

import time
from typing import Callable

import torch


def timed_steps(steps: int, backward: Callable[[int], None], model: torch.nn.Module, optimizer, scheduler,
                grad_clip: float) -> tuple[list[float], list[float]]:
    """(wall, CPU) seconds of each step: `backward(step)` accumulates the gradients, then clip,
    optimizer step, scheduler step, zero the gradients."""
    walls, cpus = [], []
    for step in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        backward(step)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus
