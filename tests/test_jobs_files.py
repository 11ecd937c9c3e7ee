"""Every file in jobs/ loads and validates with the loader of its command, and `hyena submit`
can build its submission (the job file inside its working_dir, py_modules present, ...)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hyena_platform.config import load_yaml_mapping
from hyena_platform.jobs import kind_of
from hyena_platform.submit import build_request

REPO = Path(__file__).resolve().parents[1]
JOBS = sorted((REPO / "jobs").glob("*.yaml"))
SHEBANG = "#!/usr/bin/env -S hyena run"


def test_there_are_jobs_of_every_kind():
    kinds = {kind_of(load_yaml_mapping(p), source=p.name) for p in JOBS}
    assert {"pretrain", "score", "shard"} <= kinds
    names = {p.name for p in JOBS}
    assert {"pretrain.yaml", "score.yaml", "pretrain_smoke.yaml", "pretrain_fake_cluster.yaml"} <= names


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_job_file_loads_validates_and_builds_its_submission(path):
    request = build_request(path.relative_to(REPO), cwd=REPO)  # loads with the kind's strict loader
    assert request.entrypoint.startswith(f"hyena {request.kind} jobs/{path.name}")
    text = path.read_text()
    assert text.startswith(SHEBANG + "\n#"), (
        f"{path.name}: start with {SHEBANG!r}, then a comment saying what the job is and how to run it")
    assert os.access(path, os.X_OK), f"{path.name}: make it executable (chmod +x), so `{path.name}` runs it"
    assert load_yaml_mapping(path)["kind"] == request.kind  # every job file says what it is


@pytest.mark.parametrize("name", ["pretrain_smoke.yaml", "pretrain_fake_cluster.yaml"])
def test_small_pretrain_jobs_run_on_one_machine_with_the_bundled_genome(name):
    from hyena_platform.train.config import load_job

    job = load_job(REPO / "jobs" / name)
    assert job.data.uses_bundled_genome and not job.scaling.use_gpu
    assert job.scaling.num_workers * job.scaling.cpus_per_worker <= 2
    assert job.stages(job.model.hyena_config().l_max)[-1].end_step <= 10


def test_the_cluster_recipe_is_a_gpu_warm_up_from_64():
    from hyena_platform.train.config import load_job

    job = load_job(REPO / "jobs" / "pretrain.yaml")
    stages = job.stages(job.model.hyena_config().l_max)
    assert job.scaling.use_gpu and stages[0].length == 64 and len(stages) > 3
    assert job.submission.runtime_env.working_dir == "."
