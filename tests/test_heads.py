"""Task heads: HF-shaped sequence/token prediction models, losses for every problem type, right
padding that never leaks into real positions, checkpoints (ours, MultiMolecule import/export)."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import hyena
from hyena import HeadConfig, HyenaConfig, HyenaDNAForCausalLM, HyenaDNAForSequencePrediction, HyenaDNAForTokenPrediction
from hyena.checkpoint import CheckpointError, MM_TO_OFFICIAL
from hyena.heads import IGNORE_INDEX, check_right_padding, pool, probabilities
from hyena.tokenizer import PAD, Tokenizer

CFG = dict(d_model=16, n_layer=2, l_max=66, filter_order=8, embed_dropout=0.0)


def perturb(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def make(cls, head=None, seed=0, **cfg):
    torch.manual_seed(seed)
    return perturb(cls(HyenaConfig(**{**CFG, **cfg}), head or HeadConfig(num_labels=3)), seed)


SEQS = ["ACGTACGTTGCA", "GGGATC", "ACGTNACGTACGTAAACCCGGGTTT", "T"]


def right_padded(seqs):
    ids, mask = Tokenizer(padding_side="right").batch_encode(seqs)
    return torch.from_numpy(ids), torch.from_numpy(mask)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_mixed_length_batch_equals_each_sequence_alone(pooling):
    seq_model = make(HyenaDNAForSequencePrediction, HeadConfig(num_labels=3, pooling=pooling))
    tok_model = make(HyenaDNAForTokenPrediction)
    ids, mask = right_padded(SEQS)
    with torch.no_grad():
        batch_seq = seq_model(ids, mask).logits
        batch_tok = tok_model(ids, mask).logits
        for i, s in enumerate(SEQS):
            alone_ids, _ = right_padded([s])
            alone_seq = seq_model(alone_ids).logits[0]
            alone_tok = tok_model(alone_ids).logits[0]
            assert torch.allclose(batch_seq[i], alone_seq, atol=1e-5, rtol=0), (s, pooling)
            assert torch.allclose(batch_tok[i, : len(s)], alone_tok, atol=1e-5, rtol=0), s


def test_last_pooling_reads_the_last_real_token_and_mean_averages_real_tokens():
    h = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    assert pool(h, mask, "last").flatten().tolist() == [2.0, 4.0]
    assert pool(h, mask, "mean").flatten().tolist() == [1.0, 4.0]
    assert pool(h, mask, "first").flatten().tolist() == [0.0, 4.0]


def test_last_pooling_differs_from_first_token_so_the_whole_sequence_counts():
    model = make(HyenaDNAForSequencePrediction)
    a, _ = right_padded(["ACGTACGT"])
    b, _ = right_padded(["ACGTACGA"])  # differs only at the last base
    with torch.no_grad():
        assert not torch.allclose(model(a).logits, model(b).logits)


def test_left_padding_and_empty_rows_are_refused():
    with pytest.raises(ValueError, match="right"):
        check_right_padding(torch.tensor([[0, 1, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one real token"):
        check_right_padding(torch.tensor([[0, 0, 0]], dtype=torch.bool))


def test_single_label_loss_matches_cross_entropy_with_class_weights():
    model = make(HyenaDNAForSequencePrediction)
    ids, mask = right_padded(SEQS)
    labels = torch.tensor([0, 2, 1, 2])
    w = torch.tensor([1.0, 2.0, 0.5])
    out = model(ids, mask, labels, class_weights=w)
    ref = torch.nn.functional.cross_entropy(out.logits, labels, weight=w)
    assert torch.allclose(out.loss, ref)
    out.loss.backward()
    assert model.backbone.embeddings.word_embeddings.weight.grad is not None


def test_multi_label_and_regression_losses():
    ml = make(HyenaDNAForSequencePrediction, HeadConfig(num_labels=2, problem_type="multi_label_classification"))
    ids, mask = right_padded(SEQS)
    y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=torch.float32)
    out = ml(ids, mask, y)
    assert torch.allclose(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, y))
    reg = make(HyenaDNAForSequencePrediction, HeadConfig(num_labels=1, problem_type="regression"))
    t = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out = reg(ids, mask, t)
    assert torch.allclose(out.loss, ((out.logits[:, 0] - t) ** 2).mean())


def test_token_loss_ignores_padding_and_ignore_index():
    model = make(HyenaDNAForTokenPrediction)
    ids, mask = right_padded(SEQS)
    labels = torch.randint(0, 3, ids.shape)
    labels[0, 0] = IGNORE_INDEX
    out = model(ids, mask, labels)
    keep = mask.clone()
    keep[0, 0] = False
    ref = torch.nn.functional.cross_entropy(out.logits[keep], labels[keep])
    assert torch.allclose(out.loss, ref)
    # Garbage labels under padding change nothing.
    labels2 = labels.clone()
    labels2[~mask] = 1
    assert torch.allclose(model(ids, mask, labels2).loss, out.loss)
    reg = make(HyenaDNAForTokenPrediction, HeadConfig(num_labels=1, problem_type="regression"))
    y = torch.randn(ids.shape)
    y[1, 1] = float("nan")
    o = reg(ids, mask, y)
    k = mask.clone()
    k[1, 1] = False
    assert torch.allclose(o.loss, ((o.logits[..., 0] - y)[k] ** 2).mean())


def test_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    assert torch.allclose(probabilities(logits, "single_label_classification").sum(-1), torch.tensor([1.0]))
    assert torch.allclose(probabilities(logits, "multi_label_classification"), torch.sigmoid(logits))


def test_build_from_a_language_model_checkpoint_takes_the_backbone(tmp_path):
    lm = perturb(HyenaDNAForCausalLM(HyenaConfig(**CFG)))
    lm.save_pretrained(tmp_path / "lm")
    model = HyenaDNAForSequencePrediction.from_pretrained(tmp_path / "lm", head=HeadConfig(num_labels=4))
    for k, v in lm.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    assert model.head.decoder.weight.shape == (4, 16)
    with pytest.raises(CheckpointError, match="no sequence-prediction head"):
        HyenaDNAForSequencePrediction.from_pretrained(tmp_path / "lm")


def test_our_format_round_trip_and_lm_view(tmp_path):
    head = HeadConfig(num_labels=2, label_names=("coding", "noncoding"), pooling="mean", transform="nonlinear")
    model = make(HyenaDNAForSequencePrediction, head)
    model.save_pretrained(tmp_path / "clf")
    again = hyena.heads.from_pretrained(tmp_path / "clf")
    assert isinstance(again, HyenaDNAForSequencePrediction) and again.head_config == head
    ids, mask = right_padded(SEQS)
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, again(ids, mask).logits)
    # The language-model loader reads the same checkpoint as its backbone.
    lm = hyena.from_pretrained(tmp_path / "clf")
    with torch.no_grad():
        assert torch.equal(lm.backbone(ids), model.backbone(ids))
    # A different head request keeps the backbone and starts a new head.
    new = HyenaDNAForSequencePrediction.from_pretrained(tmp_path / "clf", head=HeadConfig(num_labels=5))
    assert new.head.decoder.weight.shape[0] == 5
    tok = HyenaDNAForTokenPrediction.from_pretrained(tmp_path / "clf", head=HeadConfig(num_labels=2))
    assert torch.equal(tok.backbone.layers[0].mlp.fc1.weight, model.backbone.layers[0].mlp.fc1.weight)


def test_frozen_backbone_trains_only_the_head():
    model = make(HyenaDNAForSequencePrediction).train().freeze_backbone()
    ids, mask = right_padded(SEQS)
    model(ids, mask, torch.tensor([0, 1, 2, 0])).loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.head.decoder.weight.grad is not None


def _mm_seq_model():
    head = HeadConfig(num_labels=3, pooling="first", pooler=True, transform="nonlinear", label_names=("a", "b", "c"))
    return make(HyenaDNAForSequencePrediction, head)


@pytest.mark.parametrize("cls", ["sequence", "token"])
def test_multimolecule_export_import_round_trip(tmp_path, cls):
    model = _mm_seq_model() if cls == "sequence" else make(HyenaDNAForTokenPrediction)
    hyena.export_multimolecule(model, tmp_path / "mm")
    config = json.loads((tmp_path / "mm" / "config.json").read_text())
    tensors = load_file(str(tmp_path / "mm" / "model.safetensors"))
    prefix = f"{cls}_head."
    assert config["architectures"] == [f"HyenaDnaFor{cls.title()}Prediction"]
    assert f"{prefix}decoder.weight" in tensors
    assert ("model.pooler.dense.weight" in tensors) == (cls == "sequence")
    # Token rows in MultiMolecule order: MM row i holds official row MM_TO_OFFICIAL[i].
    emb = model.backbone.embeddings.word_embeddings.weight
    assert torch.equal(tensors["model.embeddings.word_embeddings.weight"], emb[torch.tensor(MM_TO_OFFICIAL)])
    again = hyena.heads.from_pretrained(tmp_path / "mm")
    assert type(again) is type(model) and again.head_config.num_labels == model.head_config.num_labels
    ids, mask = right_padded(SEQS)
    with torch.no_grad():
        assert torch.allclose(model(ids, mask).logits, again(ids, mask).logits, atol=1e-6)


def test_multimolecule_import_of_a_handmade_checkpoint(tmp_path):
    """Keys and config as MultiMolecule writes them (no id2label, problem_type in head)."""
    model = make(HyenaDNAForTokenPrediction, HeadConfig(num_labels=2, problem_type="multi_label_classification"))
    hyena.export_multimolecule(model, tmp_path / "mm")
    config = json.loads((tmp_path / "mm" / "config.json").read_text())
    for k in ("id2label", "label2id", "num_labels", "problem_type"):
        config.pop(k)
    (tmp_path / "mm" / "config.json").write_text(json.dumps(config))
    again = hyena.heads.from_pretrained(tmp_path / "mm")
    assert again.head_config.problem_type == "multi_label_classification"


def test_sequence_export_refuses_what_multimolecule_cannot_represent(tmp_path):
    with pytest.raises(CheckpointError, match="FIRST token"):
        hyena.export_multimolecule(make(HyenaDNAForSequencePrediction), tmp_path / "mm")
    assert not (tmp_path / "mm").exists()


def test_head_tensor_mismatch_is_named(tmp_path):
    model = make(HyenaDNAForSequencePrediction)
    model.save_pretrained(tmp_path / "clf")
    tensors = load_file(str(tmp_path / "clf" / "model.safetensors"))
    tensors["head.decoder.weight"] = torch.zeros(4, 16)
    save_file(tensors, str(tmp_path / "clf" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="head.decoder.weight"):
        hyena.heads.from_pretrained(tmp_path / "clf")


def test_head_config_validation():
    with pytest.raises(ValueError, match="num_labels >= 2"):
        HeadConfig(num_labels=1)
    with pytest.raises(ValueError, match="pooling"):
        HeadConfig(num_labels=2, pooling="max")
    with pytest.raises(ValueError, match="valid fields"):
        HeadConfig.from_dict({"num_labels": 2, "polling": "last"})


# --- both strands: the head reads the sequence and its reverse complement ---------------------

BOTH = dict(num_labels=3, strands="both")


def reverse_complement(seq):
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_both_strands_mixed_length_batch_equals_each_sequence_alone(pooling):
    seq_model = make(HyenaDNAForSequencePrediction, HeadConfig(pooling=pooling, **BOTH))
    tok_model = make(HyenaDNAForTokenPrediction, HeadConfig(**BOTH))
    ids, mask = right_padded(SEQS)
    with torch.no_grad():
        batch_seq, batch_tok = seq_model(ids, mask).logits, tok_model(ids, mask).logits
        for i, s in enumerate(SEQS):
            alone_ids, _ = right_padded([s])
            assert torch.allclose(batch_seq[i], seq_model(alone_ids).logits[0], atol=1e-5, rtol=0), (s, pooling)
            assert torch.allclose(batch_tok[i, : len(s)], tok_model(alone_ids).logits[0], atol=1e-5, rtol=0), s


def _halves_swapped(model):
    """The same model with the decoder's two halves (forward read, reverse read) exchanged."""
    import copy

    other = copy.deepcopy(model)
    w = other.head.decoder.weight
    d = w.shape[1] // 2
    with torch.no_grad():
        w.copy_(torch.cat([w[:, d:], w[:, :d]], dim=1))
    return other


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_both_strands_reverse_complement_swaps_the_two_reads(pooling):
    """On rc(x) the head must see x's two reads swapped (per base: at the mirrored base), so the
    model with the decoder halves exchanged gives on rc(x) what the model gives on x. A
    misaligned reverse read or a wrong complement breaks this."""
    seq_model = make(HyenaDNAForSequencePrediction, HeadConfig(pooling=pooling, **BOTH))
    tok_model = make(HyenaDNAForTokenPrediction, HeadConfig(**BOTH))
    seqs = [s for s in SEQS if "N" not in s]
    ids, mask = right_padded(seqs)
    rc_ids, rc_mask = right_padded([reverse_complement(s) for s in seqs])
    with torch.no_grad():
        assert torch.allclose(_halves_swapped(seq_model)(rc_ids, rc_mask).logits, seq_model(ids, mask).logits,
                              atol=1e-5, rtol=0)
        tok, tok_rc = tok_model(ids, mask).logits, _halves_swapped(tok_model)(rc_ids, rc_mask).logits
    for i, s in enumerate(seqs):
        n = len(s)
        assert torch.allclose(tok_rc[i, :n].flip(0), tok[i, :n], atol=1e-5, rtol=0), s


