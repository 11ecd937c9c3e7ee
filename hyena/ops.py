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
    float64 for float64 inputs (the reference tests); the output has u's dtype. Pass `k_spectrum` (from `filter_spectrum`, with its `fft_size`) to reuse a
    cached spectrum instead of k.
    """
    L = u.shape[-1]
    if fft_size is None:
        fft_size = fast_fft_size(2 * L)
    if k_spectrum is None:
        if k is None:
            raise TypeError("fft_conv needs k or k_spectrum")
        k_spectrum = filter_spectrum(k[..., :L], fft_size)
    with torch.autocast(device_type=u.device.type, enabled=False):
        u_c = u.to(_compute_dtype(u.dtype))
        y = torch.fft.irfft(torch.fft.rfft(u_c, n=fft_size) * k_spectrum, n=fft_size)[..., :L]
        if bias is not None:
            y = y + u_c * bias.to(u_c.dtype).unsqueeze(-1)
    return y.to(u.dtype)


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
