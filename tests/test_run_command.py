"""`hyena run JOB.yaml` dispatches on the file's `kind:`, and an executable job file runs itself
through its `#!/usr/bin/env -S hyena run` line. Checked with config errors, which stop before
Ray or MLflow load: the message says which kind's strict loader read the file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin, where `hyena` is installed


def _run_cli(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom hyena_platform.cli import main\n"
            f"rc = main({list(argv)!r})\nprint('ray' in sys.modules, 'mlflow' in sys.modules)\nsys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("job, override, message", [
    ("jobs/pretrain_smoke.yaml", "train.precision=fp8", "train.precision must be one of 'auto', 'fp32', 'bf16'"),
    ("jobs/score_local.yaml", "window.stride=0", "window.stride must be >= 1, got 0"),
    ("jobs/shard.yaml", "data.chunk_size=3", "chunk_size must be in [16,"),
])
def test_run_dispatches_on_kind_to_that_kinds_loader(job, override, message):
    proc = _run_cli("run", job, "--set", override)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"hyena run: error: {job}: ") and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout.strip() == "False False"  # stopped before Ray or MLflow


def test_run_passes_the_flags_of_the_kind_and_refuses_others():
    proc = _run_cli("run", "jobs/shard.yaml", "--fresh")  # shard takes --overwrite, not --fresh
    assert proc.returncode == 2 and "unrecognized arguments: --fresh" in proc.stderr, proc.stderr


def test_a_file_with_an_unknown_kind_is_one_line(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("kind: pretrian\nmodel: {variant: tiny-1k}\n")
    proc = _run_cli("run", str(job))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"hyena run: error: {job}: kind must be one of pretrain, score, shard, finetune, "
                                   "predict, vep, embed, sweep, got 'pretrian'")


def test_the_kind_key_is_checked_by_the_job_loader_too(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("kind: score\nmodel: {variant: tiny-1k}\n")
    proc = _run_cli("pretrain", str(job))  # the alias of another kind
    assert proc.returncode == 2 and "kind must be one of 'pretrain', got 'score'" in proc.stderr, proc.stderr


@pytest.mark.skipif(not (BIN / "hyena").exists() or shutil.which("env") is None, reason="no installed `hyena`")
def test_an_executable_job_file_runs_itself():
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(["jobs/pretrain_smoke.yaml", "--set", "train.precision=fp8"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("hyena run: error: jobs/pretrain_smoke.yaml: train.precision"), proc.stderr