def test_both_strands_token_head_reads_downstream_bases_and_forward_does_not():
    forward = make(HyenaDNAForTokenPrediction)
    both = make(HyenaDNAForTokenPrediction, HeadConfig(**BOTH))
    a, _ = right_padded(["ACGTACGTTGCAGGCA"])
    b, _ = right_padded(["ACGTACGTTGCAGGCT"])  # only the last base differs
    with torch.no_grad():
        assert torch.allclose(forward(a).logits[0, :-1], forward(b).logits[0, :-1], atol=1e-6)
        assert not torch.allclose(both(a).logits[0, 0], both(b).logits[0, 0], atol=1e-6)


def test_both_strands_round_trip_and_multimolecule_refusal(tmp_path):
    model = make(HyenaDNAForTokenPrediction, HeadConfig(**BOTH))
    assert model.head.decoder.weight.shape == (3, 2 * CFG["d_model"])
    model.save_pretrained(tmp_path / "tok")
    again = hyena.heads.from_pretrained(tmp_path / "tok")
    assert again.head_config.strands == "both"
    ids, mask = right_padded(SEQS)
    with torch.no_grad():
        assert torch.allclose(model(ids, mask).logits, again(ids, mask).logits, atol=1e-6)
    with pytest.raises(CheckpointError, match="both strands"):
        hyena.export_multimolecule(model, tmp_path / "mm")
    assert not (tmp_path / "mm").exists()
    with pytest.raises(ValueError, match="strands"):
        HeadConfig(num_labels=2, strands="reverse")


