"""The terminal shows our progress and results only (issue 16): a real `hyena pretrain` in a
subprocess, on a new SQLite store (MLflow's table-creation INFO lines), through Ray Train and
Ray Data (deprecation warnings), prints no INFO, WARNING or DeprecationWarning line of MLflow,
alembic or Ray. The local start's own notices (token authentication, the raylet's worker count)
are checked by tests/test_network.py, whose `hyena shard` starts its own local Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _quiet import library_noise

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]

def test_noise_pattern_catches_what_the_libraries_print():
    printed = [
        "2026/11/29 23:22:28 INFO mlflow.store.db.utils: Creating initial MLflow database tables...",
        "2026-11-29 23:22:34,465\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled",
        "\x1b[33m(raylet)\x1b[0m WARNING: 8 PYTHON worker processes have been started on node: ab",
        "/x/execution_options.py:436: RayDeprecationWarning: `ExecutionOptions.exclude_resources` is deprecated",
        "[2026-11-30 01:02:03,456 W 1234 5678] actor_manager.cc:187: Actor 'MapWorker(MapBatches(ScoreReplica))' "
        "has constructor arguments in the object store and max_restarts > 0.",
    ]
    assert library_noise("\n".join(printed)) == printed
    assert library_noise("  [stage 1/2 L=64] step 4/6  loss 2.1675  7,280 tok/s  ETA -\n"
                         "    held-out L=64 at step 4: loss 2.1159  perplexity 8.2970  3.0526 bits/base") == []


def test_pretrain_prints_only_our_lines(ray_cluster, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64, "n_layer": 1}},
        "data": {},
        "train": {"global_batch": 4, "micro_batch": 2, "start_length": 64, "target_length": 128, "steps": 4,
                  "warmup_stage_steps": 2, "log_every": 2, "val_windows": 2, "baseline_orders": [1]},
        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"every_steps": 4, "keep": 1, "storage_path": str(tmp_path / "runs"), "name": "quiet"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "register_as": "quiet", "alias": "candidate"},
    }))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    env.pop("PYTHONWARNINGS", None)  # Python's default warning filters, as a user has them
    proc = subprocess.run([sys.executable, "-m", "hyena_platform.cli", "pretrain", str(job)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "models:/quiet" in out and "step 4/4" in out, out  # our progress and result did show
    assert library_noise(out) == [], out
