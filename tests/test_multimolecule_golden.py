"""Logits equal MultiMolecule's HyenaDnaForCausalLM for the same weights (golden fixtures made by
scripts/make_multimolecule_golden.py with multimolecule installed; these tests need only numpy).

Each fixture is a small random MultiMolecule checkpoint whose every parameter was moved off its
initialisation, so that every sub-module changes the logits far above float32 rounding. The
inputs are in official ids; MultiMolecule's logits were permuted to official rows."""

from pathlib import Path

import numpy as np
import pytest
import torch

import hyena

ASSETS = Path(__file__).parent / "assets" / "multimolecule"
CASES = ["L1", "L7", "L64", "L200", "L258", "specials", "pad_left_unpadded", "pad_right_unpadded"]


@pytest.fixture(scope="module", params=["shared_freqs", "separate_freqs"])
def fixture(request):
    golden = np.load(ASSETS / request.param / "golden.npz")
    return request.param, hyena.from_pretrained(ASSETS / request.param), golden


@pytest.mark.parametrize("case", CASES)
def test_logits_equal_multimolecule(fixture, case):
    name, model, golden = fixture
    ids = torch.from_numpy(golden[f"{case}__official_input_ids"]).long()
    with torch.no_grad():
        out = model(ids, return_hidden_states=True)
    expected = golden[f"{case}__official_logits"]
    diff = np.abs(out.logits.numpy() - expected).max()
    assert diff <= 1e-5, f"{name}/{case}: max |logit diff| {diff:.2e}"
    # Final LayerNorm output: a few low-variance positions amplify float32 rounding to ~1.5e-5.
    np.testing.assert_allclose(out.hidden_states.numpy(), golden[f"{case}__last_hidden_state"], atol=5e-5, rtol=0)


def test_full_length_case_is_l_max(fixture):
    _, model, golden = fixture
    assert golden["L258__official_input_ids"].shape[1] == model.config.l_max


def test_separate_frequencies_detected(fixture):
    name, model, _ = fixture
    assert model.config.separate_sine_freqs == (name == "separate_freqs")


def test_export_back_to_multimolecule_is_identical(fixture, tmp_path):
    name, model, _ = fixture
    from safetensors.torch import load_file

    hyena.export_multimolecule(model, tmp_path / "mm")
    ours = load_file(str(tmp_path / "mm" / "model.safetensors"))
    theirs = load_file(str(ASSETS / name / "model.safetensors"))
    assert set(ours) == set(theirs)
    for key in theirs:
        if key == "model.embeddings.word_embeddings.weight":
            # Row 11 is unused by MultiMolecule's tokenizer; we carry official [BOS] there.
            keep = [i for i in range(16) if i != 11]
            torch.testing.assert_close(ours[key][keep], theirs[key][keep], rtol=0, atol=0)
        else:
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)
