"""`hyena embed` end to end on the session's real local Ray: BED regions of the bundled genome
and a table of sequences -> Parquet read back and compared with `hyena.embed` called directly;
resuming per chunk; the MLflow run; bad input failing before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
import torch

import hyena
from hyena_platform.cli import main
from hyena_platform.embed.config import load_job
from hyena_platform.embed.embedder import item_tokens
from hyena_platform.embed.inputs import Item
from hyena_platform.embed.pipeline import chunk_path, run_embed

MODEL = Path(__file__).parent / "assets" / "multimolecule" / "shared_freqs"  # l_max 258, every weight trained-like
REGIONS = [("chrI", 1000, 1100, "r1"), ("chrI", 50_000, 50_300, "long"), ("chrII", 7, 57, "r3")]


def _job(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(f"""
model: {{uri: {MODEL}}}
compute: {{replicas: 1, cpus_per_replica: 1, writers: 1, cpus_per_writer: 0.25, batch_size: 4}}
tracking: {{uri: sqlite:///{tmp_path}/mlflow.db}}
output: {{path: {tmp_path}/out, chunk_size: 2}}
{body}""")
    return path


def _read(root: Path):
    return pads.dataset(root / "embeddings", format="parquet").to_table().to_pylist()


@pytest.fixture(scope="module")
def model():
    return hyena.from_pretrained(MODEL).eval()


@pytest.mark.integration
def test_bed_regions_equal_the_library_and_resume(ray_cluster, tmp_path, bundled_genome, model):
    bed = tmp_path / "regions.bed"
    bed.write_text("".join(f"{c}\t{s}\t{e}\t{n}\n" for c, s, e, n in REGIONS))
    job = load_job(_job(tmp_path, f"input: {{fasta: [{bundled_genome}], bed: {bed}}}\n"
                                  "embedding: {pooling: mean, layers: [-1, 1]}\n"))
    result = run_embed(job)
    assert (result.sequences, result.chunks_total, result.chunks_embedded) == (3, 2, 2)
    rows = {r["id"]: r for r in _read(result.output)}
    assert list(rows) == ["r1", "long", "r3"]
    for chrom, start, end, name in REGIONS:
        row = rows[name]
        assert (row["chrom"], row["start"], row["end"], row["length"]) == (chrom, start, end, end - start)
        ids = item_tokens(Item(name, end - start, chrom, start, end, str(bundled_genome)))
        if end - start <= 258:
            expected = hyena.embed(model, [ids], layers=[-1, 1])[0]
        else:  # the stated windows rule: tiles of l_max bases, mean weighted by tile length
            tiles = hyena.embed(model, [ids[:258], ids[258:]], layers=[-1, 1])
            expected = (tiles[0] * 258 + tiles[1] * (end - start - 258)) / (end - start)
        assert row["windows"] == (2 if name == "long" else 1)
        diff = np.abs(np.asarray(row["embedding"], dtype=np.float32) - expected.numpy()).max()
        assert diff <= 1e-5, f"{name}: {diff:.2e}"
    manifest = json.loads(result.manifest.read_text())
    assert manifest["status"] == "complete" and manifest["embedding"]["dim"] == 64
    assert manifest["model"]["sha256"] and manifest["mlflow"]["run_id"] == result.run_id
    from mlflow.tracking import MlflowClient

    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["hyena.job"] == "embed"
    assert run.data.metrics["sequences"] == 3
    # Resume: nothing to do; then one lost chunk is embedded again, bytes for bytes the same.
    assert run_embed(job).chunks_embedded == 0
    lost = chunk_path(result.output, 1)
    before = pads.dataset(lost).to_table()
    lost.unlink()
    again = run_embed(job)
    assert again.chunks_embedded == 1 and again.run_id == result.run_id
    assert pads.dataset(lost).to_table().equals(before)


@pytest.mark.integration
def test_table_per_base_float16(ray_cluster, tmp_path, model):
    table = tmp_path / "seqs.csv"
    seqs = {"a": "ACGTTGCAAC" * 7, "b": "GGGATTACA"}
    table.write_text("name,sequence\n" + "".join(f"{k},{v}\n" for k, v in seqs.items()))
    path = _job(tmp_path, f"input: {{table: {table}, id_column: name}}\n"
                          "embedding: {pooling: none, dtype: float16, reverse_complement: true}\n")
    assert main(["embed", str(path), "--set", "tracking.log_run=false"]) == 0
    rows = _read(tmp_path / "out")
    assert len(rows) == 79 and {r["chrom"] for r in rows} == {None}
    for name, seq in seqs.items():
        got = np.array([r["embedding"] for r in rows if r["id"] == name], dtype=np.float32)
        assert [r["pos"] for r in rows if r["id"] == name] == list(range(len(seq)))
        assert "".join(r["ref"] for r in rows if r["id"] == name) == seq
        expected = hyena.embed(model, [seq], pooling="none", reverse_complement=True)[0].numpy()
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)  # float16 storage
    assert pads.dataset(tmp_path / "out" / "embeddings").schema.field("embedding").type.value_type == "halffloat"


@pytest.mark.parametrize("body, message", [
    ("input: {table: TABLE}\n", "duplicate id 'x'"),
    ("input: {table: EMPTY}\n", "row 2 (id y): empty sequence"),
    ("input: {table: BADCHAR}\n", "character 'Z' at position 3"),
    ("input: {table: LONG}\nembedding: {long_sequences: error}\n", "y has 300 bases, more than the window of 258"),
    ("embedding: {layers: [7]}\ninput: {table: LONG}\n", "embedding.layers: 7 is out of range"),
])
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, capsys, body, message):
    files = {"TABLE": "id,sequence\nx,ACGT\nx,GGCC\n", "EMPTY": "id,sequence\nx,ACGT\ny,\n",
             "BADCHAR": "id,sequence\nx,ACGZT\n", "LONG": "id,sequence\nx,ACGT\ny," + "A" * 300 + "\n"}
    for key, text in files.items():
        (tmp_path / f"{key}.csv").write_text(text)
        body = body.replace(key, str(tmp_path / f"{key}.csv"))
    code = main(["embed", str(_job(tmp_path, body))])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlflow.db").exists()
