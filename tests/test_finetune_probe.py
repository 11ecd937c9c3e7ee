"""LP-FT's probe (finetune.probe, no Ray): features of the frozen model, the fitted linear model
on standardised features, and the head that computes exactly that model once it is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hyena
from hyena import HeadConfig, HyenaConfig, HyenaDNAForSequencePrediction, HyenaDNAForTokenPrediction
from hyena.checkpoint import CheckpointError
from hyena.tokenizer import Tokenizer
from hyena_platform.finetune.batches import collate
from hyena_platform.finetune.data import load_task_data
from hyena_platform.finetune.data_config import FinetuneDataConfig
from hyena_platform.finetune.evaluate import split_metrics, split_scores
from hyena_platform.finetune.examples import Split
from hyena_platform.finetune.probe import C_GRID, fit_into_head, fit_probe, install, split_features

SPECIES = Path(__file__).resolve().parent / "assets" / "finetune" / "species_small.parquet"
SLC = "single_label_classification"


def tiny(cls, head: HeadConfig):
    torch.manual_seed(0)
    return cls(HyenaConfig(d_model=16, n_layer=1, d_inner=32, filter_order=8, l_max=1026), head).eval()


@pytest.fixture(scope="module")
def species():
    """Real 1,024-base windows of four bacterial species (held-out strains in test)."""
    data = load_task_data(FinetuneDataConfig(path=str(SPECIES), valid_fraction=0.2), task="sequence", problem_type=SLC)
    return data


@pytest.fixture(scope="module")
def gc_windows(bundled_genome):
    """Real 200-base windows of V. cholerae chrII and their base composition (4 features)."""
    import pyfaidx

    chrom = str(pyfaidx.Fasta(str(bundled_genome))["chrII"][200000:260000]).upper()
    seqs = [chrom[i:i + 200] for i in range(0, len(chrom), 200)]
    comp = np.array([[s.count(b) / len(s) for b in "ACGT"] for s in seqs])
    return seqs, comp


@torch.no_grad()
def flipped_features(model, split: Split, n: int) -> np.ndarray:
    """The pooled features of the reverse complements of the first `n` examples, read by the model."""
    batch = collate(split, range(n), task="sequence", problem_type=SLC, flip=np.full(n, True))
    return model.eval().pooled_features(batch["input_ids"], batch["attention_mask"])[0].numpy()


def test_installed_probe_is_the_fitted_model_and_reads_the_species(species):
    head = HeadConfig(num_labels=4, pooling="mean", strands="both", standardize=True)
    model = tiny(HyenaDNAForSequencePrediction, head)
    train, valid = species.splits["train"], species.splits["valid"]
    rows = {name: split_features(model, s, range(len(s)), task="sequence", problem_type=SLC, batch_size=16)
            for name, s in (("train", train), ("valid", valid))}
    assert rows["train"][0].shape == (len(train), 32)  # both strands' mean-pooled states side by side
    # Trained on either strand, the probe also fits each example's reverse complement, which a
    # both-strands head sees with its two halves swapped.
    x2, y2 = split_features(model, train, range(len(train)), task="sequence", problem_type=SLC, batch_size=16,
                            both_strands=True)
    n = len(train)
    assert np.array_equal(y2, np.concatenate([rows["train"][1]] * 2))
    assert np.allclose(x2[n:], np.concatenate([x2[:n, 16:], x2[:n, :16]], axis=1), atol=1e-5)
    assert np.allclose(x2[n:n + 16], flipped_features(model, train, 16), atol=1e-5)  # the swap is what a read gives
    assert np.array_equal(x2[:n], rows["train"][0])
    # A forward head reads one strand: its flipped rows are read, not derived.
    forward = tiny(HyenaDNAForSequencePrediction, HeadConfig(num_labels=4, pooling="mean"))
    xf, _ = split_features(forward, train, range(16), task="sequence", problem_type=SLC, batch_size=16,
                           both_strands=True)
    assert np.allclose(xf[16:], flipped_features(forward, train, 16), atol=1e-5)
    assert not np.allclose(xf[16:], xf[:16], atol=1e-3)

    before = split_metrics(*split_scores(model, valid, range(len(valid)), task="sequence", problem_type=SLC,
                                         batch_size=16), SLC)
    probe = fit_probe(rows["train"], rows["valid"], problem_type=SLC, num_labels=4, metric="mcc")
    assert probe.C in C_GRID
    for C in C_GRID:  # the kept C is the best on valid
        assert probe.valid_metrics["mcc"] >= fit_probe(rows["train"], rows["valid"], problem_type=SLC, num_labels=4,
                                                       metric="mcc", grid=[C]).valid_metrics["mcc"]
    install(model, probe)
    after = split_metrics(*split_scores(model, valid, range(len(valid)), task="sequence", problem_type=SLC,
                                        batch_size=16), SLC)
    for key, value in probe.valid_metrics.items():  # the model now computes exactly the fitted probe
        assert after[key] == pytest.approx(value, abs=1e-6), key
    # Even a random backbone's pooled states tell these species apart once a fitted head reads them.
    assert after["mcc"] > 0.6 and before["mcc"] < 0.3, (before, after)


def test_a_standardising_head_saves_reloads_and_is_not_exported_to_multimolecule(tmp_path, species):
    head = HeadConfig(num_labels=4, pooling="mean", standardize=True)
    model = tiny(HyenaDNAForSequencePrediction, head)
    train = species.splits["train"]
    rows = split_features(model, train, range(len(train)), task="sequence", problem_type=SLC, batch_size=16)
    probe = fit_into_head(model, rows, rows, problem_type=SLC, metric="mcc")
    assert torch.equal(model.head.decoder.weight, torch.as_tensor(probe.coef, dtype=torch.float32))
    model.save_pretrained(tmp_path / "clf")
    again = hyena.heads.from_pretrained(tmp_path / "clf")
    assert again.head_config.standardize
    assert torch.equal(again.head.scaler.mean, model.head.scaler.mean) and again.head.scaler.scale.min() > 0
    ids, mask = Tokenizer(padding_side="right").batch_encode(["ACGTTGCAAGT" * 9, "GGCCATA"])
    ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.no_grad():
        assert torch.equal(again(ids, mask).logits, model(ids, mask).logits)
    token = tiny(HyenaDNAForTokenPrediction, HeadConfig(num_labels=2, standardize=True))
    with pytest.raises(CheckpointError, match="standardises its input"):  # MultiMolecule's heads cannot
        hyena.export_multimolecule(token, tmp_path / "mm")


def test_an_unset_scaler_leaves_the_head_as_it_was():
    plain = tiny(HyenaDNAForSequencePrediction, HeadConfig(num_labels=3, pooling="mean"))
    scaled = tiny(HyenaDNAForSequencePrediction, HeadConfig(num_labels=3, pooling="mean", standardize=True))
    scaled.load_state_dict({**scaled.state_dict(), **plain.state_dict()})
    ids = torch.from_numpy(Tokenizer().batch_encode(["ACGTAGGCTA" * 5])[0])
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, scaled(ids).logits)


def test_binary_multi_label_and_regression_probes_on_real_base_composition(gc_windows):
    seqs, comp = gc_windows
    gc = comp[:, 1] + comp[:, 2]
    rng = np.random.default_rng(0)
    x = np.concatenate([comp, rng.normal(size=(len(seqs), 6))], axis=1)  # composition + six noise columns
    tr, va = slice(0, 200), slice(200, None)

    binary = (gc > np.median(gc)).astype(np.int64)
    probe = fit_probe((x[tr], binary[tr]), (x[va], binary[va]), problem_type=SLC, num_labels=2, metric="mcc")
    from sklearn.linear_model import LogisticRegression

    z = (x - probe.mean) / probe.scale
    reference = LogisticRegression(C=probe.C, max_iter=2000).fit(z[tr], binary[tr]).predict_proba(z[va])
    logits = z[va] @ probe.coef.T + probe.intercept  # two logits: softmax = sklearn's one-logit sigmoid
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(softmax, reference, atol=1e-6) and probe.valid_metrics["mcc"] > 0.8
    three = fit_probe((x[tr], binary[tr] * 2), (x[va], binary[va] * 2), problem_type=SLC, num_labels=3,
                      metric="mcc", grid=[probe.C])  # classes 0 and 2 only: class 1 is never predicted
    assert np.allclose(three.coef[[0, 2]], probe.coef) and (three.intercept[1] < -20) and not three.coef[1].any()

    target = np.stack([gc, comp[:, 0]], axis=1)  # two regression targets: GC and A content
    reg = fit_probe((x[tr], target[tr]), (x[va], target[va]), problem_type="regression", num_labels=2,
                    metric="r2")
    assert reg.coef.shape == (2, 10) and reg.valid_metrics["r2"] > 0.95

    labels = np.stack([binary, (comp[:, 0] > np.median(comp[:, 0])).astype(float)], axis=1).astype(np.float64)
    labels[:200:7, 1] = np.nan  # missing train labels take no part in the fit
    multi = fit_probe((x[tr], labels[tr]), (x[va], labels[va]), problem_type="multi_label_classification",
                      num_labels=2, metric="macro_f1")
    assert multi.valid_metrics["macro_f1"] > 0.9


def test_token_features_keep_only_labelled_bases_and_cap_the_rows(gc_windows):
    seqs = gc_windows[0][:12]
    tokens = [Tokenizer().encode(s).astype(np.uint8) for s in seqs]
    labels = [np.array([1 if b in "GC" else 0 for b in s], dtype=np.int64) for s in seqs]
    for lab in labels[::3]:
        lab[:50] = -100  # unlabelled bases
    split = Split(tokens, labels, [f"w{i}" for i in range(len(seqs))])
    model = tiny(HyenaDNAForTokenPrediction, HeadConfig(num_labels=2, strands="both", standardize=True))
    x, y = split_features(model, split, range(len(split)), task="token", problem_type=SLC, batch_size=5)
    assert x.shape == (sum(int((lab >= 0).sum()) for lab in labels), 32) and set(np.unique(y)) == {0, 1}
    capped, _ = split_features(model, split, range(len(split)), task="token", problem_type=SLC, batch_size=5,
                               max_rows=500)
    assert capped.shape == (500, 32)
    probe = fit_probe((x[:1200], y[:1200]), (x[1200:], y[1200:]), problem_type=SLC, num_labels=2, metric="mcc")
    install(model, probe)  # a per-base head reads its own base: G/C is linear in the state at that base
    assert probe.valid_metrics["mcc"] > 0.9


def test_probe_reads_the_token_mlp_features_and_the_installed_head_computes_it(species):
    """With `token_mlp`, the probe is fitted on the pooled random features (width 2 x 64 here), the
    reverse-complement rows are those features with the strands swapped, and the installed head
    reproduces the fitted probe."""
    model = tiny(HyenaDNAForSequencePrediction, HeadConfig(num_labels=4, pooling="mean", strands="both",
                                                           standardize=True, token_mlp=64))
    train, valid = species.splits["train"], species.splits["valid"]
    x2, y2 = split_features(model, train, range(len(train)), task="sequence", problem_type=SLC, batch_size=16,
                            both_strands=True)
    n = len(train)
    assert x2.shape == (2 * n, 128) and (x2 >= 0).all()  # pooled ReLU outputs
    assert np.allclose(x2[n:], np.concatenate([x2[:n, 64:], x2[:n, :64]], axis=1), atol=1e-5)
    assert np.allclose(x2[n:n + 16], flipped_features(model, train, 16), atol=1e-5)
    rows_valid = split_features(model, valid, range(len(valid)), task="sequence", problem_type=SLC, batch_size=16)
    probe = fit_into_head(model, (x2, y2), rows_valid, problem_type=SLC, metric="mcc")
    after = split_metrics(*split_scores(model, valid, range(len(valid)), task="sequence", problem_type=SLC,
                                        batch_size=16), SLC)
    for key, value in probe.valid_metrics.items():
        assert after[key] == pytest.approx(value, abs=1e-6), key