# --- token MLP: dense + ReLU on every state before pooling (a learned k-mer profile) ----------

MLP = dict(num_labels=3, token_mlp=24)


def test_token_mlp_starts_as_random_features_not_hyenadna_init():
    torch.manual_seed(0)
    model = HyenaDNAForSequencePrediction(HyenaConfig(**{**CFG, "d_model": 64}), HeadConfig(num_labels=2, token_mlp=4096))
    dense = model.token_mlp.dense
    # N(0, 1/d_model) weights and N(0, 1) biases; HyenaDNA's init (0.02, zero biases) would fail both.
    assert abs(dense.weight.std().item() - 64 ** -0.5) < 0.005
    assert abs(dense.bias.std().item() - 1.0) < 0.05
    assert model.head.decoder.weight.std().item() < 0.03  # the rest keeps HyenaDNA's init


@pytest.mark.parametrize("strands", ["forward", "both"])
def test_token_mlp_pools_relu_features_of_real_tokens_only(strands):
    model = make(HyenaDNAForSequencePrediction, HeadConfig(pooling="mean", strands=strands, **MLP))
    ids, mask = right_padded(SEQS)
    with torch.no_grad():
        pooled, states = model.pooled_features(ids, mask)
        logits = model(ids, mask).logits
        assert pooled.shape == (len(SEQS), 24 * (2 if strands == "both" else 1))
        dense = model.token_mlp.dense
        for i, s in enumerate(SEQS):  # the forward read's features: mean of relu(W h + b) over real bases
            expected = torch.relu(states[i, : len(s)] @ dense.weight.T + dense.bias).mean(0)
            assert torch.allclose(pooled[i, :24], expected, atol=1e-5, rtol=0), s
            alone_ids, _ = right_padded([s])
            assert torch.allclose(logits[i], model(alone_ids).logits[0], atol=1e-5, rtol=0), s


