"""The ``submission:`` section of a job YAML: how `hyena submit` hands the job to Ray's job server.

Declared here, below both the job configs that embed it (train/config.py, score/config.py, ...)
and `hyena_platform.submit` that reads it, so that neither imports the other.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import Field

from hyena_platform.config import section

# Never uploaded with the working directory (Ray also skips what .gitignore lists).
DEFAULT_EXCLUDES = (".git", ".venv", "**/__pycache__", "*.egg-info", "runs", "mlruns", "mlartifacts",
                    "*.db", "hyena-demo", "build")
SUBMISSION_ID_FIELDS = ("job", "time", "user")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBMISSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Env var names that hold secrets: a job file is committed and stored in the cluster's job table.
_CREDENTIAL = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|API_KEY")


@section
class RuntimeEnvSection:
    """Ray's runtime_env for the job (the entrypoint and every task and actor it starts).

    Local paths are relative to the directory `hyena submit` runs in, as for ``ray job submit``.
    """

    working_dir: str | None = Field(".", description=(
        "The job's cwd. A local directory is uploaded (zipped into the GCS, unpacked on each node); local://DIR is "
        "used in place, nothing uploaded, for DIR on a filesystem every node shares (NFS, or one machine: "
        "cluster/local-fake-multinode.yaml); a remote package URI (s3://.../pkg.zip) is used as is. Relative DIRs "
        "are resolved where `hyena submit` runs."))
    excludes: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDES), description="gitignore-style")
    py_modules: list[str] = Field(default_factory=list, description="local packages or wheels put on PYTHONPATH")
    pip: list[str] = Field(default_factory=list, description="requirements installed into the job's env")
    env_vars: dict[str, str] = Field(default_factory=dict, description=(
        "environment variables of the job's processes (names only; never credentials)"))

    def validate(self) -> None:
        for name in self.env_vars:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"submission.runtime_env.env_vars.{name} is not a valid environment variable name")
            if _CREDENTIAL.search(name.upper()):
                raise ValueError(
                    f"submission.runtime_env.env_vars.{name} looks like a credential; job files are committed and "
                    "stored in the cluster's job table. Give nodes credentials through an instance profile / "
                    "service account, or the environment of `ray start`, not the job file"
                )
        for key in ("excludes", "py_modules", "pip"):
            if any(not item.strip() for item in getattr(self, key)):
                raise ValueError(f"submission.runtime_env.{key} holds an empty entry")
        if self.working_dir is not None and not self.working_dir.strip():
            raise ValueError("submission.runtime_env.working_dir is empty; use '.' or null (no upload)")


@section
class EntrypointSection:
    """Resources reserved for the job's driver process (the `hyena ...` command itself).

    All zero (Ray's default): the driver runs on the head node, where the MLflow server listens
    on 127.0.0.1. Ask for resources only if the head has them and the driver needs them.
    """

    num_cpus: float = Field(0.0, description="CPUs reserved for the driver (entrypoint) process on the cluster")
    num_gpus: float = Field(0.0, description="GPUs reserved for the driver process (workers ask for their own)")
    memory: int = Field(0, description="bytes")
    resources: dict[str, float] = Field(default_factory=dict, description="custom resources, e.g. {head: 0.01}")

    def validate(self) -> None:
        for key in ("num_cpus", "num_gpus", "memory"):
            if getattr(self, key) < 0:
                raise ValueError(f"submission.entrypoint.{key} must be >= 0, got {getattr(self, key)}")
        for name, amount in self.resources.items():
            if amount < 0:
                raise ValueError(f"submission.entrypoint.resources.{name} must be >= 0, got {amount}")


@section
class SubmissionSection:
    """The ``submission:`` section of a job YAML; read by `hyena submit`, ignored by the job itself."""

    runtime_env: RuntimeEnvSection
    entrypoint: EntrypointSection
    submission_id: str | None = Field(None, description=(
        "null: Ray makes one (raysubmit_...). Placeholders {job} (file stem), {time} (UTC), {user}. A fixed id makes"
        " a second submission of the same job fail instead of running twice."))
    metadata: dict[str, str] = Field(default_factory=dict, description="shown by `ray job list`")

    def validate(self) -> None:
        if self.submission_id is not None:
            example = format_submission_id(self.submission_id, job="pretrain", user="user", now=0.0)
            if not _SUBMISSION_ID.fullmatch(example):
                raise ValueError(
                    f"submission.submission_id={self.submission_id!r} gives {example!r}; use letters, digits, "
                    f"'.', '_', '-' and the placeholders {{{'}, {'.join(SUBMISSION_ID_FIELDS)}}}"
                )
        reserved = sorted(k for k in self.metadata if k.startswith("hyena."))
        if reserved:
            raise ValueError(f"submission.metadata.{reserved[0]}: keys starting with 'hyena.' are set by hyena submit")


def submission_field(command: str) -> Any:
    """A job's `submission:` section, which `command` (the job itself) ignores."""
    return Field(default_factory=SubmissionSection, description=(
        f"`hyena submit` settings (runtime_env, entrypoint resources, id, metadata); ignored by `{command}`."))


def format_submission_id(template: str, *, job: str, user: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    try:
        return template.format(job=job, time=stamp, user=user)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"submission.submission_id={template!r}: bad placeholder {err}; valid: "
            + ", ".join("{" + f + "}" for f in SUBMISSION_ID_FIELDS)
        ) from None
