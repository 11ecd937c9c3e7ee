"""Generation (hyena/generation.py): the cached decoder equals the full forward at every step,
sampling is reproducible and emits only nucleotides, and bad arguments fail clearly."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hyena
from hyena.generation import CachedDecoder, GenerationError, choose_next, generate
from hyena.tokenizer import A, C, G, T

ASSETS = Path(__file__).parent / "assets" / "multimolecule"
BASES = {A, C, G, T}


@pytest.fixture(scope="module", params=["shared_freqs", "separate_freqs"])
def model(request):
    return hyena.from_pretrained(ASSETS / request.param).eval()


@pytest.mark.parametrize("prompt_length", [1, 2, 3, 50])
def test_cached_logits_equal_full_forward_at_every_step(model, prompt_length):
    torch.manual_seed(prompt_length)
    total = model.config.l_max  # up to the last position the filter has
    ids = torch.randint(0, 12, (2, total))
    with torch.no_grad():
        full = model(ids).logits  # causal: position t depends only on ids[:, :t+1]
    decoder = CachedDecoder(model, 2, total)
    prefill = decoder.prefill(ids[:, :prompt_length])
    assert (prefill - full[:, :prompt_length]).abs().max() <= 1e-4
    worst = 0.0
    for t in range(prompt_length, total):
        worst = max(worst, (decoder.step(ids[:, t]) - full[:, t]).abs().max().item())
    assert worst <= 1e-4, f"max |cached - full| {worst:.2e}"
    assert full.std() > 0.5  # logits far from uniform: the comparison is not trivially small
    with pytest.raises(RuntimeError, match="all are used"):
        decoder.step(ids[:, 0])


def test_greedy_continuation_identical_to_full_recompute(model):
    prompt = torch.tensor([2, 7, 8, 9, 10, 7, 7, 9])
    cached = generate(model, prompt, 120, greedy=True)
    full = generate(model, prompt, 120, greedy=True, use_cache=False)
    assert torch.equal(cached.sequences, full.sequences)
    torch.testing.assert_close(cached.log_likelihoods, full.log_likelihoods, atol=1e-4, rtol=0)
    assert torch.equal(cached.sequences[0, :8], prompt)
    assert len(set(cached.sequences[0, 8:].tolist())) > 1  # not a degenerate repeat of one base


def test_sampling_reproducible_per_seed_and_equal_to_full_recompute(model):
    prompt = [2, 9, 9, 10]
    kwargs = dict(temperature=0.9, top_k=3, top_p=0.95, num_return_sequences=4)
    a = generate(model, prompt, 60, seed=7, **kwargs)
    b = generate(model, prompt, 60, seed=7, **kwargs)
    c = generate(model, prompt, 60, seed=8, **kwargs)
    full = generate(model, prompt, 60, seed=7, use_cache=False, **kwargs)
    assert a.sequences.shape == (4, 64) and a.log_likelihoods.shape == (4, 60)
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.sequences, full.sequences)
    assert not torch.equal(a.sequences, c.sequences)
    assert len({tuple(row) for row in a.sequences.tolist()}) > 1  # return sequences differ
    assert set(a.sequences[:, 4:].unique().tolist()) <= BASES


def test_log_likelihoods_are_the_models_log_probabilities(model):
    out = generate(model, [2, 7, 8], 40, seed=1)
    with torch.no_grad():
        logp = F.log_softmax(model(out.sequences).logits, dim=-1)
    expected = logp[0, 2:-1].gather(1, out.sequences[0, 3:, None])[:, 0]
    torch.testing.assert_close(out.log_likelihoods[0], expected, atol=1e-4, rtol=0)


def test_only_nucleotides_even_when_special_tokens_dominate():
    logits = torch.zeros(3, 16)
    logits[:, :7] = 50.0  # [CLS] .. [UNK] overwhelmingly likely
    logits[:, 11] = 60.0  # N most likely of all
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        assert set(choose_next(logits, g).tolist()) <= BASES
    logits[:, G] = 1.0
    assert choose_next(logits, g, greedy=True).tolist() == [G, G, G]


def test_top_k_one_and_tiny_top_p_are_greedy():
    logits = torch.randn(64, 16, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(0)
    greedy = choose_next(logits, g, greedy=True)
    assert torch.equal(choose_next(logits, g, top_k=1), greedy)
    assert torch.equal(choose_next(logits, g, top_p=1e-6), greedy)
    # top_k = 2 never picks a base outside the two most likely ones.
    top2 = logits[:, [A, C, G, T]].topk(2).indices
    picks = choose_next(logits, g, top_k=2)
    allowed = torch.tensor([A, C, G, T])[top2]
    assert (picks[:, None] == allowed).any(1).all()


def test_generation_fills_exactly_to_l_max(model):
    l_max = model.config.l_max
    out = generate(model, [2] * 200, l_max - 200, greedy=True)
    assert out.sequences.shape == (1, l_max)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_tokens=59), r"200 tokens\) \+ max_new_tokens \(59\) = 259 exceeds this model's l_max 258"),
    (dict(prompt_ids=[2] * 259), "the prompt has 259 tokens but this model's l_max is 258"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\], got 0.0"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
    (dict(temperature=0.0), "temperature must be > 0 when sampling"),
    (dict(temperature=-1.0), "temperature must be > 0 when sampling"),
    (dict(prompt_ids=[2, 40]), "ids outside 0..11"),
    (dict(prompt_ids=[]), "non-empty"),
    (dict(num_return_sequences=0), "num_return_sequences must be"),
    (dict(top_k=-1), "top_k must be"),
])
def test_bad_arguments(kwargs, message):
    model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=1, l_max=258)).eval()
    args = {"prompt_ids": [2] * 200, "max_new_tokens": 10, **kwargs}
    with pytest.raises(GenerationError, match=message):
        generate(model, args.pop("prompt_ids"), args.pop("max_new_tokens"), **args)