def test_token_mlp_trains_round_trips_and_refuses_what_cannot_hold_it(tmp_path):
    model = make(HyenaDNAForSequencePrediction, HeadConfig(pooling="mean", strands="both", **MLP)).train()
    ids, mask = right_padded(SEQS)
    model(ids, mask, torch.tensor([0, 1, 2, 0])).loss.backward()
    assert model.token_mlp.dense.weight.grad.abs().sum() > 0
    model.eval().save_pretrained(tmp_path / "clf")
    again = hyena.heads.from_pretrained(tmp_path / "clf")
    assert again.head_config.token_mlp == 24
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, again(ids, mask).logits)
    # The language-model loader sets the token MLP aside with the rest of the head.
    assert isinstance(hyena.from_pretrained(tmp_path / "clf"), HyenaDNAForCausalLM)
    with pytest.raises(CheckpointError, match="token MLP"):
        hyena.export_multimolecule(model, tmp_path / "mm")
    assert not (tmp_path / "mm").exists()
    with pytest.raises(ValueError, match="sequence heads only"):
        HyenaDNAForTokenPrediction(HyenaConfig(**CFG), HeadConfig(**MLP))
    with pytest.raises(ValueError, match="token_mlp"):
        HeadConfig(num_labels=2, token_mlp=-1)
