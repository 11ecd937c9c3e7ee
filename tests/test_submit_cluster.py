"""Job submission and autoscaling against real processes, all on 127.0.0.1 with free ports and
temp dirs, started and stopped here (never `ray stop`):

- an `mlflow server` with a SQLite backend and a proxied artifact root, reached over HTTP;
- a plain head, `ray start --head` (2 CPUs) with its dashboard / job server and token auth;
- an autoscaling head from cluster/local-fake-multinode.yaml (RAY_FAKE_CLUSTER=1: "nodes" are
  extra raylets on this machine, added and removed by Ray's own autoscaler), whose head has no
  CPUs.

Three submissions run at once (their fixed costs overlap): the plain form with the executable
job file as the entrypoint, `ray job submit --working-dir . -- jobs/pretrain_smoke.yaml`, on the plain head;
`hyena submit` of a job that fails on the cluster (exit code 1, the error streamed back); and
`hyena submit jobs/pretrain_fake_cluster.yaml` on the autoscaling head, which must add nodes,
succeed and register its model; then the idle nodes must go away. Step times are printed at the
end (recorded in docs/performance.md, "Cluster tests").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from _cluster import BIN, MlflowServer, RayHead, short_temp_dir, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process handling reads /proc"),
]

REPO = Path(__file__).resolve().parents[1]
SMOKE = "jobs/pretrain_smoke.yaml"
FAKE = "jobs/pretrain_fake_cluster.yaml"
MODEL = "hyena-cluster-test"
IDLE_TIMEOUT_MIN = 0.2  # 12 s; the shipped file says 1 minute
TIMINGS: dict[str, float] = {}


@dataclass
class Servers:
    plain: RayHead
    fake: RayHead
    mlflow: MlflowServer
    tmp: Path


@pytest.fixture(scope="module")
def servers(request):
    tmp = short_temp_dir("hyc-")
    config = yaml.safe_load((REPO / "cluster" / "local-fake-multinode.yaml").read_text())
    config["idle_timeout_minutes"] = IDLE_TIMEOUT_MIN
    s = Servers(plain=RayHead(tmp / "plain", num_cpus=2),
                fake=RayHead(tmp / "fake", num_cpus=0, autoscaling_config=config),
                mlflow=MlflowServer(tmp / "mlflow"), tmp=tmp)
    try:
        t0 = time.perf_counter()
        for server in (s.mlflow, s.plain, s.fake):  # all three start at once
            server.launch()
        for label, server in (("plain ray head", s.plain), ("autoscaling ray head", s.fake),
                              ("mlflow server", s.mlflow)):
            server.wait_ready()
            TIMINGS[f"{label} up (started together)"] = time.perf_counter() - t0
        yield s
    finally:
        t0 = time.perf_counter()
        for server in (s.plain, s.fake, s.mlflow):
            server.stop()
        TIMINGS["stop: all processes of both heads and MLflow"] = time.perf_counter() - t0
        if not os.environ.get("HYENA_KEEP_TEST_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():  # shown without -s
            print("\ncluster test step times (s, wall clock):")
            for step, seconds in TIMINGS.items():
                print(f"  {step:<62} {seconds:7.1f}")


def job_overrides(s: Servers, name: str) -> list[str]:
    """Each submission its own run and registered model, checkpoints in the temp dir."""
    return ["--set", f"checkpoint.storage_path={s.tmp / 'runs'}", "--set", f"checkpoint.name={name}",
            "--set", f"tracking.uri={s.mlflow.uri}", "--set", f"tracking.register_as={MODEL}-{name}"]


class NodeWatch(threading.Thread):
    """Samples the number of alive nodes of a head, once a second: [(seconds since start, n)]."""

    def __init__(self, head: RayHead):
        super().__init__(daemon=True)
        self.head, self.samples, self.stopping = head, [], threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            try:
                self.samples.append((time.perf_counter() - self.t0, len(self.head.alive_nodes())))
            except OSError:
                continue

    def first(self, predicate, after: float = 0.0) -> float | None:
        return next((t for t, n in self.samples if t >= after and predicate(n)), None)


@pytest.fixture(scope="module")
def jobs(servers):
    """The three submissions, run at once: ({name: CompletedProcess}, {name: seconds to exit},
    the autoscaling head's NodeWatch, still sampling until the module ends)."""
    s = servers
    commands = {
        # The job file is the entrypoint: its `#!/usr/bin/env -S hyena run` line runs it (the
        # working_dir upload keeps the executable bit).
        "plain": ([str(BIN / "ray"), "job", "submit", "--working-dir", ".", "--",
                   SMOKE, *job_overrides(s, "plain")], s.plain),
        "failing": ([str(BIN / "hyena"), "submit", SMOKE, *job_overrides(s, "failing"),
                     "--set", "data.fasta=[/nonexistent/genome.fa]"], s.plain),
        "autoscale": ([str(BIN / "hyena"), "submit", FAKE, *job_overrides(s, "autoscale")], s.fake),
    }
    watch = NodeWatch(s.fake)
    watch.start()
    results, ended = {}, {}

    def run(name: str, cmd: list[str], head: RayHead) -> None:
        r = subprocess.run(cmd, cwd=REPO, env=head.client_env, capture_output=True, text=True, timeout=900)
        ended[name] = time.perf_counter() - watch.t0
        results[name] = r

    threads = [threading.Thread(target=run, args=(name, *spec)) for name, spec in commands.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in commands:
        TIMINGS[f"job '{name}': submit to exit"] = ended[name]
    scale_up = watch.first(lambda n: n > 1)
    if scale_up is not None:
        TIMINGS["  autoscaling head: first worker node alive, after submit"] = scale_up
    yield results, ended, watch
    watch.stopping.set()
    watch.join()


def versions_of(s: Servers, name: str):
    """(client, versions of the model the run `name` registered), read over HTTP."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=s.mlflow.uri, registry_uri=s.mlflow.uri)
    return client, client.search_model_versions(f"name='{MODEL}-{name}'")


def show(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\n--- stdout\n{r.stdout[-5000:]}\n--- stderr\n{r.stderr[-5000:]}"


# ------------------------------------------------------------------------------------ tests


def test_submit_without_the_token_is_refused_in_one_line(servers, tmp_path):
    env = {k: v for k, v in servers.plain.client_env.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    t0 = time.perf_counter()
    r = subprocess.run([str(BIN / "hyena"), "submit", SMOKE], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    TIMINGS["hyena submit refused (no token)"] = time.perf_counter() - t0
    assert r.returncode == 2, show(r)
    assert "requires its token" in r.stderr and "RAY_AUTH_TOKEN_PATH" in r.stderr, show(r)
    assert "Traceback" not in r.stderr


def test_plain_ray_job_submit_runs_pretrain_and_registers_the_model(servers, jobs):
    r = jobs[0]["plain"]
    assert r.returncode == 0, show(r)
    logs = r.stdout + r.stderr
    assert "[stage 2/2 L=128] step 6/6" in logs and "succeeded" in logs, show(r)

    client, versions = versions_of(servers, "plain")
    assert len(versions) == 1
    assert client.get_run(versions[0].run_id).info.run_name == "plain"
    assert versions[0].source.startswith("mlflow-artifacts:")  # proxied by the server: HTTP only
    # Loaded back through the registry over HTTP, it is a working model.
    import torch

    from hyena_platform import tracking

    model = tracking.load_model(f"models:/{MODEL}-plain@candidate", tracking_uri=servers.mlflow.uri)
    logits = model(torch.tensor([[1, 7, 8, 9, 10]])).logits
    assert logits.shape[:2] == (1, 5) and torch.isfinite(logits).all()


def test_hyena_submit_streams_a_failing_job_and_exits_1(servers, jobs):
    r = jobs[0]["failing"]
    assert r.returncode == 1, show(r)
    lines = r.stdout.strip().splitlines()
    first = next(line for line in lines if line.startswith("submitted "))
    assert first.startswith("submitted raysubmit_") and "hyena pretrain jobs/pretrain_smoke.yaml" in first
    assert "/nonexistent/genome.fa" in r.stdout  # the job's own error, streamed from the cluster
    assert " failed after " in lines[-1], show(r)


def test_hyena_submit_on_the_autoscaling_cluster_adds_nodes_and_registers(servers, jobs):
    results, ended, watch = jobs
    r = results["autoscale"]
    assert r.returncode == 0, show(r)
    out = r.stdout
    # The logs were streamed: the job's own progress lines, then the outcome.
    assert "submitted pretrain_fake_cluster-" in out
    assert "[stage 2/2 L=128] step 6/6" in out
    assert f"registered models:/{MODEL}-autoscale/1" in out
    assert "succeeded in" in out.splitlines()[-1]
    # The head has no CPUs: the autoscaler added nodes for the Ray Train workers and Ray Data.
    assert max(n for _, n in watch.samples) >= 3, watch.samples

    client, versions = versions_of(servers, "autoscale")
    mv = client.get_model_version_by_alias(f"{MODEL}-autoscale", "candidate")
    assert [v.version for v in versions] == [mv.version]
    assert mv.tags["steps"] == "6" and mv.tags["run_id"] == mv.run_id

    # The job server kept the submission's id, metadata and runtime_env.
    from ray.job_submission import JobSubmissionClient

    job_id = out.split("submitted ", 1)[1].split()[0]
    info = JobSubmissionClient(servers.fake.dashboard_url, headers=servers.fake.auth_headers).get_job_info(job_id)
    assert info.metadata["hyena.command"] == "pretrain" and info.metadata["project"] == "hyena-platform"
    assert info.runtime_env["env_vars"]["OMP_NUM_THREADS"] == "1"
    assert info.runtime_env["working_dir"] == f"local://{REPO}"


def test_idle_worker_nodes_are_removed(servers, jobs):
    results, ended, watch = jobs
    done = ended["autoscale"]
    wait_for(lambda: watch.first(lambda n: n == 1, after=done) is not None, 120 + IDLE_TIMEOUT_MIN * 60,
             "the idle worker nodes to be removed", 1)
    peak = max(watch.samples, key=lambda s: s[1])
    alone = watch.first(lambda n: n == 1, after=peak[0])
    TIMINGS[f"  autoscaling head: peak of {peak[1]} alive nodes, after submit"] = peak[0]
    TIMINGS[f"  autoscaling head: back to the head alone (idle_timeout {IDLE_TIMEOUT_MIN * 60:.0f} s)"] = alone
    assert len(servers.fake.alive_nodes()) == 1
