"""One tiny pretraining job (two stages, 64 then 128 tokens, 8 steps, seed 11) run several ways:
uninterrupted (the session fixture `reference_pretrain` in tests/conftest.py), again with the same
seed (tests/test_reproducibility.py), with its driver or one of its workers killed after the first
checkpoint (tests/test_resume_losses.py). Each run has its own MLflow store and run directory under
`root / name`, so a test reads back only its own run."""

from __future__ import annotations

from pathlib import Path

STEPS = 8
CHECKPOINT_EVERY = 4


def job_mapping(root: Path, name: str) -> dict:
    here = root / name
    return {
        "model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64}},
        "data": {},
        # Two stages (64 then 128 tokens): a resume from step 4 lands inside the second one.
        "train": {"global_batch": 8, "micro_batch": 2, "start_length": 64, "target_length": 128, "steps": STEPS,
                  "warmup_stage_steps": 3, "log_every": 1, "val_windows": 4, "baseline_orders": [1], "seed": 11},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"every_steps": CHECKPOINT_EVERY, "keep": 2, "storage_path": str(here / "runs"), "name": name},
        "tracking": {"uri": tracking_uri(root, name), "register_as": "tiny-pretrain", "alias": "candidate"},
    }


def tracking_uri(root: Path, name: str) -> str:
    return f"sqlite:///{root / name}/mlflow.db"


def client(root: Path, name: str):
    from mlflow import MlflowClient

    uri = tracking_uri(root, name)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def history(root: Path, name: str, run_id: str, key: str = "train/loss") -> list[tuple[int, float]]:
    """(step, value) of every row logged for `key`, in logging order (duplicates kept)."""
    return [(m.step, m.value) for m in client(root, name).get_metric_history(run_id, key)]


def make_job(root: Path, name: str):
    from hyena_platform.train.config import job_from_mapping

    (root / name).mkdir(parents=True, exist_ok=True)
    return job_from_mapping(job_mapping(root, name), source=f"{name}.yaml")


def run_in_process(root: Path, name: str, progress=None):
    """The job run in this process (on the session's Ray): its PretrainResult. `progress` gets
    the driver's progress events (hyena_platform.train.launch.run_pretrain)."""
    from hyena_platform.train.launch import run_pretrain

    return run_pretrain(make_job(root, name), source=f"{name}.yaml", progress=progress, ray_logs=False)


def seq_len_by_step(job) -> dict[int, int]:
    """The sequence length each step of `job` trains at, from its length warm-up stages."""
    return {step: s.length for s in job.stages(1026) for step in range(s.start_step + 1, s.end_step + 1)}
