"""Hyena's short causal depthwise convolution (Poli et al. 2023, sec. 3.2: the kernel-3 filter
applied to the three projections), channels first, with a hand-written backward.

    out[c, t] = bias[c] + sum_j w[c, j] * (z + in_bias)[c, t - (K-1-j)],  zero history before t = 0

computed as K fused multiply-adds on shifted views. Written in place, autograd would record a
CopySlices node per shifted add (a full copy and a zero fill of the gradient per tap in
backward); `short_conv` instead runs a torch.autograd.Function whose backward is K shifted
multiply-adds for the input and K dot products for the taps.
"""

from __future__ import annotations

import torch


def _shifts(K: int) -> list[tuple[int, int]]:
    """(tap j, shift K-1-j) for every tap; the last tap is the current step."""
    return [(j, K - 1 - j) for j in range(K)]


def short_conv_forward(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       in_bias: torch.Tensor | None) -> torch.Tensor:
    """z (B, C, L), weight (C, K), bias (C,), in_bias (C,) or None; no autograd bookkeeping.

    The in_bias term sum_j w[j] * in_bias is added once and taken back at the first K-1 steps,
    where tap j reaches before t = 0 (so the in_proj output never needs its own bias pass).
    """
    K, L = weight.shape[1], z.shape[-1]
    folded = bias if in_bias is None else bias + in_bias * weight.sum(1)
    w = weight.to(z.dtype)
    out = torch.addcmul(folded.to(z.dtype)[:, None], z, w[:, K - 1:])
    for j, shift in _shifts(K)[:-1]:
        if shift < L:
            out[..., shift:].addcmul_(z[..., :L - shift], w[:, j:j + 1])
        if in_bias is not None:
            out[..., :shift] -= (in_bias * weight[:, j]).to(z.dtype)[:, None]
    return out


class _ShortConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, weight, bias, in_bias):
        ctx.save_for_backward(z, weight, in_bias)
        ctx.has_in_bias = in_bias is not None
        return short_conv_forward(z, weight, bias, in_bias)

    @staticmethod
    def backward(ctx, grad):
        z, weight, in_bias = ctx.saved_tensors
        K, L = weight.shape[1], z.shape[-1]
        grad = grad.contiguous()
        grad_z = grad_w = grad_bias = grad_in_bias = None
        w = weight.to(grad.dtype)
        acc = torch.promote_types(grad.dtype, torch.float32)  # sums in float32 at least (bf16 grads)
        if ctx.needs_input_grad[0]:
            grad_z = grad * w[:, K - 1:]
            for j, shift in _shifts(K)[:-1]:
                if shift < L:
                    grad_z[..., :L - shift].addcmul_(grad[..., shift:], w[:, j:j + 1])
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(weight, dtype=acc)
            for j, shift in _shifts(K):
                if shift < L:  # sum over batch and time of grad[t] * z[t - shift], in float32 or float64
                    grad_w[:, j] = (grad[..., shift:] * z[..., :L - shift]).sum((0, 2), dtype=acc)
        per_channel = grad.sum(0, dtype=acc)  # (C, L)
        if ctx.needs_input_grad[2]:
            grad_bias = per_channel.sum(1).to(weight.dtype)
        if ctx.has_in_bias and (ctx.needs_input_grad[1] or ctx.needs_input_grad[3]):
            # d out[t] / d in_bias = sum of the taps that reach t - shift >= 0.
            reach = torch.stack([per_channel[:, shift:].sum(1) for _, shift in _shifts(K)], 1)  # (C, K)
            if ctx.needs_input_grad[3]:
                grad_in_bias = (reach * weight.to(acc)).sum(1).to(in_bias.dtype)
            if ctx.needs_input_grad[1]:
                grad_w += reach * in_bias.to(acc)[:, None]
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        return grad_z, grad_w, grad_bias, grad_in_bias


def short_conv(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               in_bias: torch.Tensor | None = None) -> torch.Tensor:
    """The short convolution of z (B, C, L); differentiable in every tensor argument."""
    tensors = (z, weight, bias) + (() if in_bias is None else (in_bias,))
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _ShortConv.apply(z, weight, bias, in_bias)
    return short_conv_forward(z, weight, bias, in_bias)
