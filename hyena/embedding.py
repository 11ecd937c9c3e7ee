"""Sequence and per-base embeddings from HyenaDNA's hidden states (feature extraction).

HyenaDNA (Nguyen et al. 2023, sec. 4) uses the backbone's hidden states as features for
downstream tasks: pooled per sequence for classification, per base for token-level tasks.

    >>> vectors = embed(model, ["ACGTAC", "GGT"], pooling="mean")            # (2, D)
    >>> per_base = embed(model, ["ACGTAC"], pooling="none", layers=[-2, -1])  # [(6, 2 D)]

Rules, chosen so that an embedding never depends on what else shares its batch:
- Inputs are bases only (no special tokens). A batch is right-padded: the model is causal, so a
  sequence's real positions never see the padding after them, and a mixed-length batch equals
  each sequence embedded alone (to float rounding of the FFT size).
- `layers` index the n_layer + 2 hidden states of `HyenaDNAModel.iter_hidden_states` (0 the
  token embeddings, -1 the final LayerNorm output). Several layers are concatenated along the
  feature axis in the order given.
- `mean` averages over real tokens, `last` takes the last real token (the only one that has
  read the whole sequence), `none` returns one row per base.
- `reverse_complement=True` also embeds the reverse complement and averages the two; its
  per-base rows are flipped back so that row i is base i of the forward strand.
- States are pooled as each layer is produced, so a 1,000,000-base input through large-1m runs
  on the low-memory path without keeping every layer alive.
"""

from __future__ import annotations

from typing import Literal, Sequence, Union

import numpy as np
import torch
from torch import nn

from hyena.tokenizer import PAD, SequenceLike, Tokenizer, reverse_complement_ids

Pooling = Literal["mean", "last", "none"]
POOLINGS = ("mean", "last", "none")
Inputs = Union[Sequence[SequenceLike], Sequence[np.ndarray], Sequence[torch.Tensor]]


class EmbeddingError(ValueError):
    """Invalid arguments to `embed` (pooling, layers, an empty sequence)."""


def embed(
    model: nn.Module,
    sequences: Inputs,
    *,
    pooling: Pooling = "mean",
    layers: int | Sequence[int] = -1,
    reverse_complement: bool = False,
    batch_size: int = 8,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor | list[torch.Tensor]:
    """Embed DNA sequences: strings or bytes of bases, or 1-D numpy arrays / tensors of
    official token ids (as `Tokenizer.encode` returns them).

    Returns a (B, F) tensor for `mean`/`last`, or a list of (L_i, F) tensors for `none`, with
    F = d_model x len(layers), in `dtype`, on the CPU. Runs under no_grad in eval mode.
    """
    if pooling not in POOLINGS:
        raise EmbeddingError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if batch_size < 1:
        raise EmbeddingError(f"batch_size must be >= 1, got {batch_size}")
    backbone = getattr(model, "backbone", model)
    indices = resolve_layers(layers, len(backbone.layers) + 2)
    ids = [_as_ids(s, i) for i, s in enumerate(sequences)]
    out: list[torch.Tensor] = []
    for start in range(0, len(ids), batch_size):
        batch = ids[start:start + batch_size]
        result = _embed_batch(backbone, batch, pooling, indices)
        if reverse_complement:
            rc = _embed_batch(backbone, [reverse_complement_ids(x).copy() for x in batch], pooling, indices)
            if pooling == "none":
                rc = [r.flip(0) for r in rc]  # back to forward coordinates
            result = [(f + r) / 2 for f, r in zip(result, rc)]
        out.extend(r.to(dtype) for r in result)
    if pooling == "none":
        return out
    return torch.stack(out) if out else torch.empty(0, backbone.config.d_model * len(indices), dtype=dtype)


def resolve_layers(layers: int | Sequence[int], count: int) -> list[int]:
    """Normalise layer indices (negative from the end) against `count` hidden states."""
    chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    if not chosen:
        raise EmbeddingError("layers must name at least one hidden state")
    resolved = []
    for layer in chosen:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -count <= layer < count:
            raise EmbeddingError(
                f"layer {layer!r} is out of range: this model has {count} hidden states "
                f"(0 = token embeddings, 1..{count - 2} = blocks, {count - 1} or -1 = final LayerNorm)"
            )
        resolved.append(int(layer) % count)
    return resolved


def _as_ids(sequence: SequenceLike | np.ndarray | torch.Tensor, index: int) -> np.ndarray:
    if isinstance(sequence, torch.Tensor):
        ids = sequence.detach().cpu().numpy()
    elif isinstance(sequence, np.ndarray):
        ids = sequence
    else:
        ids = Tokenizer().encode(sequence)
    if ids.ndim != 1:
        raise EmbeddingError(f"sequence {index}: expected one sequence (1-D), got shape {ids.shape}")
    if ids.size == 0:
        raise EmbeddingError(f"sequence {index} is empty: an embedding needs at least one base")
    return ids.astype(np.int64, copy=False)


@torch.no_grad()
def _embed_batch(backbone: nn.Module, batch: list[np.ndarray], pooling: Pooling,
                 indices: list[int]) -> list[torch.Tensor]:
    """One right-padded forward; each selected state is pooled (or copied) as it is produced."""
    lengths = [len(x) for x in batch]
    width = max(lengths)
    ids = np.full((len(batch), width), PAD, dtype=np.int64)
    for row, x in enumerate(batch):
        ids[row, :len(x)] = x
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    pieces: dict[int, list[torch.Tensor]] = {}
    try:
        for index, h in backbone.iter_hidden_states(torch.from_numpy(ids).to(device)):
            if index in indices:
                pieces[index] = [_pool(h[row, :n], pooling) for row, n in enumerate(lengths)]
    finally:
        backbone.train(was_training)
    return [torch.cat([pieces[i][row] for i in indices], dim=-1) for row in range(len(batch))]


def _pool(states: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """states (L, D) of one sequence's real tokens -> (D,) or a (L, D) float32 CPU copy."""
    if pooling == "mean":
        return states.sum(0, dtype=torch.float64).div(states.shape[0]).float().cpu()
    if pooling == "last":
        return states[-1].float().cpu().clone()  # a copy: the no-grad path reuses `states` in place
    return states.float().cpu().clone()
