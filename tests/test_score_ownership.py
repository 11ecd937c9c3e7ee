"""Scoring never deletes what it did not write, never mixes two jobs in one directory, and
never reuses scores of a genome whose content changed (issue 11)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import hyena
from hyena_platform.errors import InputError
from hyena_platform.outputs import LOCK_NAME, MARKER_NAME, OutputError
from hyena_platform.score.config import job_from_mapping
from hyena_platform.score.chunk_files import check_output
from hyena_platform.score.plan import plan_job

REPO = Path(__file__).resolve().parents[1]


def mapping(model_dir: Path, out: Path, fasta: Path | None = None, region: str = "chrII:0-30000", **output) -> dict:
    m = {
        "model": {"uri": str(model_dir)},
        "target": {"regions": [region]},
        "window": {"size": 256, "stride": 128},
        "compute": {"replicas": 1, "cpus_per_replica": 0.5, "writers": 1, "cpus_per_writer": 0.25,
                    "threads_per_replica": 1},
        "output": {"path": str(out), "chunk_size": 16384, "track": "log_prob", "bin_size": 1000, **output},
        "tracking": {"log_run": False},
    }
    if fasta is not None:
        m["data"] = {"fasta": [str(fasta)]}
    return m


def run(model_dir: Path, out: Path, **kw):
    from hyena_platform.score.pipeline import run_score

    return run_score(job_from_mapping(mapping(model_dir, out, **kw)), overwrite=kw.get("overwrite", False))


def test_overwrite_never_deletes_files_of_a_folder_that_held_no_scores(model_dir, tmp_path):
    """The reported loss: --overwrite deleted scores/ and every *.bw of a user's folder."""
    out = tmp_path / "mine"
    (out / "scores").mkdir(parents=True)
    (out / "scores" / "table.csv").write_text("a,b\n")
    (out / "signal.bw").write_bytes(b"bigwig")
    (out / "log_prob.bw").write_bytes(b"a name we write, but not ours here")
    from hyena_platform.score.pipeline import run_score

    for overwrite in (False, True):
        with pytest.raises(InputError, match=r"not written by `hyena score`.*nothing was changed"):
            run_score(job_from_mapping(mapping(model_dir, out)), overwrite=overwrite)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "log_prob.bw", "scores", "scores/table.csv", "signal.bw"]


@pytest.mark.integration
def test_overwrite_replaces_only_our_files_and_refuses_with_a_foreign_one(ray_cluster, model_dir, tmp_path):
    out = tmp_path / "out"
    first = run(model_dir, out)
    assert (out / MARKER_NAME).exists() and not (out / LOCK_NAME).exists() and first.track.exists()
    (out / "scores" / "chrom=chrII" / "my-notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds files this job did not write \(scores/chrom=chrII/my-notes.txt\)"):
        run(model_dir, out, region="chrII:0-20000", overwrite=True)
    assert first.manifest.exists() and len(list(out.glob("scores/*/*.parquet"))) == 2  # nothing deleted
    (out / "scores" / "chrom=chrII" / "my-notes.txt").unlink()
    second = run(model_dir, out, region="chrII:0-20000", overwrite=True)
    assert second.chunks_total == 2 and sorted(p.name for p in out.glob("scores/*/*.parquet")) == [
        "000000000000-000000016384.parquet", "000000016384-000000020000.parquet"]


@pytest.mark.integration
def test_two_jobs_into_one_output_the_second_is_refused(ray_cluster, model_dir, tmp_path):
    """A real `hyena score` process holds the output's lock; a job with another model is
    refused while it runs (before, both 'succeeded' and the files were the second model's)."""
    out = tmp_path / "shared"
    job = tmp_path / "a.yaml"
    job.write_text(yaml.safe_dump(mapping(model_dir, out, region="chrII:0-400000")))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, "-m", "hyena_platform.cli", "score", str(job)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_NAME).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()
        torch.manual_seed(5)
        other = tmp_path / "other"
        hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2, l_max=258)).save_pretrained(other)
        with pytest.raises(OutputError, match=rf"in use by another job \(pid {proc.pid} .*delete .*{LOCK_NAME}"):
            run(other, out, overwrite=True)
        assert proc.wait(300) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (out / LOCK_NAME).exists()


def test_a_fasta_edited_in_place_is_a_different_genome(model_dir, tmp_path, bundled_genome):
    """Same path, same size, same mtime, one base changed: the old scores are not reused."""
    import gzip

    fasta = tmp_path / "g.fa"
    with gzip.open(bundled_genome, "rb") as f:
        fasta.write_bytes(f.read())
    out = tmp_path / "out"
    before = plan_job(job_from_mapping(mapping(model_dir, out, fasta=fasta)))
    from hyena_platform.result_set import fingerprint
    from hyena_platform.score.chunk_files import write_manifest

    write_manifest(out, {"status": "complete", "fingerprint": fingerprint(before.identity),
                         "identity": before.identity, "model": before.model.describe()})
    st = fasta.stat()
    with open(fasta, "r+b") as f:  # one base of chrI changed, in place
        f.seek(200)
        base = f.read(1)
        f.seek(200)
        f.write(b"A" if base != b"A" else b"C")
    os.utime(fasta, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fasta.stat().st_size == st.st_size and fasta.stat().st_mtime_ns == st.st_mtime_ns
    after = plan_job(job_from_mapping(mapping(model_dir, out, fasta=fasta)))
    with pytest.raises(InputError, match=r"holds results of a different model or config \(genome: "):
        check_output(out, after.identity, overwrite=False)
    # the same bytes under another name are the same genome: that resumes
    shutil.copy(fasta, tmp_path / "copy.fa")
    moved = plan_job(job_from_mapping(mapping(model_dir, out, fasta=tmp_path / "copy.fa")))
    assert moved.identity == after.identity
