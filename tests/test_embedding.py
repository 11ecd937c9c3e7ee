"""Hidden states of every layer and the `embed` helper (hyena/embedding.py).

The fixture is MultiMolecule's golden checkpoint (every parameter moved off its initialisation),
so each layer changes the states far above float32 rounding."""

from pathlib import Path

import numpy as np
import pytest
import torch

import hyena
from hyena.embedding import EmbeddingError, embed
from hyena.tokenizer import Tokenizer, reverse_complement_ids

ASSETS = Path(__file__).parent / "assets" / "multimolecule"
TOK = Tokenizer()


@pytest.fixture(scope="module")
def model():
    return hyena.from_pretrained(ASSETS / "shared_freqs").eval()


def _random_sequences(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGTN"), size=n, p=[0.24, 0.24, 0.24, 0.24, 0.04])) for n in lengths]


@pytest.mark.parametrize("case", ["L7", "L64", "specials", "pad_right_unpadded"])
def test_hidden_states_equal_multimolecule(model, case):
    golden = np.load(ASSETS / "shared_freqs" / "golden.npz")
    ids = torch.from_numpy(golden[f"{case}__official_input_ids"]).long()
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    expected = golden[f"{case}__hidden_states"]  # (n_layer + 2, B, L, D)
    assert len(out.all_hidden_states) == model.config.n_layer + 2 == expected.shape[0]
    got = torch.stack(out.all_hidden_states).numpy()
    np.testing.assert_allclose(got, expected, atol=5e-5, rtol=0)
    with torch.no_grad():  # the same (no-grad, fused) path as above, so bit for bit
        assert torch.equal(out.all_hidden_states[-1], model.backbone(ids))


def test_low_memory_path_states_equal_and_are_not_overwritten(model):
    ids = torch.from_numpy(np.stack([TOK.encode(s) for s in _random_sequences([200, 200])])).long()
    with torch.no_grad():
        _, normal = model.backbone(ids, output_hidden_states=True)
        model.backbone.low_memory_threshold = 0  # force the in-place low-memory path
        try:
            assert model.backbone._low_memory(ids)
            _, low = model.backbone(ids, output_hidden_states=True)
        finally:
            del model.backbone.low_memory_threshold
    for a, b in zip(normal, low):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    # The copies are distinct: the embedding output is not the final state.
    assert not torch.allclose(low[0], low[-1])


@pytest.mark.parametrize("pooling", ["mean", "last", "none"])
def test_mixed_length_batch_equals_each_alone(model, pooling):
    seqs = _random_sequences([3, 250, 1, 97, 40], seed=1)
    together = embed(model, seqs, pooling=pooling, layers=[1, -1], batch_size=5)
    for i, s in enumerate(seqs):
        alone = embed(model, [s], pooling=pooling, layers=[1, -1])[0]
        diff = (together[i] - alone).abs().max().item()
        assert diff <= 1e-5, f"{pooling} sequence {i} (length {len(s)}): {diff:.2e}"


def test_pooling_and_layer_selection_match_the_hidden_states(model):
    seq = _random_sequences([77], seed=2)[0]
    ids = torch.from_numpy(TOK.encode(seq)).long()[None]
    with torch.no_grad():
        _, states = model.backbone(ids, output_hidden_states=True)
    D = model.config.d_model
    mean = embed(model, [seq], pooling="mean", layers=[-1, 0])[0]
    assert mean.shape == (2 * D,)
    torch.testing.assert_close(mean[:D], states[-1][0].mean(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(mean[D:], states[0][0].mean(0), atol=1e-6, rtol=0)
    last = embed(model, [seq], pooling="last", layers=2)[0]
    torch.testing.assert_close(last, states[2][0, -1], atol=1e-6, rtol=0)
    per_base = embed(model, [seq], pooling="none")[0]
    assert per_base.shape == (77, D) and per_base.dtype == torch.float32
    torch.testing.assert_close(per_base, states[-1][0], atol=1e-6, rtol=0)
    assert embed(model, [seq], dtype=torch.float16).dtype == torch.float16


def test_token_id_arrays_embed_like_strings(model):
    seq = _random_sequences([30], seed=3)[0]
    torch.testing.assert_close(embed(model, [TOK.encode(seq)]), embed(model, [seq]), atol=0, rtol=0)


def test_reverse_complement_average_is_strand_symmetric(model):
    seq = _random_sequences([60], seed=4)[0]
    rc = TOK.decode(reverse_complement_ids(TOK.encode(seq)))
    fwd_only, rc_only = embed(model, [seq], pooling="none")[0], embed(model, [rc], pooling="none")[0]
    both = embed(model, [seq], pooling="none", reverse_complement=True)[0]
    # Row i is base i of the forward strand: the reverse complement's rows are flipped back.
    torch.testing.assert_close(both, (fwd_only + rc_only.flip(0)) / 2, atol=1e-6, rtol=0)
    other_strand = embed(model, [rc], pooling="none", reverse_complement=True)[0]
    torch.testing.assert_close(both, other_strand.flip(0), atol=1e-5, rtol=0)
    m1 = embed(model, [seq], pooling="mean", reverse_complement=True)
    m2 = embed(model, [rc], pooling="mean", reverse_complement=True)
    torch.testing.assert_close(m1, m2, atol=1e-5, rtol=0)
    assert not torch.allclose(m1, embed(model, [seq], pooling="mean"), atol=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(sequences=["ACGT", ""]), "sequence 1 is empty"),
    (dict(sequences=["ACGT"], pooling="max"), "pooling must be one of"),
    (dict(sequences=["ACGT"], layers=4), "layer 4 is out of range"),
    (dict(sequences=["ACGT"], layers=[]), "at least one"),
    (dict(sequences=["ACGX"]), "position 3"),
])
def test_bad_arguments_raise_one_clear_error(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        embed(model, **kwargs)


def test_too_long_input_names_l_max(model):
    with pytest.raises(hyena.SequenceTooLongError, match="l_max is 258"):
        embed(model, ["A" * 259])
