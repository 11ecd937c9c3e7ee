"""A fine-tuned per-base model through `hyena score`: one probability column per class beside the
language-model columns, a bigWig of a class probability, values equal to the model's own forward
pass; a sequence model is sent to `hyena predict`."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from hyena import HeadConfig, HyenaConfig, HyenaDNAForSequencePrediction, HyenaDNAForTokenPrediction
from hyena_platform.errors import ConfigError
from hyena_platform.score import job_from_mapping, run_score
from hyena_platform.score.plan import plan_job

W, S = 256, 192
LABELS = ("noncoding", "CDS+", "CDS-")


def save(tmp_path, cls, **head):
    torch.manual_seed(0)
    model = cls(HyenaConfig(d_model=16, n_layer=1, d_inner=32, filter_order=8, l_max=W + 2),
                HeadConfig(num_labels=3, label_names=LABELS, **head))
    model.save_pretrained(tmp_path / "model")
    return model.eval()


def mapping(tmp_path, **window):
    return {"model": {"uri": str(tmp_path / "model")}, "target": {"regions": ["chrII:0-20000"]},
            "window": {"size": W, "stride": S, **window},
            "compute": {"replicas": 1, "cpus_per_replica": 0.5, "batch_size": 16, "writers": 1, "cpus_per_writer": 0.25},
            "output": {"path": str(tmp_path / "out"), "chunk_size": 8192, "track": "p_CDS+", "bin_size": 0},
            "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "log_run": False}}


@pytest.mark.integration
def test_token_model_scores_class_probabilities_and_a_bigwig(ray_cluster, tmp_path, bundled_genome):
    import pyBigWig
    import pyfaidx

    from hyena.tokenizer import Tokenizer

    model = save(tmp_path, HyenaDNAForTokenPrediction)
    result = run_score(job_from_mapping(mapping(tmp_path)))
    table = pq.read_table(result.output / "scores").sort_by("pos")
    assert {f"p_{n}" for n in LABELS} <= set(table.column_names) and "log_prob" in table.column_names
    probs = np.stack([table[f"p_{n}"].to_numpy() for n in LABELS], axis=1)
    assert table.num_rows == 20000 and np.allclose(probs.sum(1), 1, atol=1e-5)
    # The first window (bases 0..255) has no left context beyond the chromosome start: the scores
    # equal a plain forward pass of the model over those bases.
    seq = str(pyfaidx.Fasta(str(bundled_genome))["chrII"][0:W])
    with torch.no_grad():
        direct = torch.softmax(model(torch.from_numpy(Tokenizer().encode(seq)[None].astype(np.int64))).logits, -1)[0]
    assert np.allclose(probs[:S], direct[:S].numpy(), atol=1e-4)
    bw = pyBigWig.open(str(result.track))
    assert np.allclose(bw.values("chrII", 0, 100), probs[:100, 1], atol=1e-6)
    bw.close()


def test_sequence_models_and_reverse_strand_are_refused(tmp_path):
    save(tmp_path, HyenaDNAForSequencePrediction)
    with pytest.raises(ConfigError, match="hyena predict"):
        plan_job(job_from_mapping(mapping(tmp_path)))
    save(tmp_path, HyenaDNAForTokenPrediction)
    with pytest.raises(ConfigError, match="forward strand only"):
        plan_job(job_from_mapping(mapping(tmp_path, reverse_strand=True)))
