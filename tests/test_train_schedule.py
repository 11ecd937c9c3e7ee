"""Warm-up stages and the learning-rate schedule: pure functions, microseconds each."""

from __future__ import annotations

import math

import pytest

from hyena_platform.train.schedule import (
    ScheduleError,
    Stage,
    doubling_lengths,
    lr_factor,
    micro_batch_for,
    plan_stages,
    split_steps,
    stage_at,
    total_steps,
)


def plan(**kw):
    args = dict(global_batch=64, micro_batch=4, num_workers=2, target_length=1024, l_max=1026, steps=1000)
    return plan_stages(**{**args, **kw})


def test_doubling_from_64_to_the_target():
    assert doubling_lengths(64, 1024) == [64, 128, 256, 512, 1024]
    assert doubling_lengths(64, 1000) == [64, 128, 256, 512, 1000]  # the target always ends it
    assert doubling_lengths(1024, 1024) == [1024]


def test_generated_stages_keep_the_global_batch_and_trade_micro_batch_for_accumulation():
    stages = plan()
    assert [s.length for s in stages] == [64, 128, 256, 512, 1024]
    per_worker = 64 // 2
    for s in stages:
        assert s.micro_batch * s.grad_accum == per_worker  # constant global batch
        assert s.micro_batch * s.length <= 4 * 1024  # the memory budget: tokens per forward
    assert [(s.micro_batch, s.grad_accum) for s in stages] == [(32, 1), (32, 1), (16, 2), (8, 4), (4, 8)]


def test_generated_steps_default_to_half_the_run_for_warm_up():
    stages = plan(steps=1000)
    assert [s.steps for s in stages] == [125, 125, 125, 125, 500]
    assert [s.start_step for s in stages] == [0, 125, 250, 375, 500]
    assert total_steps(stages) == 1000
    assert [s.steps for s in plan(steps=100, warmup_stage_steps=10)] == [10, 10, 10, 10, 60]


def test_micro_batch_is_the_largest_divisor_within_budget():
    assert micro_batch_for(length=384, target_length=1024, micro_batch=4, per_worker_batch=12) == 6  # budget 10
    assert micro_batch_for(length=1024, target_length=1024, micro_batch=4, per_worker_batch=12) == 4
    assert micro_batch_for(length=64, target_length=1024, micro_batch=4, per_worker_batch=12) == 12


def test_explicit_stages():
    stages = plan(steps=None, explicit=[(128, 10, None), (512, 20, 2), (1024, 5, 1)])
    assert stages == (
        Stage(0, 128, 10, 32, 1, 0),
        Stage(1, 512, 20, 2, 16, 10),
        Stage(2, 1024, 5, 1, 32, 30),
    )


def test_stage_of_a_step_is_a_function_of_the_global_step():
    stages = plan(steps=100, warmup_stage_steps=10)
    assert stage_at(stages, 0).length == 64
    assert stage_at(stages, 9).length == 64  # step 10 is the last of stage 0
    assert stage_at(stages, 10).length == 128  # a run resumed at step 10 continues in stage 1
    assert stage_at(stages, 39).length == 512
    assert stage_at(stages, 40).length == 1024
    assert stage_at(stages, 100).length == 1024  # finished


@pytest.mark.parametrize("kw, message", [
    (dict(target_length=2048), r"train.target_length=2048 is longer than the model's l_max=1026"),
    (dict(steps=None, explicit=[(2048, 5, None)]), r"train.stages\[0\]: stage 0 length 2048 .* l_max=1026"),
    (dict(global_batch=60, micro_batch=4), r"train.global_batch=60 is not divisible by scaling.num_workers=2 x "
                                           r"train.micro_batch=4 = 8"),
    (dict(global_batch=63), r"train.global_batch=63 is not divisible by scaling.num_workers=2"),
    (dict(steps=None, explicit=[(64, 5, 3)]), r"train.stages\[0\].micro_batch=3 does not divide the per-worker batch"),
    (dict(steps=4, warmup_stage_steps=1), r"train.steps=4 leaves no step for the target length"),
    (dict(steps=None), r"train.steps is required"),
    (dict(steps=7, explicit=[(64, 5, None)]), r"train.steps=7 but train.stages add up to 5"),
    (dict(start_length=2048, target_length=1024), r"train.start_length=2048 is longer than train.target_length"),
    (dict(steps=None, explicit=[(256, 5, None), (128, 5, None)]), r"must not decrease"),
])
def test_inconsistent_warmups_name_the_key_and_the_numbers(kw, message):
    with pytest.raises(ScheduleError, match=message):
        plan(**kw)


def test_split_steps_rejects_zero():
    with pytest.raises(ScheduleError, match="warmup_stage_steps must be >= 1"):
        split_steps(10, 3, 0)


def test_lr_linear_warmup_cosine_decay_and_floor():
    total = 1000
    f = [lr_factor(s, total, 0.01, 0.1) for s in range(total)]
    assert f[0] == pytest.approx(0.1)  # 10 warm-up steps: 1/10, 2/10, ...
    assert f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # monotone decay
    assert f[-1] == pytest.approx(0.1)
    assert min(f) >= 0.1 - 1e-12
    mid = 10 + (total - 10 - 1) / 2
    assert lr_factor(math.floor(mid), total) == pytest.approx(0.55, abs=0.01)  # half way: (1 + 0.1) / 2


def test_lr_tiny_runs():
    assert lr_factor(0, 1) == 1.0
    assert [lr_factor(s, 3, 0.0, 0.1) for s in range(3)] == [1.0, 1.0, pytest.approx(0.1)]
