"""`hyena submit` without a cluster: the submission section, the request it builds (entrypoint,
runtime_env, id, metadata, resources) and the errors a user can cause. Milliseconds each."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hyena_platform.errors import ConfigError
from hyena_platform.jobs import KINDS, kind_of
from hyena_platform.submit import (
    DEFAULT_ADDRESS,
    SubmissionSection,
    build_request,
    resolve_address,
    token_auth_wanted,
)

REPO = Path(__file__).resolve().parents[1]
TINY = {"model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64}},
        "train": {"steps": 4, "global_batch": 4, "micro_batch": 2, "target_length": 128, "start_length": 64,
                  "warmup_stage_steps": 2},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5}}


def write_job(root: Path, submission: dict | None = None, name: str = "jobs/job.yaml", **sections) -> Path:
    data = {**TINY, **sections}
    if submission is not None:
        data["submission"] = submission
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_upload_the_directory_and_run_the_same_command_there(tmp_path):
    write_job(tmp_path)
    req = build_request("jobs/job.yaml", ["train.lr=3e-4", "model.overrides={d_model: 32, d_inner: 64}"],
                        ["--fresh"], cwd=tmp_path)
    assert req.kind == "pretrain"
    # One shell word per argument, whatever the values hold.
    assert shlex.split(req.entrypoint) == ["hyena", "pretrain", "jobs/job.yaml", "--set", "train.lr=3e-4",
                                           "--set", "model.overrides={d_model: 32, d_inner: 64}", "--fresh"]
    assert req.runtime_env["working_dir"] == str(tmp_path)
    assert ".venv" in req.runtime_env["excludes"] and "runs" in req.runtime_env["excludes"]
    assert req.runtime_env["env_vars"] == {"PYTHONUNBUFFERED": "1"}
    assert req.submission_id is None
    assert req.metadata["hyena.command"] == "pretrain" and req.metadata["hyena.job"] == "jobs/job.yaml"
    assert req.metadata["hyena.overrides"].startswith("train.lr=3e-4")
    assert req.kwargs()["entrypoint"] == req.entrypoint
    assert "entrypoint_num_cpus" not in req.kwargs()  # the driver stays on the head


def test_the_section_maps_onto_rays_submit_job_arguments(tmp_path):
    (tmp_path / "pkg").mkdir()
    write_job(tmp_path, {
        "runtime_env": {"working_dir": ".", "excludes": ["data/"], "py_modules": ["pkg", "s3://b/m.zip"],
                        "pip": ["pyfaidx==0.8.1"], "env_vars": {"NCCL_DEBUG": "WARN"}},
        "entrypoint": {"num_cpus": 1, "num_gpus": 0.5, "memory": 2_000_000_000, "resources": {"head": 0.01}},
        "submission_id": "{job}-{user}-x",
        "metadata": {"team": "genomics"},
    })
    req = build_request(str(tmp_path / "jobs/job.yaml"), cwd=tmp_path)
    kw = req.kwargs()
    assert kw["runtime_env"]["py_modules"] == [str(tmp_path / "pkg"), "s3://b/m.zip"]
    assert kw["runtime_env"]["pip"] == ["pyfaidx==0.8.1"] and kw["runtime_env"]["excludes"] == ["data/"]
    assert kw["runtime_env"]["env_vars"] == {"PYTHONUNBUFFERED": "1", "NCCL_DEBUG": "WARN"}
    assert (kw["entrypoint_num_cpus"], kw["entrypoint_num_gpus"], kw["entrypoint_memory"]) == (1, 0.5, 2_000_000_000)
    assert kw["entrypoint_resources"] == {"head": 0.01}
    assert kw["submission_id"].startswith("job-") and kw["submission_id"].endswith("-x")
    assert kw["metadata"]["team"] == "genomics"
    assert "hyena pretrain jobs/job.yaml" in req.entrypoint  # relative to the working dir


def test_local_working_dir_is_used_in_place(tmp_path):
    write_job(tmp_path, {"runtime_env": {"working_dir": "local://."}})
    req = build_request("jobs/job.yaml", cwd=tmp_path)
    assert req.runtime_env["working_dir"] == f"local://{tmp_path}"
    assert "excludes" not in req.runtime_env  # nothing is uploaded


def test_no_working_dir_passes_the_path_as_given(tmp_path):
    write_job(tmp_path, {"runtime_env": {"working_dir": None}})
    req = build_request("jobs/job.yaml", cwd=tmp_path)
    assert "working_dir" not in req.runtime_env and "hyena pretrain jobs/job.yaml" == req.entrypoint


@pytest.mark.parametrize("submission, overrides, flags, message", [
    ({"runtime_env": {"env_vars": {"AWS_SECRET_ACCESS_KEY": "x"}}}, [], [], "looks like a credential"),
    ({"runtime_env": {"env_vars": {"1BAD": "x"}}}, [], [], "not a valid environment variable name"),
    ({"runtime_env": {"py_modules": ["missing_pkg"]}}, [], [], "missing_pkg' does not exist"),
    ({"runtime_env": {"working_dir": "elsewhere"}}, [], [], "no directory"),
    ({"runtime_env": {"workdir": "."}}, [], [], "unknown key submission.runtime_env.workdir"),
    ({"entrypoint": {"num_gpus": -1}}, [], [], "num_gpus must be >= 0"),
    ({"submission_id": "{job}-{when}"}, [], [], "bad placeholder"),
    ({"submission_id": "has space"}, [], [], "use letters, digits"),
    ({"metadata": {"hyena.job": "x"}}, [], [], "set by hyena submit"),
    (None, ["train.steps=oops"], [], "train.steps must be an integer"),
    (None, [], ["--overwrite"], "--overwrite is not an option of `hyena pretrain`"),
])
def test_user_errors_name_the_key_and_the_fix(tmp_path, submission, overrides, flags, message):
    write_job(tmp_path, submission)
    with pytest.raises(ConfigError, match="jobs/job.yaml") as err:
        build_request("jobs/job.yaml", overrides, flags, cwd=tmp_path)
    assert message in str(err.value)


def test_a_job_file_outside_the_working_dir_is_refused(tmp_path):
    (tmp_path / "wd").mkdir()
    write_job(tmp_path, {"runtime_env": {"working_dir": "wd"}})
    with pytest.raises(ConfigError, match="outside submission.runtime_env.working_dir"):
        build_request("jobs/job.yaml", cwd=tmp_path)


def test_kind_from_the_sections_when_a_file_has_no_kind():
    assert kind_of({"model": {}, "train": {}}, source="a") == "pretrain"
    assert kind_of({"model": {"uri": "x"}, "output": {"path": "o"}}, source="a") == "score"
    assert kind_of({"output": "shards/", "data": {}}, source="a") == "shard"
    with pytest.raises(ConfigError, match="either a pretrain job or a score job"):
        kind_of({"train": {}, "window": {}}, source="a")


def test_an_explicit_kind_wins_and_must_be_known():
    assert kind_of({"kind": "shard", "model": {}, "train": {}}, source="a") == "shard"
    with pytest.raises(ConfigError, match=r"a: kind must be one of pretrain, score, shard.*got 'trian'"):
        kind_of({"kind": "trian"}, source="a")
    assert set(KINDS) >= {"pretrain", "score", "shard"}


def test_score_and_shard_jobs_are_submitted_with_their_command(tmp_path):
    path = tmp_path / "score.yaml"
    path.write_text(yaml.safe_dump({"model": {"uri": "models:/m@candidate"}, "output": {"path": "out"},
                                    "submission": {"metadata": {"k": "v"}}}))
    req = build_request(path, cwd=tmp_path, extra_args=["--overwrite"])
    assert req.entrypoint == "hyena score score.yaml --overwrite" and req.metadata["k"] == "v"
    (tmp_path / "shard.yaml").write_text(yaml.safe_dump({"output": "shards/x"}))
    assert build_request("shard.yaml", cwd=tmp_path).entrypoint == "hyena shard shard.yaml"


def test_address_precedence(monkeypatch):
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_address(None) == DEFAULT_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.1:8265")
    assert resolve_address(None) == "http://10.0.0.1:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:9999")
    assert resolve_address(None) == "http://127.0.0.1:9999"
    assert resolve_address("http://127.0.0.1:1234") == "http://127.0.0.1:1234"


def test_token_mode_follows_an_available_token(tmp_path):
    assert token_auth_wanted({}, home=tmp_path) is False
    assert token_auth_wanted({"RAY_AUTH_TOKEN_PATH": "/t"}, home=tmp_path) is True
    assert token_auth_wanted({"RAY_AUTH_TOKEN": "x"}, home=tmp_path) is True
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x")
    assert token_auth_wanted({}, home=tmp_path) is True
    assert token_auth_wanted({"RAY_AUTH_MODE": "disabled"}, home=tmp_path) is False
    assert token_auth_wanted({"RAY_AUTH_MODE": "token"}, home=tmp_path / "none") is True


def test_section_defaults_are_valid_and_part_of_every_job_dataclass():
    import dataclasses

    from hyena_platform.score.config import ScoreJob
    from hyena_platform.train.config import PretrainJob

    SubmissionSection().validate()
    for cls in (PretrainJob, ScoreJob):
        field = {f.name: f for f in dataclasses.fields(cls)}["submission"]
        assert field.type in (SubmissionSection, "SubmissionSection")


def test_cli_dry_run_prints_the_request_and_contacts_nothing(tmp_path):
    write_job(tmp_path, {"submission_id": "fixed-id"})
    env = {**os.environ, "RAY_API_SERVER_ADDRESS": "http://127.0.0.1:9"}  # nothing listens there
    r = subprocess.run([sys.executable, "-m", "hyena_platform.cli", "submit", "jobs/job.yaml", "--dry-run",
                        "--set", "train.steps=6"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["entrypoint"] == "hyena pretrain jobs/job.yaml --set train.steps=6"
    assert shown["submission_id"] == "fixed-id"


def test_cli_reports_an_unreachable_job_server_in_one_line(tmp_path):
    write_job(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-m", "hyena_platform.cli", "submit", "jobs/job.yaml",
                        "--address", "http://127.0.0.1:9"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "cannot reach the Ray job server at http://127.0.0.1:9" in r.stderr and "Traceback" not in r.stderr


def test_the_client_environment_is_set_by_the_command_not_the_library(tmp_path):
    from hyena_platform.submit import client_environment

    env = {"RAY_ADDRESS": "http://10.0.0.1:8265", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "t")}
    assert client_environment(None, env) == "http://10.0.0.1:8265"  # the variable, resolved once
    assert env == {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "t"), "RAY_AUTH_MODE": "token"}
    env = {"RAY_API_SERVER_ADDRESS": "http://a:1", "RAY_AUTH_MODE": "disabled"}
    assert client_environment("http://b:2", env) == "http://b:2" and env == {"RAY_AUTH_MODE": "disabled"}
