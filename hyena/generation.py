"""Sampling DNA from HyenaDNA with an exact cached decoder.

A Hyena block is causal and, apart from the long convolution, pointwise in time (LayerNorm,
projections, gating, MLP) or a short causal convolution (kernel 3). So a new position t needs,
per layer, only (Poli et al. 2023, sec. 3; HyenaDNA, Nguyen et al. 2023, sec. 3):

- the last K-1 in_proj outputs (the short convolution's state), and
- the history u[0..t] of the long convolution's input u = v * x1, because
  y[t] = sum_{s<=t} k[s] u[t-s] + B u[t] is computed directly: O(t) per channel, exact (no FFT).

The prompt is run once through the usual FFT path (the prefill) and fills those states; each
new base then costs O(n_layer (D^2 + D t)) instead of a full O(n_layer D L log L) forward.
The filter k is a fixed function of position (the implicit MLP), computed once for the final
length. The cached logits equal the full forward's to float rounding (tests check 1e-4).

    >>> out = generate(model, tokenizer.encode("ACGT"), 100, temperature=0.8, top_p=0.9, seed=0)
    >>> out.sequences       # (R, len(prompt) + 100) token ids
    >>> out.log_likelihoods  # (R, 100) log P(base | everything before it), nats
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hyena.ops import fast_fft_size, fft_conv
from hyena.tokenizer import A, C, G, T, VOCAB_SIZE

NUCLEOTIDES = (A, C, G, T)  # what generation may emit: never a special token, never N


class GenerationError(ValueError):
    """Invalid generation arguments: the message names the argument and the fix."""


@dataclass
class GenerationOutput:
    sequences: torch.Tensor  # (R, P + new) int64: the prompt followed by the generated ids
    log_likelihoods: torch.Tensor  # (R, new) float32: log softmax of the model (T = 1) per new base
    prompt_length: int


class _LayerState:
    """Per block: the short conv's last K-1 inputs and the long conv's input history."""

    def __init__(self, block: nn.Module, batch: int, total: int):
        op = block.mixer
        D = op.d_model
        self.block, self.op = block, op
        weight = op.short_filter.weight[:, 0]  # (3D, K)
        self.conv_w_now, self.conv_w_past = weight[:, -1], weight[:, :-1].T.contiguous()  # (3D,), (K-1, 3D)
        self.conv_b = op.short_filter.bias
        self.taps_reversed = op.filter_fn.filter(total).float().flip(-1).contiguous()  # (D, total)
        self.skip = op.filter_fn.bias.float()  # B in y = k * u + B u
        device = weight.device
        self.zr = torch.zeros(batch, weight.shape[1] - 1, 3 * D, device=device, dtype=weight.dtype)
        self.u = torch.zeros(batch, D, total, device=device, dtype=torch.float32)
        self.total = total

    def prefill(self, x: torch.Tensor) -> torch.Tensor:
        """The block on a whole prompt x (B, L, D), by FFT, recording the decoder state."""
        op, block = self.op, self.block
        D, L = op.d_model, x.shape[1]
        zr = op.in_proj(block.norm1(x))  # (B, L, 3D)
        x0, x1, v = op._short_conv(zr.transpose(1, 2)).transpose(1, 2).split(D, dim=-1)  # conv over time
        u = (v * x1).transpose(1, 2)  # (B, D, L)
        fft_size = fast_fft_size(2 * L)
        spec = op.filter_fn.spectrum(L, fft_size)
        y = fft_conv(u, bias=op.filter_fn.bias, k_spectrum=spec, fft_size=fft_size).transpose(1, 2)
        x = x + op.out_proj(y * x0)
        x = x + block.mlp(block.norm2(x))
        keep = min(L, self.zr.shape[1])
        if keep:
            self.zr[:, -keep:] = zr[:, -keep:]
        self.u[:, :, :L] = u.float()
        return x

    def step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The block at position t for x (B, D), directly: O(D^2 + D t)."""
        op, block = self.op, self.block
        D = op.d_model
        zr = op.in_proj(block.norm1(x))  # (B, 3D)
        z = self.conv_b + self.conv_w_now * zr + (self.zr * self.conv_w_past).sum(1)
        self.zr = torch.cat([self.zr[:, 1:], zr[:, None]], dim=1)
        x0, x1, v = z.split(D, dim=-1)
        u = (v * x1).float()  # (B, D)
        self.u[:, :, t] = u
        # y[t] = sum_s k[t-s] u[s]: the reversed taps' last t+1 entries line up with u[0..t].
        taps = self.taps_reversed[:, self.total - 1 - t:]  # (D, t+1)
        y = (self.u[:, :, :t + 1] * taps).sum(-1) + self.skip * u  # faster than einsum at small B
        x = x + op.out_proj(y.to(x.dtype) * x0)
        return x + block.mlp(block.norm2(x))


