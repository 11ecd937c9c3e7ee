"""The model's maths: parameter counts, FFT convolution vs the direct reference, causality,
caching, the low-memory path, mixed precision and activation checkpointing."""

import pytest
import torch

import hyena
from hyena import HyenaConfig, HyenaDNAForCausalLM, SequenceTooLongError
from hyena.ops import direct_causal_conv, fast_fft_size, fft_conv


def tiny(**overrides) -> HyenaConfig:
    base = dict(d_model=16, n_layer=2, l_max=130, filter_order=8, embed_dropout=0.0)
    return HyenaConfig(**{**base, **overrides})


def model_for(cfg: HyenaConfig, seed: int = 0) -> HyenaDNAForCausalLM:
    torch.manual_seed(seed)
    m = HyenaDNAForCausalLM(cfg)
    with torch.no_grad():  # move every parameter off its init so no term hides behind a zero
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


@pytest.mark.parametrize("name", list(hyena.VARIANTS))
def test_parameter_counts_equal_official(name):
    cfg = HyenaConfig.variant(name)
    model = HyenaDNAForCausalLM(cfg)
    assert model.num_parameters() == hyena.OFFICIAL_PARAMETER_COUNTS[name]
    assert cfg.num_parameters() == hyena.OFFICIAL_PARAMETER_COUNTS[name]


def test_variant_geometry():
    cfg = HyenaConfig.variant("large-1m")
    assert (cfg.d_model, cfg.n_layer, cfg.d_inner, cfg.l_max) == (256, 8, 1024, 1000002)
    assert cfg.padded_vocab_size == 16 and cfg.modulation_shift == 0.05
    with pytest.raises(ValueError, match="released variants"):
        HyenaConfig.variant("huge-10m")
    with pytest.raises(ValueError, match="d_model"):
        HyenaConfig(d_model=0)
    with pytest.raises(ValueError, match="unknown HyenaConfig field"):
        HyenaConfig.from_dict({"d_modle": 8})


@pytest.mark.parametrize("L", [1, 2, 3, 17, 64, 100, 257])
def test_fft_conv_equals_direct_convolution_float64(L):
    torch.manual_seed(L)
    u = torch.randn(2, 5, L, dtype=torch.float64)
    k = torch.randn(5, L, dtype=torch.float64)
    bias = torch.randn(5, dtype=torch.float64)
    ref = direct_causal_conv(u, k, bias)
    got = fft_conv(u, k, bias)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    # Any FFT size >= 2L gives the same result.
    torch.testing.assert_close(fft_conv(u, k, bias, fft_size=4 * L), ref, rtol=1e-10, atol=1e-10)


def test_fast_fft_size_is_smooth_and_large_enough():
    for n in [1, 2, 5, 2052, 65540, 2000004]:
        m = fast_fft_size(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
    assert fast_fft_size(2052) == 2160  # not 4096


def tiny_logits(batch: int, length: int) -> tuple[HyenaDNAForCausalLM, torch.Tensor, torch.Tensor]:
    """The tiny model, random DNA tokens of shape (batch, length), and the model's logits of them."""
    m = model_for(tiny())
    x = torch.randint(7, 12, (batch, length))
    with torch.no_grad():
        return m, x, m(x).logits


def test_outputs_are_causal():
    m, x, base = tiny_logits(1, 96)
    with torch.no_grad():
        for t in (0, 40, 95):
            y = x.clone()
            y[0, t] = 7 + (y[0, t] - 7 + 1) % 5
            out = m(y).logits
            torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
            assert (out[:, t:] - base[:, t:]).abs().max() > 1e-4  # and t itself does change


def test_prefix_consistency_across_lengths():
    # An input of length L uses the first L filter taps: the prefix of a longer input gives the
    # same outputs as the short input alone.
    m, x, full = tiny_logits(2, 130)
    with torch.no_grad():
        for L in (1, 33, 129):
            torch.testing.assert_close(m(x[:, :L]).logits, full[:, :L], rtol=1e-4, atol=1e-5)


def test_too_long_input_raises_with_advice():
    m = model_for(tiny())
    with pytest.raises(SequenceTooLongError, match=r"131 tokens.*l_max is 130.*variant.*window"):
        m(torch.randint(7, 12, (1, 131)))


def test_eval_cache_is_reused_and_invalidated_by_parameter_updates():
    m = model_for(tiny())
    x = torch.randint(7, 12, (1, 50))
    filt = m.backbone.layers[0].mixer.filter_fn
    with torch.no_grad():
        first = m(x).logits
        assert len(filt._cache) == 1
        cached = next(iter(filt._cache.values()))
        m(x)
        assert next(iter(filt._cache.values())) is cached  # reused, not recomputed
        filt.implicit_filter[0].weight.add_(0.5)  # an optimizer step or load_state_dict
        second = m(x).logits
    assert len(filt._cache) == 1  # the stale entry was dropped
    assert (second - first).abs().max() > 1e-4
    fresh = HyenaDNAForCausalLM(m.config)
    fresh.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x).logits, second)


