"""A local Ray on 127.0.0.1 without touching Ray's private config or a running process's
os.environ: the `hyena` program starts with Ray's public switch (hyena_platform.cli.console,
hyena_platform.local_ray). The effect, every socket of a local run on 127.0.0.1, is
tests/test_network.py; this checks the program's environment and how it gets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyena_platform import local_ray
from hyena_platform.cli import program_environment

REPO = Path(__file__).resolve().parents[1]
SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the switch is Ray's default elsewhere")
def test_the_program_environment_has_the_loopback_switch_unless_a_cluster_or_the_user_says_otherwise():
    assert local_ray.CLUSTER_SWITCH == {SWITCH: "0"}
    assert program_environment({"PATH": "/bin"}) == {"PATH": "/bin", SWITCH: "0", BARS: "false"}
    assert SWITCH not in program_environment({"RAY_ADDRESS": "10.0.0.5:6379"})  # a cluster's driver
    assert program_environment({SWITCH: "1", BARS: "true"}) == {SWITCH: "1", BARS: "true"}  # the user's win


@pytest.mark.skipif(os.name != "posix", reason="os.execve replaces the process on POSIX only")
def test_the_program_restarts_itself_once_in_place_with_its_environment(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(
        "import os, sys\n"
        "from hyena_platform import cli\n"
        "print('start', os.getpid(), flush=True)\n"
        "cli.main = lambda argv=None: print('main', os.getpid(), sys.argv[1:], os.environ.get('"
        + SWITCH + "'), os.environ.get('" + BARS + "')) or 3\n"
        "sys.exit(cli.console())\n")
    env = {k: v for k, v in os.environ.items() if k not in (SWITCH, BARS, "RAY_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "platform")])
    run = subprocess.run([sys.executable, str(script), "score", "job.yaml"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 3, run.stderr
    lines = run.stdout.split("\n")
    pid = lines[0].split()[1]
    switch = "0" if sys.platform.startswith("linux") else "None"
    # Started twice (the second time with its environment), in the same process, with the same arguments.
    assert lines[:3] == [f"start {pid}", f"start {pid}", f"main {pid} ['score', 'job.yaml'] {switch} false"]
