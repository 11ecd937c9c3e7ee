"""A whole `hyena score` run on a disk that fills up mid-run (issue 11): a real ENOSPC from a
small tmpfs mounted over the output directory in a private mount namespace (`unshare -m`, or
`unshare -r -m` for a non-root user with user namespaces). The job must end with one line and a
non-zero exit, leave no temporary or partial file, and a rerun on a disk with space (the same
directory, copied out) must complete with files byte-identical to an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _score_job import write_score_job


pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs and mount namespaces")]
REPO = Path(__file__).resolve().parents[1]
TMPFS_KIB = 96  # the marker, the manifest and a few chunk files fit; the whole output does not


def unshare_prefix() -> list[str] | None:
    """The unshare command that gives a private mount namespace where tmpfs can be mounted."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


def write_job(path: Path, model_dir: Path, output: Path) -> Path:
    return write_score_job(path, model_dir, output, ["chrII:200704-241664"])


@pytest.fixture(scope="module")
def reference(ray_cluster, model_dir, tmp_path_factory) -> Path:
    """The uninterrupted run on a disk with space (the session's Ray)."""
    from hyena_platform.cli import main

    tmp = tmp_path_factory.mktemp("reference")
    assert main(["score", str(write_job(tmp / "ref.yaml", model_dir, tmp / "out"))]) == 0
    return tmp / "out"


def files(root: Path) -> dict[str, bytes]:
    """Every file a scoring job writes, by relative path (the manifest records times: left out)."""
    skip = {"_manifest.json", ".hyena-output.json", ".hyena-output.lock"}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip}


def test_a_full_disk_ends_in_one_line_and_a_rerun_completes_byte_identically(reference, model_dir, tmp_path):
    from hyena_platform.cli import main

    prefix = unshare_prefix()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here (needs root, or unshare -r with user namespaces)")
    expected = files(reference)
    chunk_names = [k for k in expected if k.startswith("scores/")]
    assert len(chunk_names) == 10 and sum(map(len, expected.values())) > 2 * TMPFS_KIB * 1024

    full, copy = tmp_path / "full", tmp_path / "copy"
    full.mkdir()
    job = write_job(tmp_path / "job.yaml", model_dir, full)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray inside the namespace
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "platform")])
    script = (f'mount -t tmpfs -o size={TMPFS_KIB}k none "$1" || exit 99; '
              f'"$2" -m hyena_platform.cli score "$3"; code=$?; cp -a "$1/." "$4"; exit $code')
    run = subprocess.run([*prefix, "sh", "-c", script, "sh", str(full), sys.executable, str(job), str(copy)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 2, run
    err = run.stderr.strip().splitlines()
    assert err[-1].startswith("hyena score: error: ") and "no space left on the device" in err[-1], run.stderr
    assert "Traceback" not in run.stderr and "ray::" not in run.stderr, run.stderr

    left = files(copy)
    assert not [name for name in left if "tmp" in name], left.keys()  # no temporary file left behind
    written = [k for k in left if k.startswith("scores/")]
    assert 0 < len(written) < len(chunk_names), written  # it did fill up mid-run
    for name in written:  # what is there is complete: byte for byte the uninterrupted run's file
        assert left[name] == expected[name], name
        assert pq.read_table(copy / name).num_rows == 4096

    # Rerun on a disk with space: resumes from the chunks that were written, same bytes in the end.
    assert main(["score", str(write_job(tmp_path / "rerun.yaml", model_dir, copy))]) == 0
    assert files(copy) == expected


def test_no_room_for_the_bigwig_is_one_line_before_writing_it(reference, model_dir, tmp_path):
    """Every chunk is scored, the disk has no room for the track: libBigWig would retry its
    writes forever on a full disk, so the job measures first and stops in one line."""
    from hyena_platform.score.finalize import BIGWIG_BYTES_PER_BASE

    prefix = unshare_prefix()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here (needs root, or unshare -r with user namespaces)")
    bw_size = (reference / "log_prob.bw").stat().st_size
    print(f"bigWig: {bw_size / 40960:.2f} bytes per base")
    assert bw_size <= 40960 * BIGWIG_BYTES_PER_BASE  # the bound the space check uses holds
    scored = tmp_path / "scored"  # every chunk file, no track and no bins yet
    shutil.copytree(reference, scored, ignore=shutil.ignore_patterns("log_prob.bw", "bins.parquet"))
    size_kib = sum(p.stat().st_size for p in scored.rglob("*") if p.is_file()) // 1024 + 128
    full = tmp_path / "full"
    full.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    script = ('mount -t tmpfs -o size=' + str(size_kib) + 'k none "$1" || exit 99; cp -a "$2/." "$1"; '
              '"$3" -m hyena_platform.cli score "$4"; code=$?; echo LISTING; ls -A "$1"; exit $code')
    job = write_job(tmp_path / "job.yaml", model_dir, full)  # every chunk done: no Ray needed
    run = subprocess.run([*prefix, "sh", "-c", script, "sh", str(full), str(scored), sys.executable, str(job)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 2, run
    assert run.stderr.strip().splitlines()[-1].startswith(f"hyena score: error: {full}: ") and \
        "the bigWig track(s) need up to" in run.stderr and "Traceback" not in run.stderr, run.stderr
    listing = run.stdout.split("LISTING")[-1].split()
    assert "log_prob.bw" not in listing and not [n for n in listing if "tmp" in n], listing
