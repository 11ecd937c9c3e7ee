"""One Ctrl-C (a real SIGINT to a real `hyena score` / `hyena shard` process, mid-write) stops
the job cleanly (issue 11): exit 130, one line, no half-written or temporary file, the output's
lock released, and a rerun completes: scoring resumes from the chunks already written, sharding
(whose Parquet writer cannot resume) starts again and reaches the same content hash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from _score_job import write_score_job


pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def interrupt_when(cmd: list[str], ready, *, cwd: Path, ray_cluster, timeout: float = 300) -> tuple[int, str]:
    """Run `cmd` (on the session's Ray), send one SIGINT as soon as `ready()` holds; (exit code, output)."""
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    proc = subprocess.Popen([sys.executable, "-m", "hyena_platform.cli", *cmd], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.time() + timeout
        while not ready():
            assert proc.poll() is None, "ended before the interrupt:\n" + "".join(lines)
            assert time.time() < deadline, "not ready in time:\n" + "".join(lines)
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # once
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    return code, "".join(lines)


def temporaries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if "tmp" in p.name]


def test_ctrl_c_stops_scoring_with_only_whole_chunks_and_a_rerun_resumes(ray_cluster, model_dir, tmp_path):
    from hyena_platform.cli import main

    out = tmp_path / "out"
    job = write_score_job(tmp_path / "score.yaml", model_dir, out, ["chrII:0-98304"])
    chunks = out / "scores" / "chrom=chrII"
    code, text = interrupt_when(["score", str(job)], lambda: len(list(chunks.glob("*.parquet"))) >= 2,
                                cwd=tmp_path, ray_cluster=ray_cluster)
    assert code == 130, text
    assert text.strip().splitlines()[-1] == "hyena score: interrupted" and "Traceback" not in text, text
    assert not (out / ".hyena-output.lock").exists() and temporaries(out) == []
    written = sorted(chunks.glob("*.parquet"))
    assert 2 <= len(written) < 24
    assert all(pq.read_table(p).num_rows == 4096 for p in written)  # whole chunks only
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["attempts"][-1]["status"] == "interrupted"
    before = {p.name: p.read_bytes() for p in written}

    assert main(["score", str(job)]) == 0  # the rerun resumes
    attempt = json.loads((out / "_manifest.json").read_text())["attempts"][-1]
    assert attempt["status"] == "complete" and attempt["chunks_skipped"] >= len(written)
    assert {p.name: p.read_bytes() for p in written} == before  # kept, not rescored
    assert len(list(chunks.glob("*.parquet"))) == 24


def test_ctrl_c_stops_sharding_without_leftovers_and_a_rerun_completes(ray_cluster, bundled_genome, tmp_path):
    from hyena_platform.cli import main

    out = tmp_path / "shards"
    job = tmp_path / "shard.yaml"
    job.write_text(yaml.safe_dump({"output": str(out), "data": {"valid_chroms": ["chrII"], "chunk_size": 2048}}))
    code, text = interrupt_when(["shard", str(job)], lambda: any(out.glob("hyena-shard_*")),
                                cwd=tmp_path, ray_cluster=ray_cluster)
    assert code == 130, text
    assert text.strip().splitlines()[-1] == "hyena shard: interrupted" and "Traceback" not in text, text
    time.sleep(2)  # a write task still running on the shared Ray would show up now
    left = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert left == [], left  # the interrupted write removed what it wrote, and its lock

    assert main(["shard", str(job)]) == 0
    reference = tmp_path / "reference"
    assert main(["shard", str(job), "--set", f"output={reference}"]) == 0
    got = json.loads((out / "_manifest.json").read_text())
    want = json.loads((reference / "_manifest.json").read_text())
    assert got["content_hash"] == want["content_hash"] and got["num_chunks"] == want["num_chunks"]
