"""A local run listens on 127.0.0.1 only (issue 11). A real `hyena shard` with its own local
Ray runs in a subprocess; while it runs, every listening socket of its process tree (driver,
GCS, raylet, workers, agents) is collected with psutil and must be on a loopback address."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from _quiet import library_noise

from hyena_platform.errors import ConfigError
from hyena_platform.local_ray import check_address

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def listening(root: psutil.Process) -> set[tuple[str, int, str]]:
    try:
        tree = {p.pid: p for p in [root, *root.children(recursive=True)]}
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in tree:
            try:
                name = tree[c.pid].name()
            except psutil.NoSuchProcess:
                name = "?"
            found.add((c.laddr.ip, c.laddr.port, name))
    return found


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def test_a_local_job_listens_on_loopback_only(tmp_path):
    rng = np.random.default_rng(0)
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">c{i}\n{''.join(rng.choice(list('ACGT'), 40_000))}\n" for i in range(4)))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "platform")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyena_platform.cli", "shard", str(REPO / "jobs" / "shard.yaml"),
         "--set", f"output={tmp_path / 'out'}", "--set", f"data.fasta=[{fasta}]", "--set", "data.valid_chroms=[c3]",
         "--set", "data.chunk_size=4096"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    seen: set[tuple[str, int, str]] = set()
    try:
        while proc.poll() is None:
            seen |= listening(root)
            time.sleep(0.1)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    names = {name for _, _, name in seen}
    assert {"gcs_server", "raylet"} <= names, seen  # we did watch Ray's servers listening
    exposed = sorted(s for s in seen if not is_loopback(s[0]))
    assert not exposed, f"listening beyond loopback: {exposed}"
    # A local start shows neither Ray's token-authentication notice nor the raylet's worker
    # count warning (hyena_platform.local_ray), nor any other library line (tests/test_terminal.py).
    assert library_noise(out) == [], out


@pytest.mark.parametrize("address", ["ftp://x:1", "head node:6379", "10.0.0.5", "http://h:8265"])
def test_a_bad_ray_address_is_one_line(address):
    with pytest.raises(ConfigError, match="is not a Ray address"):
        check_address(address)
    for good in ("auto", "10.0.0.5:6379", "ray://head:10001", "[::1]:6379", "localhost:6379"):
        check_address(good)
