"""Output ownership (hyena_platform.outputs): markers, clearing only what is ours, the lock
file with stale-lock detection, and writes through temporary names (disk full included)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hyena_platform.outputs import (
    LOCK_NAME, MARKER_NAME, TEMP_TAG, DiskFullError, OutputDir, OutputError, atomic_path, atomic_write, matches,
)

from _unprivileged import without_override

REPO = Path(__file__).resolve().parents[1]


def make(root: Path, **kw) -> OutputDir:
    return OutputDir(str(root), kind="test-kind", owned=("result.txt", "parts/*.bin"), **kw)


def test_glob_patterns_stay_in_one_component():
    assert matches("parts/a.bin", ["parts/*.bin"]) and not matches("parts/x/a.bin", ["parts/*.bin"])
    assert matches("x/y/.a.hyena-tmp-1", [f"**/*{TEMP_TAG}*"]) and matches(".a.hyena-tmp-1", [f"**/*{TEMP_TAG}*"])
    assert not matches("result.txt.bak", ["result.txt"])


def test_claim_refuses_a_directory_that_is_not_ours(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "genome.fa").write_text(">a\nACGT\n")
    out = make(user)
    with pytest.raises(OutputError, match=r"not empty \(genome.fa\) and not written by a test-kind job"):
        out.claim()
    with pytest.raises(OutputError, match="--fresh refused: this directory was not written"):
        out.clear(what="--fresh")
    assert (user / "genome.fa").read_text() == ">a\nACGT\n" and not (user / MARKER_NAME).exists()


def test_clear_deletes_only_owned_files_and_refuses_when_others_are_there(tmp_path):
    out = make(tmp_path / "o")
    out.claim(job="t")
    (tmp_path / "o" / "parts").mkdir()
    (tmp_path / "o" / "parts" / "1.bin").write_bytes(b"1")
    (tmp_path / "o" / "result.txt").write_text("r")
    assert out.clear(first=["result.txt"]) == ["result.txt", "parts/1.bin"]
    assert sorted(os.listdir(tmp_path / "o")) == [MARKER_NAME]  # empty sub-directories go too
    (tmp_path / "o" / "result.txt").write_text("r")
    (tmp_path / "o" / "notes.md").write_text("the user's")
    with pytest.raises(OutputError, match=r"holds files this job did not write \(notes.md\); nothing was deleted"):
        out.clear()
    assert (tmp_path / "o" / "result.txt").exists() and (tmp_path / "o" / "notes.md").exists()
    other = OutputDir(str(tmp_path / "o"), kind="another-kind")
    with pytest.raises(OutputError, match="another kind of job"):
        other.claim()


def test_fresh_on_a_new_directory_holding_only_our_lock_deletes_nothing_and_succeeds(tmp_path):
    out = make(tmp_path / "new")
    with out.lock(job="fresh run"):  # the lock creates the directory before --fresh is checked
        assert out.clear(what="--fresh") == []
        out.claim(job="fresh run")
        assert out.is_ours()
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with make(tmp_path / "user").lock(job="fresh run"), pytest.raises(OutputError, match="not written by"):
        make(tmp_path / "user").clear(what="--fresh")
    assert (tmp_path / "user" / "notes.txt").read_text() == "mine"


def test_lock_is_exclusive_and_names_its_owner(tmp_path):
    out = make(tmp_path / "o")
    with out.lock(job="first job"):
        holder = json.loads((tmp_path / "o" / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["since"]
        with pytest.raises(OutputError, match=rf"in use by another job \(pid {os.getpid()} .*first job\).*delete .*{LOCK_NAME}"):
            with make(tmp_path / "o").lock(job="second"):
                pass
    assert not (tmp_path / "o").exists()  # the lock made the directory and it stayed empty


def test_a_lock_held_by_a_live_process_blocks_and_a_killed_ones_is_stale(tmp_path):
    """A real second process takes the lock; while it lives we are refused; after SIGKILL
    (its lock file left behind) the lock is reported stale and taken over."""
    root = tmp_path / "o"
    code = textwrap.dedent(f"""
        import sys, time
        from hyena_platform.outputs import OutputDir
        with OutputDir({str(root)!r}, kind="test-kind").lock(job="holder"):
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])})
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=rf"pid {proc.pid} .*holder"):
            with make(root).lock():
                pass
        proc.kill()
        proc.wait()
        assert (root / LOCK_NAME).exists()
        notes: list[str] = []
        with make(root).lock(report=notes.append):
            assert json.loads((root / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert len(notes) == 1 and f"stale lock of pid {proc.pid}" in notes[0]
    finally:
        proc.kill()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    atomic_write(tmp_path / "a.json", "{}")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == ["a.json"] and (tmp_path / "a.json").read_text() == "{}"


def test_unwritable_and_non_directory_parents_are_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a directory|exists and is not a directory"):
        make(tmp_path / "file" / "out").claim()


def test_a_read_only_parent_is_one_line_for_every_user_root_included(tmp_path):
    """A directory of mode 0o555: the claim and the CLI's up-front check both refuse in one line.
    Run as an ordinary user would meet it even under root (tests/_unprivileged.py drops the
    capability that lets root write anywhere), so the check is exercised, never skipped."""
    ro = tmp_path / "ro"
    ro.mkdir()
    fasta = tmp_path / "g.fa"
    fasta.write_text(">a\n" + "ACGT" * 50 + "\n")
    (tmp_path / "shard.yaml").write_text(f"output: {ro / 'shards'}\ndata: {{fasta: [{fasta}], chunk_size: 64}}\n")
    code = textwrap.dedent(f"""
        import subprocess, sys
        from hyena_platform.outputs import OutputDir, OutputError
        try:
            OutputDir({str(ro / 'out')!r}, kind="test-kind").claim()
        except OutputError as err:
            print("CLAIM", err)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    env.pop("RAY_ADDRESS", None)
    ro.chmod(0o555)
    try:
        claim = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                               preexec_fn=without_override)
        cli = subprocess.run([sys.executable, "-m", "hyena_platform.cli", "shard", str(tmp_path / "shard.yaml")],
                             capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
                             preexec_fn=without_override)
    finally:
        ro.chmod(0o755)
    assert claim.stdout.startswith(f"CLAIM {ro / 'out'}: cannot write here (Permission denied)"), claim
    assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli
    assert cli.stderr.strip().splitlines() == [
        f"hyena shard: error: {ro / 'shards'}: cannot create it: {ro} is not writable (read-only?); "
        "choose a writable output path"], cli.stderr
    assert os.listdir(ro) == []  # nothing was created


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt 2>/dev/null "
                            "|| mount -t tmpfs -o size=64k none /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare -r -m (user namespaces) to mount a small tmpfs")
def test_disk_full_is_one_line_and_leaves_no_temporary_file(tmp_path):
    """A real ENOSPC: a 256 KiB tmpfs mounted in a private mount namespace."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    code = textwrap.dedent(f"""
        import os
        from hyena_platform.outputs import DiskFullError, atomic_write
        try:
            atomic_write({str(mnt / 'big.bin')!r}, b"x" * (1 << 20))
        except DiskFullError as err:
            print("ERR", err)
        print("LEFT", sorted(os.listdir({str(mnt)!r})))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    run = subprocess.run(["unshare", "-r", "-m", "sh", "-c",
                          f"mount -t tmpfs -o size=256k none {mnt} && exec {sys.executable} -c \"$0\"", code],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("ERR ") and "no space left on the device" in lines[0], run.stdout
    assert lines[1] == "LEFT []"
    assert DiskFullError  # the type the CLI reports as one line


def test_claim_for_run_drops_a_previous_result_only_on_fresh(tmp_path):
    """The start every batch job (score, vep, embed) shares: --fresh deletes the previous result,
    manifest first; a resume keeps it; a foreign file refuses before anything is deleted."""
    from hyena_platform.result_set import MANIFEST_NAME, claim_for_run

    root = tmp_path / "o"
    out = OutputDir(str(root), kind="test-kind", owned=(MANIFEST_NAME, "parts/*.bin"))
    out.claim(job="t")
    (root / "parts").mkdir()
    (root / "parts" / "1.bin").write_bytes(b"1")
    (root / MANIFEST_NAME).write_text("{}")
    previous = {"attempts": [1]}
    assert claim_for_run(out, previous, fresh=False, job="t") is previous
    assert (root / "parts" / "1.bin").exists() and (root / MANIFEST_NAME).exists()
    (root / "notes.md").write_text("the user's")
    with pytest.raises(OutputError, match="did not write"):
        claim_for_run(out, previous, fresh=True, job="t")
    assert (root / "parts" / "1.bin").exists() and (root / MANIFEST_NAME).exists()
    (root / "notes.md").unlink()
    assert claim_for_run(out, previous, fresh=True, job="t") is None
    assert sorted(os.listdir(root)) == [MARKER_NAME] and out.is_ours()
