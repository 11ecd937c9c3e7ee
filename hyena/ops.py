"""Long causal convolution: the FFT fast path and the direct reference it must equal.

Hyena's long convolution (Poli et al. 2023, eq. 3) is ``y[t] = sum_{s<=t} k[s] * u[t-s]``,
computed by FFT in O(L log L): zero-pad both signals to n >= 2L - 1 so the circular convolution
equals the linear one, multiply spectra, invert, keep the first L outputs. Any n >= 2L gives the
same result up to float rounding; we pick a fast size (only factors 2, 3, 5) instead of the next
power of two: at the released l_max = 1026 that is n = 2160 instead of 4096.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=256)
def fast_fft_size(min_size: int) -> int:
    """Smallest n >= min_size whose prime factors are 2, 3 and 5 (fast for pocketfft/cuFFT)."""
    if min_size <= 1:
        return 1
    best = 1 << (min_size - 1).bit_length()  # power of two upper bound
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # smallest power of two lifting p35 to >= min_size
            n = p35
            while n < min_size:
                n <<= 1
            best = min(best, n)
            p35 *= 3
        p5 *= 5
    return best


def filter_spectrum(k: torch.Tensor, fft_size: int) -> torch.Tensor:
    """rfft of filter taps k (..., L) zero-padded to fft_size, in float32 (float64 stays float64)."""
    return torch.fft.rfft(k.to(_compute_dtype(k.dtype)), n=fft_size)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def fft_conv(
    u: torch.Tensor,
    k: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    k_spectrum: torch.Tensor | None = None,
    fft_size: int | None = None,
) -> torch.Tensor:
    """Causal long convolution of u (B, D, L) with per-channel filters k (D, L), plus bias * u.

    Computed in float32 for float32/bf16/fp16 inputs (half-precision FFTs lose too much), in
    float64 for float64 inputs (the reference tests); the output has u's dtype. Pass `k_spectrum`
    (from `filter_spectrum`, with its `fft_size`) to reuse a cached spectrum instead of k.
    With autograd the backward is hand-written (`_FFTConv`): two real FFTs for u's gradient and
    one per channel for k's, where autograd through rfft/irfft runs complex FFTs.
    """
    L = u.shape[-1]
    if fft_size is None:
        fft_size = fast_fft_size(2 * L)
    if k_spectrum is None and k is None:
        raise TypeError("fft_conv needs k or k_spectrum")
    if k is not None:
        k = k[..., :L]
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (u, k, bias, k_spectrum))
    if needs_grad and (k_spectrum is None or not k_spectrum.requires_grad):
        with torch.autocast(device_type=u.device.type, enabled=False):
            return _FFTConv.apply(u, k if k_spectrum is None else None, bias, k_spectrum, fft_size)
    # No autograd, or a spectrum that carries its own graph (plain autograd through the FFTs).
    spec = k_spectrum if k_spectrum is not None else filter_spectrum(k, fft_size)
    return _fft_conv_forward(u, spec, bias, fft_size)[0]


def _fft_conv_forward(u, k_spectrum, bias, fft_size):
    """(y in u's dtype, u in the compute dtype, u's spectrum)."""
    L = u.shape[-1]
    with torch.autocast(device_type=u.device.type, enabled=False):
        u_c = u.to(_compute_dtype(u.dtype))
        u_f = torch.fft.rfft(u_c, n=fft_size)
        y = torch.fft.irfft(u_f * k_spectrum, n=fft_size)[..., :L]
        if bias is not None:
            y = y + u_c * bias.to(u_c.dtype).unsqueeze(-1)
    return y.to(u.dtype), u_c, u_f


class _FFTConv(torch.autograd.Function):
    """y = irfft(rfft(u) * rfft(k))[:L] + bias * u, with the backward written as correlations:

        grad_u = irfft(G * conj(K))[:L] + bias * g,   grad_k = irfft(sum_b G * conj(U))[:L],
        G = rfft(g zero-padded to n)

    (exact because n >= 2L: the circular wrap only reaches zero padding)."""

    @staticmethod
    def forward(ctx, u, k, bias, k_spectrum, fft_size):
        spec = filter_spectrum(k, fft_size) if k_spectrum is None else k_spectrum
        y, u_c, u_f = _fft_conv_forward(u, spec, bias, fft_size)
        ctx.fft_size, ctx.u_dtype = fft_size, u.dtype
        ctx.k_dtype = None if k is None else k.dtype
        ctx.save_for_backward(u_c if bias is not None and ctx.needs_input_grad[2] else None,
                              u_f if k is not None and ctx.needs_input_grad[1] else None, spec, bias)
        return y

    @staticmethod
    def backward(ctx, grad):
        u_c, u_f, spec, bias = ctx.saved_tensors
        n, L = ctx.fft_size, grad.shape[-1]
        g = grad.to(spec.real.dtype)
        g_f = torch.fft.rfft(g, n=n)
        grad_u = grad_k = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.fft.irfft(g_f * spec.conj(), n=n)[..., :L]
            if bias is not None:
                grad_u = grad_u + g * bias.to(g.dtype).unsqueeze(-1)
            grad_u = grad_u.to(ctx.u_dtype)
        lead = tuple(range(g.dim() - 2))  # batch dimensions: the filter and bias are shared
        if u_f is not None:
            cross = g_f * u_f.conj()
            grad_k = torch.fft.irfft(cross.sum(lead) if lead else cross, n=n)[..., :L].to(ctx.k_dtype)
        if u_c is not None:
            grad_bias = (g * u_c).sum(lead + (g.dim() - 1,)).to(bias.dtype)
        return grad_u, grad_k, grad_bias, None, None


def direct_causal_conv(u: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Reference O(L^2) causal convolution, same contract as fft_conv (use float64 in tests)."""
    L = u.shape[-1]
    k = k[..., :L]
    # Toeplitz matrix per channel: T[d, t, s] = k[d, t - s] for s <= t.
    idx = torch.arange(L, device=u.device)
    lag = idx[:, None] - idx[None, :]
    toeplitz = k[:, lag.clamp(min=0)] * (lag >= 0)
    y = torch.einsum("dts,bds->bdt", toeplitz.to(u.dtype), u)
    if bias is not None:
        y = y + u * bias.to(u.dtype).unsqueeze(-1)
    return y
