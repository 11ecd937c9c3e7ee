"""A pretraining run whose driver is killed after a checkpoint, rerun with the same command,
continues the same MLflow run and ends with the same losses as an uninterrupted run of the same
seed (issue 11), bit for bit on CPU: the resumed run restores the weights, the optimizer and
scheduler, every RNG state and the data position (how many batches of the stage were consumed),
and the data pipeline is deterministic (tests/test_reproducibility.py).

The kill is real: SIGKILL to a `hyena pretrain` process once its first checkpoint is on disk; the
same `hyena pretrain JOB` command again (same checkpoint.name and storage_path) resumes from it.
Neither command prints a library's log or warning lines (issue 16, tests/_quiet.py).
A training worker SIGKILLed after the first checkpoint: Ray Train restarts the worker group from
it, in the right stage, and the run again ends with the uninterrupted run's losses.
The uninterrupted run is the session's `reference_pretrain` (tests/conftest.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from _driver_kill import kill_after_first_checkpoint, run_cli
from _quiet import library_noise
from _pretrain_run import CHECKPOINT_EVERY, STEPS, client, history, job_mapping, make_job, run_in_process, seq_len_by_step

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def test_a_killed_driver_rerun_resumes_the_same_run_with_the_uninterrupted_runs_losses(
        reference_pretrain, ray_cluster, tmp_path):
    whole = reference_pretrain
    expected = dict(whole)
    assert sorted(expected) == list(range(1, STEPS + 1))

    name = "killed"
    (tmp_path / name).mkdir()
    job_file = tmp_path / f"{name}.yaml"
    job_file.write_text(yaml.safe_dump(job_mapping(tmp_path, name)))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    env.pop("PYTHONWARNINGS", None)  # Python's default warning filters, as a user has them
    lines, done = kill_after_first_checkpoint("pretrain", tmp_path, job_file, env, tmp_path / name / "runs" / name,
                                              timeout_s=400)
    assert done and max(done) < STEPS, "the driver was killed too late"

    rerun = run_cli("pretrain", tmp_path, job_file, env)  # the same command again
    out, _ = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, out
    assert "resumed from the checkpoint at step" in out, out
    # The terminal showed our progress and results only (issue 16): across both commands, a new
    # SQLite store (MLflow's table creation), Ray Train and Ray Data, the k-mer baseline, the
    # resume and the registration printed no INFO, WARNING or DeprecationWarning line of a library.
    assert f"step {STEPS}/{STEPS}" in out and "models:/tiny-pretrain" in out, out
    assert library_noise("".join(lines) + out) == [], "".join(lines) + "\n--- rerun ---\n" + out

    c = client(tmp_path, name)
    runs = c.search_runs([c.get_experiment_by_name("hyena-pretrain").experiment_id])
    assert len(runs) == 1, "the rerun must continue the same MLflow run"
    run = runs[0]
    assert run.info.status == "FINISHED"
    resumed = history(tmp_path, name, run.info.run_id, "train/resumed_from_step")
    assert len(resumed) == 1 and resumed[0][1] >= CHECKPOINT_EVERY  # resumed, not restarted
    logged = history(tmp_path, name, run.info.run_id)
    # Each step logged once (the steps before the kill, then the rest), none missing ...
    assert sorted(s for s, _ in logged) == list(range(1, STEPS + 1)), "".join(lines) + "\n--- rerun ---\n" + out
    # ... and every logged loss equals the uninterrupted run's at that step, bit for bit.
    assert [(s, expected[s]) for s, _ in logged] == logged
    assert c.get_model_version_by_alias("tiny-pretrain", "candidate").run_id == run.info.run_id


def test_a_killed_worker_restarts_from_the_checkpoint_in_the_right_stage_with_the_same_losses(
        reference_pretrain, tmp_path):
    whole = reference_pretrain
    name = "worker-kill"
    killed: list[int] = []

    def on_progress(event: dict) -> None:
        if not killed and event.get("checkpoint") and event["step"] < STEPS:
            os.kill(event["worker_pids"][1], signal.SIGKILL)
            killed.append(event["step"])

    result = run_in_process(tmp_path, name, progress=on_progress)
    assert killed, "no checkpoint was reported early enough to kill a worker"
    resumed = history(tmp_path, name, result.run_id, "train/resumed_from_step")
    assert len(resumed) == 1
    resumed_step = int(resumed[0][1])
    assert resumed_step >= killed[0] and resumed_step % CHECKPOINT_EVERY == 0  # a checkpoint step, not 0
    loss = history(tmp_path, name, result.run_id)
    assert sorted(s for s, _ in loss) == list(range(1, STEPS + 1))  # no step repeated, none missing
    assert sorted(loss) == sorted(whole)  # the restarted workers continued the same batches, bit for bit
    seq_len = {s: int(v) for s, v in history(tmp_path, name, result.run_id, "train/seq_len")}
    assert seq_len == seq_len_by_step(make_job(tmp_path, name))
    assert sorted(s for s, _ in history(tmp_path, name, result.run_id, "val/loss")) == [3, STEPS]  # each stage's end
    assert client(tmp_path, name).get_model_version_by_alias("tiny-pretrain", "candidate").run_id == result.run_id
