"""`hyena predict`: a sequence model over a table, a FASTA and BED regions on a real local Ray,
Parquet parts that a rerun skips, outputs owned by their manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from hyena import HeadConfig, HyenaConfig, HyenaDNAForSequencePrediction
from hyena.tokenizer import Tokenizer
from hyena_platform.config import from_mapping
from hyena_platform.errors import InputError
from hyena_platform.finetune.predict import PredictJob, predict_table, run_predict

SPECIES = Path(__file__).resolve().parent / "assets" / "finetune" / "species_small.parquet"
LABELS = ("E.Coli", "H.Pylori", "S.Aureus", "V.Cholerae")


def save_model(path: Path, seed: int = 0, strands: str = "forward") -> HyenaDNAForSequencePrediction:
    torch.manual_seed(seed)
    model = HyenaDNAForSequencePrediction(HyenaConfig(d_model=16, n_layer=1, d_inner=32, filter_order=8, l_max=1026),
                                          HeadConfig(num_labels=4, label_names=LABELS, strands=strands))
    model.save_pretrained(path)
    return model.eval()


def job(tmp_path, model_dir, **input_) -> PredictJob:
    return from_mapping(PredictJob, {"model": {"uri": str(model_dir)}, "input": {"path": str(SPECIES), **input_},
                                     "output": str(tmp_path / "out"), "compute": {"part_size": 40, "batch_size": 16,
                                                                                   "cpus_per_replica": 0.5}},
                        source="predict.yaml")


def read_parts(root: Path):
    return pq.read_table(sorted((root / "parts").glob("*.parquet"))).to_pydict()


def assert_predictions_match(model, out) -> None:
    seqs = pq.read_table(SPECIES).column("sequence").to_pylist()
    ids, _ = Tokenizer(padding_side="right").batch_encode(seqs[:3])
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(ids)).logits, -1).numpy()
    assert out["id"][:3] == ["species_small.parquet:row 1", "species_small.parquet:row 2", "species_small.parquet:row 3"]
    got = np.array([[out[f"p_{n}"][i] for n in LABELS] for i in range(3)])
    assert np.allclose(got, probs, atol=1e-5)
    assert out["prediction"][:3] == [LABELS[i] for i in probs.argmax(1)]


def test_predict_table_matches_the_model_and_resumes(ray_cluster, tmp_path):
    model = save_model(tmp_path / "m")
    result = run_predict(job(tmp_path, tmp_path / "m"))
    assert result.rows == 128 and result.parts == 4 and result.skipped_parts == 0
    out = read_parts(result.output)
    assert_predictions_match(model, out)
    (result.output / "parts" / "part-00002.parquet").unlink()  # as if killed before that part
    again = run_predict(job(tmp_path, tmp_path / "m"))
    assert again.skipped_parts == 3 and read_parts(result.output)["id"] == out["id"]


def test_another_model_needs_overwrite_and_foreign_directories_are_refused(ray_cluster, tmp_path):
    """The other model reads both strands (HeadConfig.strands both): its predictions are its own."""
    save_model(tmp_path / "m")
    both_strands = save_model(tmp_path / "m2", seed=1, strands="both")  # the other model reads both strands
    run_predict(job(tmp_path, tmp_path / "m"))
    with pytest.raises(InputError, match="another model or input; rerun with --overwrite"):
        run_predict(job(tmp_path, tmp_path / "m2"))
    result = run_predict(job(tmp_path, tmp_path / "m2"), overwrite=True)
    assert result.skipped_parts == 0
    assert_predictions_match(both_strands, read_parts(result.output))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("mine")
    foreign = from_mapping(PredictJob, {"model": {"uri": str(tmp_path / "m")}, "input": {"path": str(SPECIES)},
                                        "output": str(tmp_path / "foreign")}, source="p.yaml")
    with pytest.raises(InputError, match="not written by a hyena-predictions job"):
        run_predict(foreign, overwrite=True)  # nothing of a foreign directory is touched
    assert (tmp_path / "foreign" / "keep.txt").read_text() == "mine"


def test_predict_bed_regions_and_fasta_records(tmp_path, bundled_genome):
    """Inputs read from a genome, predicted without Ray (the per-part function)."""
    from hyena_platform.finetune.predict import PredictInputSection, read_inputs

    model = save_model(tmp_path / "m")
    (tmp_path / "r.bed").write_text("chrI\t100\t600\nchrII\t0\t1000\n")
    ids, tokens, _ = read_inputs(PredictInputSection(format="bed", path=str(tmp_path / "r.bed"),
                                                     fasta=str(bundled_genome)))
    assert ids == ["chrI:100-600", "chrII:0-1000"] and [len(t) for t in tokens] == [500, 1000]
    table = predict_table(model, ids, tokens, 8)
    assert np.allclose(np.sum([table.column(f"p_{n}").to_numpy() for n in LABELS], axis=0), 1, atol=1e-5)
    (tmp_path / "s.fa").write_text(">a\nACGTACGTAA\n>b\nGGGCCC\n")
    ids, tokens, _ = read_inputs(PredictInputSection(format="fasta", path=str(tmp_path / "s.fa")))
    assert ids == ["a", "b"] and [len(t) for t in tokens] == [10, 6]
    (tmp_path / "bad.bed").write_text("chrI\t100\t9000000\n")
    with pytest.raises(InputError, match=r"bad\.bed:1: region chrI:100-9000000 is outside chrI"):
        read_inputs(PredictInputSection(format="bed", path=str(tmp_path / "bad.bed"), fasta=str(bundled_genome)))
