"""Submit a job YAML to a Ray cluster through Ray's job submission API (`hyena submit`).

What runs on the cluster is the command a user would type on the head node:

    hyena pretrain jobs/pretrain.yaml --set train.lr=3e-4

started by Ray's job server in the uploaded working directory. `hyena submit` adds what the
job file's ``submission:`` section (SubmissionSection) says: runtime_env (working_dir, excludes,
env_vars, pip, py_modules), the entrypoint's own resources, a submission id and metadata. So

    hyena submit jobs/pretrain.yaml
    ray job submit --working-dir . -- hyena pretrain jobs/pretrain.yaml

run the same job; the first also validates the job file here, before anything is uploaded,
follows the logs and exits with the job's outcome (0 succeeded, 1 failed or stopped).

The job server is reached over HTTP: ``--address``, else RAY_API_SERVER_ADDRESS, else
RAY_ADDRESS, else http://127.0.0.1:8265 (the dashboard port forwarded from the head by
``ray attach cluster/aws.yaml -p 8265``). Clusters with token authentication (Ray's default for
clusters started with ``ray start`` when a token exists) need the same token here: RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; when one is present token mode is switched on.

Ray is imported inside the functions that talk to the cluster. The ``submission:`` section
types live in hyena_platform.submission, beside the job configs that embed them.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, MutableMapping, Sequence, TextIO

from hyena_platform.errors import ConfigError, HyenaPlatformError
from hyena_platform.jobs import KINDS, load_job
from hyena_platform.submission import SubmissionSection, format_submission_id

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
LOCAL_PREFIX = "local://"  # Ray's in-place working_dir: a directory that exists on every node
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class SubmitError(HyenaPlatformError):
    """The job could not be submitted or followed (no job server, no token, duplicate id, ...)."""


# ------------------------------------------------------------------------------ the request


@dataclass(frozen=True)
class SubmitRequest:
    """Everything sent to the job server; `kwargs()` is JobSubmissionClient.submit_job's."""

    kind: str
    job_file: str  # as the entrypoint names it (relative to the working directory)
    entrypoint: str
    runtime_env: dict[str, Any]
    submission_id: str | None
    metadata: dict[str, str]
    entrypoint_resources: dict[str, Any]

    def kwargs(self) -> dict[str, Any]:
        return {"entrypoint": self.entrypoint, "runtime_env": self.runtime_env or None,
                "submission_id": self.submission_id, "metadata": self.metadata, **self.entrypoint_resources}

    def describe(self) -> str:
        import yaml

        return yaml.safe_dump({"entrypoint": self.entrypoint, "runtime_env": self.runtime_env,
                               "submission_id": self.submission_id, "metadata": self.metadata,
                               **self.entrypoint_resources}, sort_keys=False).rstrip()