def test_cache_is_bounded_and_skips_huge_spectra(monkeypatch):
    m = model_for(tiny())
    filt = m.backbone.layers[0].mixer.filter_fn
    with torch.no_grad():
        for L in range(10, 100, 10):
            m(torch.randint(7, 12, (1, L)))
    assert len(filt._cache) <= filt.max_cache_entries
    monkeypatch.setattr(type(filt), "max_cached_bytes", 16)
    filt.clear_cache()
    with torch.no_grad():
        m(torch.randint(7, 12, (1, 64)))
    assert len(filt._cache) == 0


def test_training_mode_does_not_use_the_cache():
    m = model_for(tiny())
    m.train()
    x = torch.randint(7, 12, (2, 40))
    out = m(x, labels=x)
    out.loss.backward()
    filt = m.backbone.layers[0].mixer.filter_fn
    assert len(filt._cache) == 0
    assert filt.implicit_filter[0].weight.grad is not None
    assert filt.implicit_filter[1].freq.grad.abs().sum() > 0


def test_low_memory_path_equals_regular_path(monkeypatch):
    m = model_for(tiny(d_model=48))
    x = torch.randint(7, 12, (2, 120))
    with torch.no_grad():
        ref = m(x).logits
        monkeypatch.setattr(hyena.HyenaDNAModel, "low_memory_threshold", 0)
        for layer in m.backbone.layers:  # tiny groups and chunks exercise every boundary
            orig = layer.mixer.forward_low_memory
            layer.mixer.forward_low_memory = lambda v, f=orig, **kw: f(v, channel_group=20, seq_chunk=37)
        got = m(x).logits
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_loss_ignores_padding():
    m = model_for(tiny())
    x = torch.randint(7, 12, (2, 30))
    labels = torch.randint(7, 12, (2, 30))
    padded = labels.clone()
    padded[:, :10] = hyena.tokenizer.PAD
    with torch.no_grad():
        out = m(x, labels=padded)
        logits = out.logits
        ref = torch.nn.functional.cross_entropy(logits[:, 10:].reshape(-1, 16), labels[:, 10:].reshape(-1))
    torch.testing.assert_close(out.loss, ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_fft_in_float32_and_output_dtype(dtype):
    m = model_for(tiny())
    x = torch.randint(7, 12, (2, 64))
    mixer = m.backbone.layers[0].mixer
    with torch.no_grad():
        ref = m(x).logits
        with torch.autocast("cpu", dtype=dtype):
            u = torch.randn(2, 64, 16)
            y = mixer(u)
            logits = m(x).logits
    assert y.dtype == dtype  # the operator's output keeps the autocast dtype
    assert logits.dtype == dtype
    # bf16 projections, float32 FFT: close to the float32 model.
    assert (logits.float() - ref).abs().max() < 0.1


def test_activation_checkpointing_same_grads_same_keys():
    cfg = tiny(embed_dropout=0.0)
    a, b = model_for(cfg), model_for(cfg)
    b.set_activation_checkpointing(True)
    assert list(a.state_dict()) == list(b.state_dict())
    x = torch.randint(7, 12, (2, 50))
    for m in (a, b):
        m.train()
        m(x, labels=x).loss.backward()
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-5, atol=1e-7)


def test_param_groups_exclude_filter_mlp_from_weight_decay():
    m = HyenaDNAForCausalLM(tiny())
    decay, no_decay = hyena.param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    filt = m.backbone.layers[0].mixer.filter_fn
    assert all(id(p) in ids for p in filt.implicit_filter.parameters())
    assert id(m.backbone.layers[0].mixer.in_proj.weight) not in ids
    total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert total == m.num_parameters()


def test_higher_order_operator_runs_and_is_causal():
    m = model_for(tiny(order=3))
    x = torch.randint(7, 12, (1, 40))
    with torch.no_grad():
        a = m(x).logits
        y = x.clone()
        y[0, 20] = 7 if x[0, 20] != 7 else 8
        b = m(y).logits
    torch.testing.assert_close(a[:, :20], b[:, :20])


def textbook_operator(mixer, u: torch.Tensor) -> torch.Tensor:
    """The Hyena operator as the official code writes it, with a direct (Toeplitz) convolution:
    in_proj with its bias, a padded depthwise Conv1d, the gates, out_proj."""
    B, L, D = u.shape
    N = mixer.order
    z = mixer.in_proj(u).transpose(1, 2)  # (B, (N+1)D, L)
    K = mixer.short_filter.weight.shape[-1]
    z = torch.nn.functional.conv1d(z, mixer.short_filter.weight, mixer.short_filter.bias, padding=K - 1,
                                   groups=z.shape[1])[..., :L]
    *xs, v = z.split(D, dim=1)
    k = mixer.filter_fn.filter(L).view(N - 1, D, L)
    bias = mixer.filter_fn.bias.view(N - 1, D)
    for o, x_i in enumerate(reversed(xs[1:])):
        v = direct_causal_conv(v * x_i, k[o], bias[o])
    return mixer.out_proj((v * xs[0]).transpose(1, 2))