class CachedDecoder:
    """Exact incremental decoding of a HyenaDNAForCausalLM (order-2 operators).

    `prefill(ids)` returns the logits of every prompt position; each `step(next_ids)` appends one
    position per row and returns its logits (B, vocab). At most `total` positions in all.
    """

    def __init__(self, model: nn.Module, batch: int, total: int):
        cfg = model.config
        if cfg.order != 2:
            raise GenerationError(f"the cached decoder supports order-2 Hyena operators, this model has {cfg.order}")
        if total > cfg.l_max:
            raise GenerationError(f"{total} positions exceed this model's l_max {cfg.l_max}")
        self.model, self.total, self.t = model, total, 0
        self.layers = [_LayerState(block, batch, total) for block in model.backbone.layers]

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        if self.t:
            raise RuntimeError("prefill runs once, on an empty cache")
        x = self.model.backbone.embeddings(ids)
        for layer in self.layers:
            x = layer.prefill(x)
        self.t = ids.shape[1]
        return self.model.lm_head(self.model.backbone.ln_f(x))

    @torch.no_grad()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        if self.t >= self.total:
            raise RuntimeError(f"the cache holds {self.total} positions; all are used")
        x = self.model.backbone.embeddings(ids)
        for layer in self.layers:
            x = layer.step(x, self.t)
        self.t += 1
        return self.model.lm_head(self.model.backbone.ln_f(x))


def generate(
    model: nn.Module,
    prompt_ids: Sequence[int] | np.ndarray | torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    seed: int | None = None,
    num_return_sequences: int = 1,
    greedy: bool = False,
    use_cache: bool = True,
) -> GenerationOutput:
    """Continue one prompt (1-D token ids, at least one) with `max_new_tokens` nucleotides.

    Samples only A, C, G, T: logits are divided by `temperature`, cut to the `top_k` most
    likely bases and to the smallest set whose probability reaches `top_p` (nucleus sampling,
    Holtzman et al. 2020), and sampled with a generator seeded by `seed` (same seed, same
    output). `greedy` takes the most likely base instead. `use_cache=False` reruns the full
    forward for every new base (the slow reference the cached decoder must equal).
    """
    prompt = _check_arguments(model, prompt_ids, max_new_tokens, temperature, top_k, top_p,
                              num_return_sequences, greedy)
    device = next(model.parameters()).device
    ids = prompt.to(device).expand(num_return_sequences, -1).contiguous()
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # fresh entropy, without touching torch's global RNG
    else:
        generator.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        new, log_likelihoods = _decode(model, ids, max_new_tokens, use_cache, generator,
                                       dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy))
    finally:
        model.train(was_training)
    sequences = torch.cat([ids.cpu(), new], dim=1) if max_new_tokens else ids.cpu()
    return GenerationOutput(sequences, log_likelihoods, prompt.shape[0])