def build_request(job_file: str | Path, overrides: Sequence[str] = (), extra_args: Sequence[str] = (),
                  *, cwd: str | Path | None = None) -> SubmitRequest:
    """Validate the job here (with its overrides) and build the submission; ConfigError on problems."""
    cwd = Path(cwd or os.getcwd()).resolve()
    source = str(job_file)
    path = Path(job_file)
    path = (path if path.is_absolute() else cwd / path).resolve()
    kind, job = load_job(path, overrides)
    section: SubmissionSection = getattr(job, "submission", None) or SubmissionSection()
    renv = section.runtime_env

    runtime_env: dict[str, Any] = {}
    job_arg = source
    if renv.working_dir is not None:
        in_place = renv.working_dir.startswith(LOCAL_PREFIX)
        if "://" in renv.working_dir and not in_place:
            runtime_env["working_dir"] = renv.working_dir  # a remote package (s3://...zip): as is
        else:
            wd = (cwd / renv.working_dir.removeprefix(LOCAL_PREFIX)).resolve()
            if not wd.is_dir():
                raise ConfigError(f"{source}: submission.runtime_env.working_dir={renv.working_dir!r}: no directory {wd}")
            try:
                job_arg = path.relative_to(wd).as_posix()
            except ValueError:
                raise ConfigError(
                    f"{source}: the job file is outside submission.runtime_env.working_dir ({wd}), so the cluster "
                    "would not see it; move it under that directory or change working_dir"
                ) from None
            # local://DIR: used in place on every node (a shared filesystem), nothing uploaded.
            runtime_env["working_dir"] = f"{LOCAL_PREFIX}{wd}" if in_place else str(wd)
        if renv.excludes and not runtime_env["working_dir"].startswith(LOCAL_PREFIX):
            runtime_env["excludes"] = list(renv.excludes)
    if renv.py_modules:
        modules = []
        for item in renv.py_modules:
            if "://" in item:
                modules.append(item)
                continue
            local = (cwd / item).resolve()
            if not local.exists():
                raise ConfigError(f"{source}: submission.runtime_env.py_modules: {item!r} does not exist ({local})")
            modules.append(str(local))
        runtime_env["py_modules"] = modules
    if renv.pip:
        runtime_env["pip"] = list(renv.pip)
    # Unbuffered output: the job's log lines reach `hyena submit` as they are printed.
    runtime_env["env_vars"] = {"PYTHONUNBUFFERED": "1", **renv.env_vars}

    flags = KINDS[kind].flags
    unsupported = [flag for flag in extra_args if flag not in flags]
    if unsupported:
        raise ConfigError(f"{source}: {unsupported[0]} is not an option of `hyena {kind}` "
                          f"(it takes {', '.join(flags) or 'no flags'})")
    command = ["hyena", kind, job_arg]
    for item in overrides:
        command += ["--set", item]
    command += list(extra_args)
    user = _user()
    submission_id = None
    if section.submission_id is not None:
        try:
            submission_id = format_submission_id(section.submission_id, job=path.stem, user=user)
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
    metadata = {**section.metadata, "hyena.command": kind, "hyena.job": job_arg, "hyena.user": user}
    if overrides:
        metadata["hyena.overrides"] = " ".join(overrides)
    ep = section.entrypoint
    resources: dict[str, Any] = {}
    if ep.num_cpus:
        resources["entrypoint_num_cpus"] = ep.num_cpus
    if ep.num_gpus:
        resources["entrypoint_num_gpus"] = ep.num_gpus
    if ep.memory:
        resources["entrypoint_memory"] = ep.memory
    if ep.resources:
        resources["entrypoint_resources"] = dict(ep.resources)
    return SubmitRequest(kind=kind, job_file=job_arg, entrypoint=shlex.join(command), runtime_env=runtime_env,
                         submission_id=submission_id, metadata=metadata, entrypoint_resources=resources)


def _user() -> str:
    import getpass

    try:
        return re.sub(r"[^A-Za-z0-9._-]", "-", getpass.getuser()) or "user"
    except (KeyError, OSError):
        return "user"


# --------------------------------------------------------------------------- the job server


def resolve_address(address: str | None, environ: Mapping[str, str] | None = None) -> str:
    """--address, else RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, else http://127.0.0.1:8265."""
    environ = os.environ if environ is None else environ
    return address or environ.get("RAY_API_SERVER_ADDRESS") or environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS


def token_auth_wanted(environ: Mapping[str, str] | None = None, home: str | Path | None = None) -> bool:
    """RAY_AUTH_MODE if set, else whether a token is at hand: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH
    or ~/.ray/auth_token (what `ray.init` checks for a local cluster)."""
    environ = os.environ if environ is None else environ
    mode = environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    home = Path(home) if home is not None else Path.home()
    return bool(environ.get("RAY_AUTH_TOKEN") or environ.get("RAY_AUTH_TOKEN_PATH")
                or (home / ".ray" / "auth_token").is_file())


def client_environment(address: str | None, environ: MutableMapping[str, str]) -> str:
    """The job server's URL, and `environ` made to match it: RAY_AUTH_MODE=token when a token is
    at hand (unless set), RAY_API_SERVER_ADDRESS / RAY_ADDRESS removed (an explicit --address
    must win; the URL already accounts for them). For the command's own process environment."""
    url = resolve_address(address, environ)
    if token_auth_wanted(environ):
        environ.setdefault("RAY_AUTH_MODE", "token")
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        environ.pop(name, None)
    return url


