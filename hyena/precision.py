"""Mixed precision for every job: one autocast context keyed on device and precision.

    with autocast_context(device, "bf16"):      # scoring, embedding, variant effects, training
        logits = model(ids).logits

`bf16` runs the matrix products (projections, MLP, LM head) in bfloat16 through
`torch.autocast`, on CUDA and on CPU alike (CPUs with AVX512-BF16 or AMX run them natively:
~1.5-1.7x faster than float32 here, docs/performance.md). The long FFT convolution always runs in
float32 (`hyena.ops.fft_conv` leaves autocast and casts up): a bf16 FFT over 10^5 taps loses too
much. `fp32` is a plain no-op context; `auto` means bf16 on CUDA and fp32 on CPU (the training
default). Outputs a job stores (log P, embeddings) should be cast to float32 by the caller.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: str | torch.device) -> Literal["fp32", "bf16"]:
    """`auto` -> bf16 on CUDA, fp32 elsewhere; fp32 and bf16 unchanged."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision  # type: ignore[return-value]


def autocast_dtype(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype (torch.bfloat16) or None for float32."""
    return torch.bfloat16 if resolve_precision(precision, device) == "bf16" else None


def autocast_context(device: str | torch.device, precision: str) -> ContextManager:
    """A context that runs the model's matrix products at `precision` on `device`."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
