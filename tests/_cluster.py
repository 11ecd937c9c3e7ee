"""Real processes for the cluster tests: a `ray start --head` and an `mlflow server`, each on
127.0.0.1 free ports in a temp dir, stopped by the test that started them.

Other Ray instances on the machine (other test sessions) are never touched: a head is stopped
by killing the processes of its own process group and session (found through /proc: its
process group, their descendants, and every process naming its temp dir), never by `ray stop`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent  # the venv's bin: ray, mlflow, hyena


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------- processes


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, cmdline) for every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        table[int(entry)] = (int(fields[1]), int(fields[2]), cmd)
    return table


def processes_of(pgid: int, marker: str | None = None) -> set[int]:
    """The processes in process group `pgid`, those naming `marker` in their command line, and
    all their descendants (job drivers run in their own sessions)."""
    table = _proc_table()
    found = {pid for pid, (_, g, cmd) in table.items()
             if g == pgid or (marker and marker in cmd)}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    found.discard(os.getpid())
    return found


def kill_all(pids: set[int], grace_s: float = 3.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------------------------- Ray head


class _Server:
    """A server process of a test: launched in its own session, ready once it answers."""

    proc: subprocess.Popen | None
    command = ""  # for the error when the process exits early

    def start(self, timeout: float = 180) -> float:
        """Start and wait until the server answers; returns the seconds it took."""
        t0 = time.perf_counter()
        self.launch()
        self.wait_ready(timeout)
        return time.perf_counter() - t0

    def wait_ready(self, timeout: float = 180) -> None:
        wait_for(self._ready, timeout, self.describe())

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.command} exited with {self.proc.returncode}:\n"
                               + self.log_path().read_text()[-3000:])
        try:
            return self.answers()
        except OSError:
            return False


@dataclass
class RayHead(_Server):
    """`ray start --head --block` with the dashboard (job server) on 127.0.0.1 and token auth."""

    temp_dir: Path
    num_cpus: int = 1
    object_store_memory: int = 300_000_000
    autoscaling_config: dict | None = None  # a launcher config (fake_multinode); gcs_address is filled in
    env: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    token_path: Path | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard-port']}"

    @property
    def client_env(self) -> dict:
        """What a client (hyena submit, ray job submit) needs: token auth and the address."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path),
                   RAY_API_SERVER_ADDRESS=self.dashboard_url, PATH=f"{BIN}:{os.environ['PATH']}")
        return env

    command = "ray start"

    def launch(self) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        names = ("port", "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port",
                 "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port",
                 "node-manager-port", "object-manager-port")
        self.ports = {name: free_port() for name in names}
        self.token_path = self.temp_dir / "auth_token"
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--temp-dir={self.temp_dir}",
               "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--disable-usage-stats",
               f"--num-cpus={self.num_cpus}", f"--object-store-memory={self.object_store_memory}",
               *(f"--{k}={v}" for k, v in self.ports.items())]
        env = dict(self.client_env)
        env.pop("RAY_API_SERVER_ADDRESS")
        env.update(RAY_USAGE_STATS_ENABLED="0", **self.env)
        if self.autoscaling_config is not None:
            from ray._private.services import get_node_ip_address

            config = json.loads(json.dumps(self.autoscaling_config))
            config["provider"]["gcs_address"] = f"{get_node_ip_address()}:{self.ports['port']}"
            path = self.temp_dir / "autoscaling.yaml"
            path.write_text(yaml.safe_dump(config))
            cmd.append(f"--autoscaling-config={path}")
            env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
        self.log = open(self.temp_dir / "ray-start.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def describe(self) -> str:
        return f"the Ray job server at {self.dashboard_url}"

    def log_path(self) -> Path:
        return self.temp_dir / "ray-start.log"

    def answers(self) -> bool:
        return "ray_version" in self.get("/api/version")

    @property
    def auth_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token_path.read_text()}"}

    def get(self, path: str) -> str:
        req = urllib.request.Request(self.dashboard_url + path, headers=self.auth_headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read().decode()

    def alive_nodes(self) -> list[dict]:
        """The cluster's alive nodes, from the dashboard's state API."""
        data = json.loads(self.get("/api/v0/nodes?limit=100&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE"))
        return data["data"]["result"]["result"]

    def stop(self) -> float:
        """Kill this head's processes (and the fake nodes and job drivers it started)."""
        t0 = time.perf_counter()
        if self.proc is not None:
            kill_all(processes_of(self.proc.pid, marker=str(self.temp_dir)))
            self.proc.wait(timeout=10)
            self.log.close()
        return time.perf_counter() - t0


# ---------------------------------------------------------------------------- MLflow server


@dataclass
class MlflowServer(_Server):
    """`mlflow server` on 127.0.0.1 with a SQLite backend and a proxied artifact root."""

    root: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    command = "mlflow server"

    def launch(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--artifacts-destination", (self.root / "artifacts").as_uri()]
        self.log = open(self.root / "mlflow-server.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})

    def describe(self) -> str:
        return f"the MLflow server at {self.uri}"

    def log_path(self) -> Path:
        return self.root / "mlflow-server.log"

    def answers(self) -> bool:
        with urllib.request.urlopen(self.uri + "/health", timeout=5) as resp:
            return resp.status == 200

    def stop(self) -> None:
        if self.proc is not None:
            kill_all(processes_of(self.proc.pid))
            self.proc.wait(timeout=10)
            self.log.close()


def short_temp_dir(prefix: str) -> Path:
    """A short path under /tmp: Ray's Unix sockets live in it and must stay under ~100 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