@pytest.mark.parametrize("order,batch,length,group", [(2, 1, 1, None), (2, 1, 2, 5), (2, 3, 50, None),
                                                      (2, 2, 129, 7), (3, 2, 40, None), (3, 1, 33, 6)])
def test_both_operator_paths_equal_the_textbook_operator_float64(order, batch, length, group):
    """The autograd path (channels-first, in_proj bias folded into the short conv) and the fused
    inference path (preallocated FFT buffers, in-place gating, grouped out_proj accumulation)."""
    m = model_for(tiny(d_model=24, order=order)).double()
    mixer = m.backbone.layers[0].mixer
    u = torch.randn(batch, length, 24, dtype=torch.float64)
    with torch.no_grad():
        ref = textbook_operator(mixer, u)
        fused = mixer.forward_low_memory(u, channel_group=group, seq_chunk=13)
    autograd = mixer(u.requires_grad_())
    assert autograd.requires_grad
    torch.testing.assert_close(autograd.detach(), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order,batch,length", [(2, 1, 1), (2, 2, 2), (2, 3, 50), (3, 2, 40)])
def test_operator_gradients_equal_the_textbook_operator_float64(order, batch, length):
    """Training runs the hand-written backward of the short conv (hyena.short_conv): every
    parameter's and the input's gradient must equal autograd through the textbook operator."""
    grads = []
    for fn in (lambda mixer, u: mixer(u), textbook_operator):
        m = model_for(tiny(d_model=24, order=order)).double()
        mixer = m.backbone.layers[0].mixer
        u = torch.randn(batch, length, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        u.requires_grad_()
        (fn(mixer, u) * torch.linspace(-1, 2, length * 24, dtype=torch.float64).view(length, 24)).sum().backward()
        grads.append({"input": u.grad, **{n: p.grad for n, p in mixer.named_parameters()}})
    ours, ref = grads
    assert ours.keys() == ref.keys()
    for name in ref:
        assert ref[name] is not None and ref[name].abs().sum() > 0, name
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("in_bias", [True, False])
def test_short_conv_backward_passes_gradcheck(in_bias):
    from hyena.short_conv import short_conv

    gen = torch.Generator().manual_seed(0)
    args = [torch.randn(2, 5, 7, dtype=torch.float64, generator=gen), torch.randn(5, 3, dtype=torch.float64, generator=gen),
            torch.randn(5, dtype=torch.float64, generator=gen)] + ([torch.randn(5, dtype=torch.float64, generator=gen)] if in_bias else [])
    assert torch.autograd.gradcheck(short_conv, [a.requires_grad_() for a in args])


def test_grouped_bf16_inference_accumulates_in_float32():
    m = model_for(tiny(d_model=48))
    mixer = m.backbone.layers[0].mixer
    u = torch.randn(2, 100, 48)
    with torch.no_grad():
        ref = mixer.forward_low_memory(u)  # float32, one group
        with torch.autocast("cpu", dtype=torch.bfloat16):
            whole = mixer.forward_low_memory(u)
            grouped = mixer.forward_low_memory(u, channel_group=16, seq_chunk=30)
    assert whole.dtype == grouped.dtype == torch.bfloat16
    scale = ref.abs().max()
    assert (whole.float() - ref).abs().max() < 0.02 * scale
    assert (grouped.float() - ref).abs().max() < 0.02 * scale


def test_no_grad_inference_equals_the_autograd_forward():
    """Golden tests run under no_grad (the fused path); training runs the autograd path."""
    m = model_for(tiny(d_model=32))
    x = torch.randint(7, 12, (3, 90))
    with torch.no_grad():
        fused = m(x).logits
    with torch.enable_grad():
        autograd = m(x).logits
    assert autograd.requires_grad
    torch.testing.assert_close(fused, autograd.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_dims", [(), (2,)])
def test_fft_conv_backward_passes_gradcheck(batch_dims):
    """fft_conv's hand-written backward (correlations by real FFTs) in every argument."""
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(*batch_dims, 3, 9, dtype=torch.float64, generator=gen).requires_grad_()
    k = torch.randn(3, 9, dtype=torch.float64, generator=gen).requires_grad_()
    bias = torch.randn(3, dtype=torch.float64, generator=gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda u, k, b: fft_conv(u, k, b), (u, k, bias))
    spec = torch.fft.rfft(k.detach(), n=fast_fft_size(18))  # a cached spectrum: gradients of u and bias
    assert torch.autograd.gradcheck(lambda u, b: fft_conv(u, bias=b, k_spectrum=spec, fft_size=fast_fft_size(18)),
                                    (u, bias))
