"""A fixed seed gives identical per-step training losses on CPU (issue 11: three identical runs
used to differ from step 1 or 2). Two real pretraining runs, 2 Ray Train workers, tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def losses(tmp: Path, name: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    from hyena_platform.train.config import job_from_mapping
    from hyena_platform.train.launch import run_pretrain

    job = job_from_mapping({
        "model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64}},
        "data": {},
        "train": {"global_batch": 8, "micro_batch": 2, "start_length": 64, "target_length": 128, "steps": 6,
                  "warmup_stage_steps": 3, "log_every": 3, "val_windows": 4, "baseline_orders": [], "seed": 7},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"every_steps": 6, "keep": 1, "storage_path": str(tmp / "runs"), "name": name},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "register_as": "repro", "alias": "candidate"},
    }, source=f"{name}.yaml")
    result = run_pretrain(job, source=f"{name}.yaml", ray_logs=False)
    uri = f"sqlite:///{tmp}/mlflow.db"
    history = MlflowClient(tracking_uri=uri).get_metric_history(result.run_id, "train/loss")
    return sorted((m.step, m.value) for m in history)


def test_two_runs_with_one_seed_have_identical_losses(ray_cluster, tmp_path):
    first = losses(tmp_path, "a")
    second = losses(tmp_path, "b")
    assert [s for s, _ in first] == list(range(1, 7))
    assert first == second  # bit for bit, every step


def test_a_request_larger_than_the_cluster_is_one_line_not_a_hang(ray_cluster, tmp_path, capsys):
    """The session Ray has 2 CPUs: 4 workers x 1 CPU used to wait forever, silently."""
    from pathlib import Path

    from hyena_platform.cli import main

    repo = Path(__file__).resolve().parents[1]
    def run(*sets: str) -> str:
        argv = ["pretrain", str(repo / "jobs" / "pretrain_local.yaml"), "--set", f"checkpoint.storage_path={tmp_path}/runs",
                "--set", f"tracking.uri=sqlite:///{tmp_path}/m.db", "--set", "train.micro_batch=1"]  # any worker count divides the batch
        for item in sets:
            argv += ["--set", item]
        assert main(argv) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    err = run("scaling.num_workers=4", "scaling.cpus_per_worker=1")
    assert err.startswith("hyena pretrain: error: scaling: 4 worker(s) x 1 CPU = 4 CPUs, but the Ray cluster has 2")
    err = run("scaling.num_workers=1", "scaling.cpus_per_worker=0.5", "scaling.use_gpu=true")
    assert "1 worker(s) x 1 GPU = 1 GPUs, but the Ray cluster has 0" in err
