"""Scoring inputs that used to crash (issue 11): an all-N region (gap-only contigs exist in every
real genome) and a non-DNA character (one line, not a Ray traceback). Real local Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _score_job import write_score_job


pytestmark = pytest.mark.integration


def job(tmp_path: Path, model_dir: Path, fasta: Path, regions: list[str]) -> Path:
    return write_score_job(tmp_path / "score.yaml", model_dir, tmp_path / "out", regions, fasta)


def genome(tmp_path: Path, **records: str) -> Path:
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">{k}\n{v}\n" for k, v in records.items()))
    return fasta


def test_an_all_n_region_is_scored_and_summarised(ray_cluster, model_dir, tmp_path, capsys):
    from hyena_platform.cli import main

    rng = np.random.default_rng(0)
    fasta = genome(tmp_path, chrA="".join(rng.choice(list("ACGT"), 5000)), gap="N" * 3000)
    assert main(["score", str(job(tmp_path, model_dir, fasta, ["chrA", "gap"]))]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("gap "))
    assert row.split() == ["gap", "3,000", "0", "-", "-"]


def test_a_non_dna_character_is_one_line_naming_file_record_and_position(ray_cluster, model_dir, tmp_path, capfd):
    from hyena_platform.cli import main

    seq = list("ACGT" * 1500)
    seq[4321] = "J"
    fasta = genome(tmp_path, chrA="".join(seq))
    assert main(["score", str(job(tmp_path, model_dir, fasta, ["chrA"]))]) == 2
    err = capfd.readouterr().err.strip()
    assert err.splitlines()[-1].startswith(f"hyena score: error: {fasta}, record 'chrA': character 'J' at position 4321")
    assert "Traceback" not in err and "ray::" not in err and "To change retry" not in err, err
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())  # a rerun resumes from it
    assert manifest["status"] == "failed" and manifest["attempts"][-1]["status"] == "failed"
    assert "character 'J' at position 4321" in manifest["attempts"][-1]["error"]
