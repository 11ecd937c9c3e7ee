"""hyena.precision: one autocast context for every job, keyed on device and precision; and
bf16 scoring on CPU of a real region staying within a stated bound of fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hyena
from hyena.ops import direct_causal_conv, fft_conv
from hyena.precision import autocast_context, autocast_dtype, resolve_precision

# Largest |log P bf16 - log P fp32| allowed on the region below. bench/bench_precision.py measures
# the real figure on all of chrII (docs/performance.md); this bound leaves a margin for other CPUs.
BF16_MAX_LOGP_DEVIATION = 0.05


def test_resolve_precision():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        resolve_precision("fp16", "cpu")
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16 and autocast_dtype("fp32", "cpu") is None


def test_autocast_context_runs_matmuls_in_bf16_and_fft_in_float32():
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(2, 8)
    with autocast_context("cpu", "fp32"):
        assert lin(x).dtype == torch.float32
    with autocast_context(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert lin(x).dtype == torch.bfloat16
        u = torch.randn(1, 4, 32, dtype=torch.bfloat16)
        k = torch.randn(4, 32)
        y = fft_conv(u, k)
        assert y.dtype == torch.bfloat16  # output keeps the input's dtype ...
    ref = direct_causal_conv(u.double(), k.double())
    assert (y.double() - ref).abs().max() < 0.05  # ... but the convolution itself ran in float32
    assert not torch.is_autocast_enabled("cpu")


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and other test runs share these two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bf16_scoring_of_a_real_region_stays_close_to_fp32(bundled_genome, one_thread):
    from hyena.tokenizer import encode_bytes
    from hyena_platform.data.fasta import fasta_reader
    from hyena_platform.score.scorer import ChunkScorer
    from hyena_platform.score.tiling import Chunk

    raw = fasta_reader(str(bundled_genome)).raw("chrII", 0, 2000).translate(None, b"\r\n")
    tokens = encode_bytes(np.frombuffer(raw, dtype=np.uint8))
    torch.manual_seed(0)
    model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2, l_max=258))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = torch.from_numpy(tokens[:1028].astype(np.int64)).view(4, 257)
    for _ in range(10):  # a few steps, so that predictions are not uniform and rounding shows
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    chunk = Chunk("chrII", 0, tokens.size, tokens.size, "test", index=0)
    out = {p: ChunkScorer(model, window=256, stride=128, batch_size=4, precision=p).score_chunk(chunk, tokens, 0)
           for p in ("fp32", "bf16")}
    a, b = out["fp32"].columns["log_prob"], out["bf16"].columns["log_prob"]
    assert a.dtype == b.dtype == np.float32 and np.isfinite(b).all()
    deviation = np.abs(a - b).max()
    assert 0 < deviation <= BF16_MAX_LOGP_DEVIATION  # > 0: bf16 really ran; <= bound: it stays close
    assert np.abs(out["fp32"].columns["entropy"] - out["bf16"].columns["entropy"]).max() <= BF16_MAX_LOGP_DEVIATION
