"""A fine-tuned per-base model through `hyena score`: one probability column per class beside the
language-model columns, a bigWig of a class probability, values equal to the model's own forward
pass; a both-strands model scored in centred windows (context on both sides of every base, the
same values whatever the chunking); a sequence model is sent to `hyena predict`."""

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


def save(tmp_path, cls, sharpen: float = 1.0, **head):
    """A tiny random model saved as a checkpoint; `sharpen` scales the head's decoder so that
    its class probabilities move with what the backbone read (not ~1/3 everywhere)."""
    torch.manual_seed(0)
    model = cls(HyenaConfig(d_model=16, n_layer=1, d_inner=32, filter_order=8, l_max=W + 2),
                HeadConfig(num_labels=3, label_names=LABELS, **head))
    with torch.no_grad():
        model.head.decoder.weight.mul_(sharpen)
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


# --------------------------------------------------------------------------------------------
# Both-strands heads: centred windows. The replica runs in this process (no Ray): the windows,
# the FASTA reads and the model calls are the pipeline's own.


def replica_columns(tmp_path, regions, *, chunk_size, stride=S):
    """The plan of a job over `regions` and every scored column, bases in order."""
    import pyarrow as pa

    from hyena_platform.score.chunk_files import unpack_scores
    from hyena_platform.score.pipeline import ScoreReplica, replica_kwargs

    m = mapping(tmp_path)
    m["target"]["regions"], m["output"]["chunk_size"], m["window"]["stride"] = regions, chunk_size, stride
    plan = plan_job(job_from_mapping(m))
    rows = unpack_scores(ScoreReplica(**replica_kwargs(plan))(pa.Table.from_pylist([c.row() for c in plan.chunks])))
    return plan, {k: np.concatenate([cols[k] for _, _, cols in rows]) for k in rows[0][2]}


def centred_direct(model, x: np.ndarray, positions: np.ndarray, stride: int):
    """p_<class> (len(positions), C) and log_prob of each base from the model run once on the
    centred window of its cell: bases [k S - B, (k + 1) S + F) clipped to the chromosome, B + S + F = W."""
    from hyena.tokenizer import SEP

    after = (W - stride) // 2
    before = W - stride - after
    probs, log_prob = np.zeros((len(positions), len(LABELS))), np.zeros(len(positions))
    for k in np.unique(positions // stride):
        a, b = max(0, k * stride - before), min(len(x), (k + 1) * stride + after)
        sel = np.flatnonzero(positions // stride == k)
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(x[a:b][None].astype(np.int64))).logits, -1)[0]
            stream = np.concatenate([[SEP], x])[a:b].astype(np.int64)  # u[a .. b) = x[a - 1 .. b - 1)
            hidden = model.backbone(torch.from_numpy(stream)[None])
            lm = torch.log_softmax(torch.nn.functional.linear(hidden, model.backbone.embeddings.word_embeddings.weight), -1)[0]
        probs[sel] = p[positions[sel] - a].numpy()
        log_prob[sel] = lm[positions[sel] - a, x[positions[sel]].astype(np.int64)].numpy()
    return probs, log_prob


@pytest.mark.usefixtures("one_torch_thread")
def test_both_strands_model_scores_every_base_in_the_middle_of_its_window(tmp_path, bundled_genome):
    import pyfaidx

    from hyena.tokenizer import Tokenizer

    model = save(tmp_path, HyenaDNAForTokenPrediction, sharpen=10.0, strands="both")
    fasta = pyfaidx.Fasta(str(bundled_genome))
    n = len(fasta["chrII"])
    x = Tokenizer().encode(str(fasta["chrII"][:]))
    spans = [(0, 700), (500_000, 500_500), (n - 700, n)]  # both chromosome ends and its middle
    regions = [f"chrII:{a}-{b}" for a, b in spans]
    positions = np.concatenate([np.arange(a, b) for a, b in spans])
    for stride in (S, 100):
        plan, one = replica_columns(tmp_path, regions, chunk_size=8192, stride=stride)
        assert plan.layout == "centred"
        _, small = replica_columns(tmp_path, regions, chunk_size=100, stride=stride)  # cuts cells in two
        probs, log_prob = centred_direct(model, x, positions, stride)
        for cols in (one, small):
            got = np.stack([cols[f"p_{c}"] for c in LABELS], axis=1)
            np.testing.assert_allclose(got, probs, atol=1e-5)  # seen: 1.2e-7
            np.testing.assert_allclose(cols["log_prob"], log_prob, atol=1e-5)
    # The same model in causal windows (each input ends at its block's last base): the bases
    # near a block's end read (almost) nothing downstream and get other values.
    from hyena_platform.score.scorer import ChunkScorer
    from hyena_platform.score.tiling import Chunk

    causal = ChunkScorer(model, window=W, stride=100, batch_size=16, layout="causal").score_chunk(
        Chunk("chrII", 0, 700, n, "f", index=0), x[:1000], 0)
    gap = np.abs(np.stack([causal.columns[f"p_{c}"] for c in LABELS], axis=1) - probs[:700]).max(axis=1)
    assert (gap > 1e-3).mean() > 0.3  # 100 times the tolerance above, on a third of the bases or more


def test_both_strands_plan_is_centred_and_fingerprinted_forward_plans_are_unchanged(tmp_path):
    """A forward token model keeps the causal windows and the very identity (fingerprint) it had,
    so its earlier outputs resume; a both-strands model's identity names its layout and margins."""
    from hyena_platform.score.pipeline import _manifest

    save(tmp_path, HyenaDNAForTokenPrediction)
    forward = plan_job(job_from_mapping(mapping(tmp_path)))
    assert forward.layout == "causal"
    assert forward.identity["window"] == {"size": W, "stride": S, "start_token": "[SEP]"}
    save(tmp_path, HyenaDNAForTokenPrediction, strands="both")
    both = plan_job(job_from_mapping(mapping(tmp_path)))
    assert both.layout == "centred"
    assert both.identity["window"] == {"size": W, "stride": S, "start_token": "[SEP]", "layout": "centred",
                                       "margins": [32, 32]}
    window = _manifest(both, tmp_path, None, None)["window"]
    assert window["layout"] == "centred" and window["min_context"] == 33 and window["min_context_after"] == 32
    with pytest.raises(ConfigError, match="forward strand only"):
        plan_job(job_from_mapping(mapping(tmp_path, reverse_strand=True)))
