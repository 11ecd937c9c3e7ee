"""`hyena sweep`: strict sweep files (one-line errors before any run), the trial grid, and a real
two-trial sweep (tiny model, a few steps, the session's Ray, a SQLite MLflow store) whose child
runs, parent run, ranking and best-trial alias are read back from MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from hyena_platform.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write_job(tmp: Path) -> Path:
    job = {
        "kind": "pretrain",
        "model": {"variant": "tiny-1k", "overrides": {"d_model": 16, "d_inner": 32}},
        "data": {},
        "train": {"global_batch": 4, "micro_batch": 2, "start_length": 64, "target_length": 128, "steps": 4,
                  "warmup_stage_steps": 2, "log_every": 2, "val_windows": 4, "baseline_orders": [1, 3]},
        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"every_steps": 4, "keep": 1, "storage_path": str(tmp / "runs")},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "experiment": "sweep-test", "register_as": "hyena-sweep-test"},
    }
    path = tmp / "pre.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def write_sweep(tmp: Path, **fields) -> Path:
    write_job(tmp)
    path = tmp / "lr.yaml"
    path.write_text(yaml.safe_dump({"kind": "sweep", "job": "pre.yaml", **fields}))
    return path


def test_grid_then_listed_trials_each_a_validated_job(tmp_path):
    from hyena_platform.train.sweep import load_sweep, plan_trials

    path = write_sweep(tmp_path, set=["train.steps=6"], grid={"train.lr": [1e-3, 3e-3], "train.seed": [0, 1]},
                       trials=[{"model.overrides.d_model": 24}])
    trials = plan_trials(load_sweep(path), path)
    assert [t.overrides for t in trials] == [
        {"train.lr": 1e-3, "train.seed": 0}, {"train.lr": 1e-3, "train.seed": 1},
        {"train.lr": 3e-3, "train.seed": 0}, {"train.lr": 3e-3, "train.seed": 1}, {"model.overrides.d_model": 24}]
    assert [t.job.train.lr for t in trials[:4]] == [1e-3, 1e-3, 3e-3, 3e-3]
    assert all(t.job.train.steps == 6 for t in trials)  # `set` reaches every trial
    assert trials[4].job.model.overrides["d_model"] == 24
    assert [t.job.checkpoint.name for t in trials] == [f"lr-t{i:02d}" for i in range(1, 6)]
    assert trials[2].job.tracking.alias == "lr-t03"


@pytest.mark.parametrize("fields, expected", [
    ({"grid": {"train.lr": [1e-3]}, "budget": 3}, "unknown key budget; valid keys in top level: grid, job, kind, name, set, trials"),
    ({"grid": {"train.lrr": [1e-3]}}, "trial 1 (train.lrr=0.001)"),
    ({"grid": {"train.lr": []}}, "grid.train.lr must be a non-empty list"),
    ({}, "no trials"),
    ({"grid": {"train.lr": [1e-3]}, "job": "missing.yaml"}, "job: 'missing.yaml' not found"),
    ({"grid": {"train.lr": ["fast"]}}, "train.lr"),
])
def test_bad_sweep_files_are_one_line_config_errors(tmp_path, fields, expected):
    from hyena_platform.train.sweep import load_sweep

    with pytest.raises(ConfigError) as err:
        load_sweep(write_sweep(tmp_path, **fields))
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(tmp_path / "lr.yaml") in str(err.value)


def test_cli_bad_sweep_exits_with_one_line(tmp_path, capsys):
    from hyena_platform.cli import main

    path = write_sweep(tmp_path, grid={"train.lrr": [1e-3]})
    assert main(["sweep", str(path)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("hyena sweep: error:") and "unknown key train.lrr" in err and "\n" not in err
    assert not (tmp_path / "mlflow.db").exists()  # nothing ran


def test_the_example_sweep_file_loads():
    from hyena_platform.train.sweep import load_sweep, plan_trials

    path = REPO / "jobs" / "sweep_local.yaml"
    trials = plan_trials(load_sweep(path), path)
    assert len(trials) >= 2 and all(t.job.kind == "pretrain" for t in trials)


def final(c, run_id: str, key: str) -> float:
    """The value of `key` at the run's last logged step (the final stage's end)."""
    return max(c.get_metric_history(run_id, key), key=lambda m: m.step).value


@pytest.mark.integration
def test_two_trial_sweep_tracks_ranks_and_registers_the_best(ray_cluster, tmp_path):
    from mlflow import MlflowClient

    from hyena_platform.train.sweep import PARENT_TAG, load_sweep, run_sweep

    path = write_sweep(tmp_path, grid={"train.lr": [1e-5, 3e-3]})
    lines: list[str] = []
    result = run_sweep(load_sweep(path), path, progress=lines.append)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)

    assert len(result.results) == 2
    parent = c.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "lr"
    margins = {}
    for r in result.results:
        run = c.get_run(r.run_id)  # each trial is its own finished MLflow run under the parent
        assert run.info.status == "FINISHED" and run.data.tags[PARENT_TAG] == parent.info.run_id
        assert float(run.data.params["train.lr"]) == r.trial.job.train.lr
        assert run.data.params["checkpoint.name"] == r.trial.name
        bits = final(c, r.run_id, "val/bits_per_base")
        assert math.isclose(bits, r.bits_per_base, rel_tol=1e-9)
        base = {k: final(c, r.run_id, f"baseline/order_{k}/bits_per_base") for k in (1, 3)}
        assert math.isclose(r.margin, min(base.values()) - bits, rel_tol=1e-9)
        margins[r.trial.number] = r.margin
    # The ranking follows the margins read back from MLflow, and the best is reported and registered.
    order = sorted(margins, key=lambda n: -margins[n])
    rows = result.table().splitlines()[1:]
    assert [int(row.split()[1]) for row in rows] == order
    assert result.best.trial.number == order[0]
    assert parent.data.tags["hyena.sweep.best_trial"] == str(order[0])
    best_version = c.get_model_version_by_alias("hyena-sweep-test", "lr-best")
    assert best_version.run_id == result.best.run_id
    assert "sweep.txt" in [f.path for f in c.list_artifacts(parent.info.run_id)]
    assert sum("trial" in line for line in lines) >= 4  # start and result lines per trial

    again = run_sweep(load_sweep(path), path, progress=lines.append)  # a rerun reuses both trials
    assert all(r.reused for r in again.results) and again.parent_run_id == result.parent_run_id