def connect(address: str | None):
    """A JobSubmissionClient for `address` (see resolve_address); SubmitError if unreachable.

    Ray's client reads RAY_AUTH_MODE and prefers RAY_API_SERVER_ADDRESS / RAY_ADDRESS over its
    argument: the process that calls this sets its environment first (`hyena submit` does, in
    `client_environment`); this library code never changes os.environ."""
    url = resolve_address(address)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    from urllib.parse import urlsplit

    try:
        urlsplit(url).port  # a malformed host or port raises here, not deep inside requests
        valid = scheme in ("", "http", "https", "ray")
    except ValueError:
        valid = False
    if not valid:
        raise SubmitError(f"--address {url}: not a Ray job server address; give "
                          "http://HOST:8265 (the head's dashboard port), https://..., or set RAY_API_SERVER_ADDRESS")
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(url)
    except AuthenticationError:
        raise SubmitError(_auth_hint(url)) from None
    except ConnectionError as err:
        raise SubmitError(
            f"cannot reach the Ray job server at {url} ({_first_line(err)}); is the cluster up and its dashboard "
            "port forwarded (`ray attach cluster/aws.yaml -p 8265`)? Pass --address or set RAY_API_SERVER_ADDRESS"
        ) from None


def _auth_hint(url: str) -> str:
    return (f"the Ray job server at {url} requires its token: set RAY_AUTH_TOKEN_PATH to a file holding it "
            "(`ray get-auth-token` on the head node prints it) and RAY_AUTH_MODE=token")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def submit(request: SubmitRequest, *, address: str | None = None, wait: bool = True,
           out: TextIO | None = None, on_submitted: Callable[[str], None] | None = None) -> int:
    """Submit; with `wait`, stream the logs and return 0 if the job succeeded, else 1."""
    out = out or sys.stdout
    client = connect(address)
    url = resolve_address(address)
    from ray.exceptions import AuthenticationError

    started = time.perf_counter()
    try:
        job_id = client.submit_job(**request.kwargs())
    except AuthenticationError:
        raise SubmitError(_auth_hint(url)) from None
    except (RuntimeError, ValueError) as err:
        raise SubmitError(f"the job server at {url} refused the job: {_first_line(err)}") from None
    print(f"submitted {job_id} to {url}: {request.entrypoint}", file=out, flush=True)
    if on_submitted:
        on_submitted(job_id)
    if not wait:
        print(f"follow it with: ray job logs --follow {job_id} --address {url}\n"
              f"stop it with:   ray job stop {job_id} --address {url}", file=out, flush=True)
        return 0
    try:
        follow_logs(client, job_id, out)
        info = wait_for_end(client, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following {job_id}; it keeps running. Stop it with: ray job stop {job_id} "
              f"--address {url}", file=out, flush=True)
        return 130
    elapsed = time.perf_counter() - started
    status = str(getattr(info.status, "value", info.status))
    if status == "SUCCEEDED":
        print(f"job {job_id} succeeded in {elapsed:.0f} s", file=out, flush=True)
        return 0
    # The job server's message repeats the log tail (already streamed above): its first line only.
    message = (info.message or "no message").strip().splitlines()[0]
    print(f"job {job_id} {status.lower()} after {elapsed:.0f} s: {message}", file=out, flush=True)
    return 1


def follow_logs(client: Any, job_id: str, out: TextIO) -> None:
    """Print the job's logs as they come (websocket), falling back to polling if it breaks."""
    import asyncio

    printed = 0

    async def tail() -> None:
        nonlocal printed
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()
            printed += len(chunk)

    try:
        asyncio.run(tail())
        return
    except (RuntimeError, OSError) as err:
        print(f"[hyena submit] log stream broke ({_first_line(err)}); polling instead", file=out, flush=True)
    while True:  # the full log grows; print what is new
        logs = client.get_job_logs(job_id)
        if len(logs) > printed:
            out.write(logs[printed:])
            out.flush()
            printed = len(logs)
        if str(getattr(client.get_job_status(job_id), "value", "")) in TERMINAL:
            return
        time.sleep(2)


def wait_for_end(client: Any, job_id: str, poll_s: float = 0.5) -> Any:
    """The job's JobDetails once it is terminal (the log stream can end a moment earlier)."""
    while True:
        info = client.get_job_info(job_id)
        if str(getattr(info.status, "value", info.status)) in TERMINAL:
            return info
        time.sleep(poll_s)
