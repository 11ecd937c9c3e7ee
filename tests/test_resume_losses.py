"""A pretraining run killed after a checkpoint and resumed ends with the same losses as an
uninterrupted run of the same seed (issue 11), bit for bit on CPU: the resumed run restores the
weights, the optimizer and scheduler, every RNG state and the data position (how many batches
of the stage were consumed), and the data pipeline is deterministic (tests/test_reproducibility.py).

The kill is real: SIGKILL to a `hyena pretrain` process once its first checkpoint is on disk;
the rerun of the same job (same checkpoint.name and storage_path) resumes from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import _driver_kill

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
STEPS = 8


def job_mapping(tmp: Path, name: str) -> dict:
    return {
        "model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64}},
        "data": {},
        # Two stages (64 then 128 tokens): the resume lands inside the second one.
        "train": {"global_batch": 8, "micro_batch": 2, "start_length": 64, "target_length": 128, "steps": STEPS,
                  "warmup_stage_steps": 3, "log_every": 1, "val_windows": 4, "baseline_orders": [], "seed": 11},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"every_steps": 4, "keep": 2, "storage_path": str(tmp / "runs"), "name": name},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "register_as": f"resume-{name}", "alias": "candidate"},
    }


def history(tmp: Path, run_id: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    return [(m.step, m.value) for m in
            MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db").get_metric_history(run_id, "train/loss")]


def run_in_process(tmp: Path, name: str):
    from hyena_platform.train.config import job_from_mapping
    from hyena_platform.train.launch import run_pretrain

    job = job_from_mapping(job_mapping(tmp, name), source=f"{name}.yaml")
    return run_pretrain(job, source=f"{name}.yaml", ray_logs=False)


def kill_after_first_checkpoint(tmp: Path, name: str, ray_cluster) -> None:
    job = tmp / f"{name}.yaml"
    job.write_text(yaml.safe_dump(job_mapping(tmp, name)))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    _driver_kill.kill_after_first_checkpoint("pretrain", tmp, job, env, tmp / "runs" / name, timeout_s=400)


def test_a_killed_and_resumed_run_ends_with_the_uninterrupted_runs_losses(ray_cluster, tmp_path):
    whole = run_in_process(tmp_path, "whole")
    expected = dict(history(tmp_path, whole.run_id))
    assert sorted(expected) == list(range(1, STEPS + 1))

    kill_after_first_checkpoint(tmp_path, "killed", ray_cluster)
    resumed = run_in_process(tmp_path, "killed")  # the same job again: resumes from the checkpoint
    logged = history(tmp_path, resumed.run_id)
    steps = [s for s, _ in logged]
    assert sorted(set(steps)) == list(range(1, STEPS + 1)), logged
    assert len(steps) < 2 * STEPS  # steps 1-4 were not trained again: it resumed, it did not restart
    # Every logged loss (steps logged before the kill, steps redone after the checkpoint, and the
    # rest) equals the uninterrupted run's at that step, bit for bit.
    assert [(s, expected[s]) for s, _ in logged] == logged
