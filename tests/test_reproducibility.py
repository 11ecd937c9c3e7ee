"""A fixed seed gives identical per-step training losses on CPU (issue 11: three identical runs
used to differ from step 1 or 2). Two real pretraining runs of tests/_pretrain_run.py's job (2 Ray
Train workers, tiny model, two stages): the session's reference run and one more here."""

from __future__ import annotations

import pytest

from _pretrain_run import STEPS, history, run_in_process

pytestmark = pytest.mark.integration


def test_two_runs_with_one_seed_have_identical_losses(reference_pretrain, tmp_path):
    first = reference_pretrain  # the session's run of this job (tests/conftest.py)
    again = run_in_process(tmp_path, "again")
    second = history(tmp_path, "again", again.run_id)
    assert sorted(s for s, _ in first) == list(range(1, STEPS + 1))
    assert sorted(first) == sorted(second)  # bit for bit, every step


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
