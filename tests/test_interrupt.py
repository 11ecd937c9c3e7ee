"""One Ctrl-C (a real SIGINT to a real `hyena pretrain` process) stops the job cleanly: exit 130,
one line, the MLflow run marked KILLED, nothing registered, the checkpoints left for a rerun to
resume, the run directory's lock released (issue 11)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def test_one_sigint_stops_pretraining_registers_nothing_and_leaves_checkpoints(ray_cluster, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64}},
        "data": {},
        "train": {"global_batch": 8, "micro_batch": 2, "start_length": 64, "target_length": 128, "steps": 400,
                  "warmup_stage_steps": 2, "log_every": 1, "val_windows": 4, "baseline_orders": []},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"every_steps": 2, "keep": 2, "storage_path": str(tmp_path / "runs"), "name": "ctrl-c"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "register_as": "ctrl-c", "alias": "candidate"},
    }))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    proc = subprocess.Popen([sys.executable, "-m", "hyena_platform.cli", "pretrain", str(job)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    run_dir = tmp_path / "runs" / "ctrl-c"
    snapshot = run_dir / "checkpoint_manager_snapshot.json"
    try:
        deadline = time.time() + 400
        while not (snapshot.is_file() and "checkpoint_0" in snapshot.read_text()):
            assert proc.poll() is None, "".join(lines)
            assert time.time() < deadline, "no checkpoint in time:\n" + "".join(lines)
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # once
        t0 = time.time()
        code = proc.wait(timeout=120)
        stopped_in = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    out = "".join(lines)
    assert code == 130, out
    assert out.strip().splitlines()[-1] == "hyena pretrain: interrupted" and "Traceback" not in out, out
    print(f"stopped {stopped_in:.1f} s after SIGINT")

    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", registry_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = c.search_runs([c.get_experiment_by_name("hyena-pretrain").experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]
    assert c.search_model_versions("name='ctrl-c'") == []  # nothing registered
    steps = [json.loads(p.read_text())["step"] for p in run_dir.glob("checkpoint_*/meta.json")]
    assert steps and max(steps) < 400  # a resumable state: rerunning the job continues from here
    assert not (run_dir / ".hyena-output.lock").exists()
