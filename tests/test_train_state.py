"""Optimizer groups and training-state checkpoints, without Ray: a resumed step equals an
uninterrupted one bit for bit."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hyena import HyenaConfig, HyenaDNAForCausalLM
from hyena_platform.train.config import TrainSection
from hyena_platform.train.loop import build_optimizer
from hyena_platform.train.state import (
    DataPosition,
    load_rank,
    load_shared,
    read_meta,
    read_reported,
    save_rank,
    save_reported,
    save_shared,
)

CFG = HyenaConfig(d_model=16, n_layer=2, l_max=66, embed_dropout=0.1)
TRAIN = TrainSection(steps=10, lr=1e-2, warmup_fraction=0.2)


def make():
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(CFG)
    optimizer, scheduler = build_optimizer(model, TRAIN)
    return model, optimizer, scheduler


def step(model, optimizer, scheduler, batch):
    model.train()
    loss = model(batch[:, :-1], labels=batch[:, 1:]).loss  # dropout draws from the torch RNG
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def test_weight_decay_groups_follow_the_recipe():
    model, optimizer, _ = make()
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert any(".implicit_filter." in n for n in no_decay_names)
    assert not any(".implicit_filter." in names[id(p)] for p in decay["params"])
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == model.num_parameters()
    assert optimizer.defaults["betas"] == (0.9, 0.999)


def test_resume_from_a_checkpoint_continues_exactly(tmp_path: Path):
    data = torch.randint(7, 12, (6, 4, 33))
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(2)
    model, optimizer, scheduler = make()
    torch.manual_seed(123)
    losses = []
    for i in range(3):
        losses.append(step(model, optimizer, scheduler, data[i]))
        if i == 2:
            save_shared(tmp_path, model, optimizer, scheduler, step=3, meta={"stage": 0})
            save_rank(tmp_path, 0, DataPosition(stage=0, micro_batches=3))
    expected = [step(model, optimizer, scheduler, data[i]) for i in range(3, 6)]

    resumed, optimizer2, scheduler2 = make()  # fresh objects, as in a restarted worker
    torch.manual_seed(999)  # whatever the new process's RNG was
    assert load_shared(tmp_path, resumed, optimizer2, scheduler2) == 3
    assert load_rank(tmp_path, 0) == DataPosition(0, 3)
    assert load_rank(tmp_path, 1) is None  # a rank that did not exist
    assert read_meta(tmp_path) == {"step": 3, "stage": 0}
    assert scheduler2.last_epoch == 3
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(1e-2 * scheduler2.lr_lambdas[0](3))
    got = [step(resumed, optimizer2, scheduler2, data[i]) for i in range(3, 6)]
    assert got == expected
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_the_model_directory_is_the_release_format(tmp_path: Path):
    from hyena import from_pretrained

    model, optimizer, scheduler = make()
    save_shared(tmp_path, model, optimizer, scheduler, step=0, meta={})
    loaded = from_pretrained(tmp_path / "model")
    assert loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_the_metrics_reported_with_a_checkpoint_travel_with_it(tmp_path: Path):
    assert read_reported(tmp_path) == {}
    metrics = {"history": [{"step": 4, "loss": 2.5}], "val": [{"step": 4, "seq_len": 64, "loss": 2.4}]}
    save_reported(tmp_path, metrics)
    assert read_reported(tmp_path) == metrics
