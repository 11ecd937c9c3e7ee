"""The gate between a batch job's driver and its writer actors (hyena_platform.write_gate): when
the pool stops, parts being written finish, later ones are refused, and what a killed writer left
is removed, all before the driver goes on to release the output's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hyena_platform.outputs import temp_name
from hyena_platform.write_gate import GATE_NAME, WritersStopped, write_permit, writers_allowed

REPO = Path(__file__).resolve().parents[1]


def names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_writers_may_write_only_while_the_pool_runs_and_temporaries_go_with_it(tmp_path):
    root = tmp_path / "out"
    with writers_allowed(root):
        with write_permit(root):
            (root / "part-00000.parquet").write_bytes(b"whole")
        (root / "scores").mkdir()
        Path(temp_name(root / "scores" / "chunk-1.parquet")).write_bytes(b"half")  # killed writers'
        Path(temp_name(root / "part-2.parquet")).write_bytes(b"half")
    assert names(root) == ["part-00000.parquet"]
    with pytest.raises(WritersStopped, match="has stopped.*run the job again"):
        with write_permit(root):
            pytest.fail("a writer began after the pool stopped")


def test_stopping_waits_for_the_part_being_written(tmp_path):
    root = tmp_path / "out"
    started = threading.Event()

    def writer():
        with write_permit(root):
            started.set()
            time.sleep(0.5)
            (root / "part-00001.parquet").write_bytes(b"whole")

    with writers_allowed(root):
        thread = threading.Thread(target=writer)
        thread.start()
        assert started.wait(5)
    assert (root / "part-00001.parquet").exists()  # finished before the driver went on
    assert names(root) == ["part-00001.parquet"]
    thread.join()


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from hyena_platform.outputs import temp_name
    from hyena_platform.write_gate import write_permit

    root = Path(sys.argv[1])
    with write_permit(root):
        Path(temp_name(root / "chunk-3.parquet")).write_bytes(b"PAR1 half a part")
        os.kill(os.getpid(), signal.SIGKILL)  # as Ray ends an actor: no finally runs
""")


def test_a_writer_killed_mid_part_leaves_nothing_and_does_not_hold_the_driver(tmp_path):
    """The cause of a flaky Ctrl-C test: a temporary part left by a killed writer actor."""
    root = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    t0 = time.monotonic()
    with writers_allowed(root, wait_s=30):
        proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root)], env=env, capture_output=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
        left = names(root)
        assert len(left) == 2 and left[0].startswith(".chunk-3.parquet.hyena-tmp-") and left[1] == GATE_NAME
    assert names(root) == []
    assert time.monotonic() - t0 < 25  # its lock went with it: no wait for wait_s


def test_a_stuck_writer_delays_the_stop_by_wait_s_at_most(tmp_path):
    root = tmp_path / "out"
    release = threading.Event()

    def stuck():
        with write_permit(root):
            release.wait(10)

    with writers_allowed(root, wait_s=0.2):
        thread = threading.Thread(target=stuck)
        thread.start()
        time.sleep(0.1)
    assert thread.is_alive()  # the driver went on without it
    assert not (root / GATE_NAME).exists()
    release.set()
    thread.join()