@torch.no_grad()
def _decode(model: nn.Module, ids: torch.Tensor, max_new: int, use_cache: bool,
            generator: torch.Generator, sampling: dict) -> tuple[torch.Tensor, torch.Tensor]:
    R, P = ids.shape
    new = torch.empty(R, max_new, dtype=torch.long)
    log_likelihoods = torch.empty(R, max_new, dtype=torch.float32)
    if max_new == 0:
        return new, log_likelihoods
    decoder = CachedDecoder(model, R, P + max_new) if use_cache else None
    logits = decoder.prefill(ids)[:, -1] if decoder else model(ids).logits[:, -1]
    sequence = ids
    for i in range(max_new):
        chosen = choose_next(logits.float().cpu(), generator, **sampling)
        new[:, i] = chosen
        log_likelihoods[:, i] = F.log_softmax(logits.float().cpu(), dim=-1).gather(1, chosen[:, None])[:, 0]
        if i + 1 == max_new:
            break
        step_ids = chosen.to(ids.device)
        if decoder:
            logits = decoder.step(step_ids)
        else:
            sequence = torch.cat([sequence, step_ids[:, None]], dim=1)
            logits = model(sequence).logits[:, -1]
    return new, log_likelihoods


def choose_next(logits: torch.Tensor, generator: torch.Generator, *, temperature: float = 1.0,
                top_k: int | None = None, top_p: float = 1.0, greedy: bool = False) -> torch.Tensor:
    """Next token ids (R,) from logits (R, vocab), restricted to A, C, G, T."""
    bases = torch.tensor(NUCLEOTIDES)
    scores = logits[:, bases]  # (R, 4)
    if greedy:
        return bases[scores.argmax(dim=-1)]
    scores = scores / temperature
    if top_k:
        kth = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        # Drop a base when the more likely ones already reach top_p (the first always stays).
        drop_sorted = (cumulative - sorted_scores.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    choice = torch.multinomial(scores.softmax(-1), 1, generator=generator)[:, 0]
    return bases[choice]


def _check_arguments(model: nn.Module, prompt_ids, max_new_tokens: int, temperature: float,
                     top_k: int | None, top_p: float, num_return_sequences: int, greedy: bool) -> torch.Tensor:
    prompt = torch.as_tensor(np.asarray(prompt_ids) if not isinstance(prompt_ids, torch.Tensor) else prompt_ids)
    prompt = prompt.reshape(-1) if prompt.dim() == 2 and prompt.shape[0] == 1 else prompt
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise GenerationError(f"prompt_ids must be one non-empty sequence of token ids, got shape {tuple(prompt.shape)}")
    prompt = prompt.long()
    if prompt.min() < 0 or prompt.max() >= VOCAB_SIZE:
        raise GenerationError(f"prompt_ids hold ids outside 0..{VOCAB_SIZE - 1}: encode the prompt with hyena.Tokenizer")
    l_max = model.config.l_max
    if prompt.numel() > l_max:
        raise GenerationError(f"the prompt has {prompt.numel()} tokens but this model's l_max is {l_max}: "
                              f"shorten the prompt to at most {l_max - 1} tokens")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise GenerationError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if prompt.numel() + max_new_tokens > l_max:
        raise GenerationError(
            f"prompt ({prompt.numel()} tokens) + max_new_tokens ({max_new_tokens}) = "
            f"{prompt.numel() + max_new_tokens} exceeds this model's l_max {l_max}: set max_new_tokens "
            f"to at most {l_max - prompt.numel()} or shorten the prompt (nothing is truncated silently)")
    if not greedy and not temperature > 0:
        raise GenerationError(f"temperature must be > 0 when sampling, got {temperature}; use greedy decoding instead")
    if not 0 < top_p <= 1:
        raise GenerationError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise GenerationError(f"top_k must be an integer >= 0 (0 or None: no cut), got {top_k!r}")
    if isinstance(num_return_sequences, bool) or not isinstance(num_return_sequences, int) or num_return_sequences < 1:
        raise GenerationError(f"num_return_sequences must be an integer >= 1, got {num_return_sequences!r}")
    return prompt
