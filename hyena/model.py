"""HyenaDNA: blocks, the backbone (hidden states) and the causal LM with a tied head.

Nguyen et al. 2023, "HyenaDNA" (sec. 3): a stack of pre-norm residual blocks, each a Hyena
operator followed by an MLP, over single-nucleotide token embeddings, no positional embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from hyena import checkpoint as _checkpoint
from hyena.config import HyenaConfig
from hyena.operator import HyenaOperator, check_length
from hyena.tokenizer import PAD


class Mlp(nn.Module):
    def __init__(self, cfg: HyenaConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_inner)
        self.fc2 = nn.Linear(cfg.d_inner, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))

    @torch.no_grad()
    def add_to_(self, residual: torch.Tensor, x: torch.Tensor) -> None:
        """residual (T, D) += MLP(x (T, D)) without autograd: GELU in place on fc1's output and
        fc2 accumulated straight into the residual (no output buffer, no separate add pass)."""
        h = self.fc1(x)
        torch._C._nn.gelu_(h, approximate="tanh")
        if h.dtype == residual.dtype:
            residual.addmm_(h, self.fc2.weight.t()).add_(self.fc2.bias)
        else:  # autocast: fc2 in the autocast dtype, the residual stays in its own
            residual.add_(self.fc2(h))


class Block(nn.Module):
    """x = x + Hyena(LN1(x)); x = x + MLP(LN2(x))."""

    mlp_rows = 2048  # token rows per MLP tile on the no-grad path (docs/performance.md)

    def __init__(self, cfg: HyenaConfig):
        super().__init__()
        self.mixer = HyenaOperator(cfg)
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_epsilon)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_epsilon)
        self.mlp = Mlp(cfg)
        self.dropout1 = nn.Dropout(cfg.resid_dropout)
        self.dropout2 = nn.Dropout(cfg.resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout1(self.mixer(self.norm1(x)))
        return x + self.dropout2(self.mlp(self.norm2(x)))

    @torch.no_grad()
    def forward_low_memory(self, x: torch.Tensor, seq_chunk: int = 1 << 16,
                           channel_group: int | None = None) -> torch.Tensor:
        """Inference in place on x: sequence-chunked norms and MLP, channel-grouped operator."""
        normed = torch.empty_like(x)
        for s in range(0, x.shape[1], seq_chunk):
            normed[:, s:s + seq_chunk] = self.norm1(x[:, s:s + seq_chunk])
        mixed = self.mixer.forward_low_memory(normed, channel_group=channel_group, seq_chunk=seq_chunk)
        del normed
        x += mixed
        del mixed
        # The MLP in row tiles of `mlp_rows` tokens: fc1's output (4D wide) then stays in cache
        # for the GELU and fc2 (measured ~15-20% faster on the MLP at 16k tokens than one pass).
        for b in range(x.shape[0]):
            for s in range(0, x.shape[1], self.mlp_rows):
                rows = x[b, s:s + self.mlp_rows]
                self.mlp.add_to_(rows, self.norm2(rows))
        return x


class Embeddings(nn.Module):
    def __init__(self, cfg: HyenaConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


class HyenaDNAModel(nn.Module):
    """The backbone: token ids (B, L) -> final hidden states (B, L, D)."""

    # Without autograd, every block runs in place with sequence-chunked norms and MLP and the
    # fused channels-first operator (HyenaOperator.forward_low_memory). Its channel group is a
    # measured choice (docs/performance.md, "Path selection"): all D channels at once unless the
    # activations exceed `low_memory_threshold` elements (B * L * D), where groups of
    # `low_memory_channel_group` channels bound memory, or L >= `grouped_from_length`, where the
    # grouped path measured faster even with memory to spare.
    low_memory_threshold = 1 << 26
    low_memory_channel_group = 32
    grouped_from_length = 1 << 16  # groups measured 2-8% faster from 64k (docs/performance.md)

    def __init__(self, cfg: HyenaConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.dropout = nn.Dropout(cfg.embed_dropout)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_epsilon)
        self.activation_checkpointing = False

    def forward(self, input_ids: torch.Tensor, *, output_hidden_states: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Final hidden states (B, L, D); with `output_hidden_states`, also every layer's (below)."""
        if not output_hidden_states:
            for _, h in self.iter_hidden_states(input_ids):  # keeps only the newest state alive
                pass
            return h
        low_memory = self._low_memory(input_ids)
        # The low-memory path updates its buffer in place: keep copies of the states it yields.
        states = tuple(h.clone() if low_memory else h for _, h in self.iter_hidden_states(input_ids))
        return states[-1], states

    def _low_memory(self, input_ids: torch.Tensor) -> bool:
        """True when this call runs the in-place no-grad path: every call without autograd, unless
        residual or operator dropout is active (training mode with those dropouts > 0)."""
        dropout = self.training and (self.config.resid_dropout > 0 or self.config.hyena_dropout > 0)
        return not torch.is_grad_enabled() and not dropout

    def iter_hidden_states(self, input_ids: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (index, state (B, L, D)) for the n_layer + 2 hidden states, first to last:
        0 the token embeddings, i in 1..n_layer the output of block i, n_layer + 1 the final
        LayerNorm's output (what the LM head reads). MultiMolecule's `output_hidden_states`
        returns the same n_layer + 2 tensors.

        On the in-place no-grad path (`_low_memory`) each yielded tensor is updated in place once
        the generator resumes: a consumer pools or copies it before asking for the next one.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
        L = input_ids.shape[1]
        check_length(L, self.config.l_max)
        h = self.dropout(self.embeddings(input_ids))
        low_memory = self._low_memory(input_ids)
        group = self.inference_channel_group(*input_ids.shape)
        yield 0, h
        for index, block in enumerate(self.layers, start=1):
            if low_memory:
                h = block.forward_low_memory(h, channel_group=group)
            elif self.activation_checkpointing and self.training and torch.is_grad_enabled():
                # Recompute activations in backward; parameters and state-dict keys are untouched.
                h = checkpoint(block, h, use_reentrant=False)
            else:
                h = block(h)
            yield index, h
        if low_memory:
            for s in range(0, L, 1 << 16):
                h[:, s:s + (1 << 16)] = self.ln_f(h[:, s:s + (1 << 16)])
        else:
            h = self.ln_f(h)
        yield len(self.layers) + 1, h

    def inference_channel_group(self, batch: int, length: int) -> int:
        """Channels per group of the no-grad operator (see the class attributes)."""
        D = self.config.d_model
        if batch * length * D > self.low_memory_threshold or length >= self.grouped_from_length:
            return min(self.low_memory_channel_group, D)
        return D


@dataclass
class CausalLMOutput:
    logits: torch.Tensor  # (B, L, padded vocab)
    loss: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None  # final (B, L, D), with return_hidden_states
    all_hidden_states: tuple[torch.Tensor, ...] | None = None  # n_layer + 2, with output_hidden_states


class HyenaDNAForCausalLM(nn.Module):
    """Backbone plus the LM head tied to the embedding (no bias): logits (B, L, 16)."""

    def __init__(self, cfg: HyenaConfig):
        super().__init__()
        self.config = cfg
        self.backbone = HyenaDNAModel(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.padded_vocab_size, bias=False)
        self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """HyenaDNA's initialisation (GPT-2 style): N(0, 0.02) for every Linear and the embedding,
        zero biases, and N(0, 0.02 / sqrt(2 n_layer)) for the residual-branch output projections."""
        std = self.config.initializer_range
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                scale = 1 / math.sqrt(2 * self.config.n_layer) if name.endswith(("out_proj", "fc2")) else 1.0
                nn.init.normal_(module.weight, std=std * scale)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        ignore_index: int = PAD,
        return_hidden_states: bool = False,
        output_hidden_states: bool = False,
    ) -> CausalLMOutput:
        """`labels` are the next-token targets aligned with input_ids (the data layer shifts them:
        inputs = ids[:-1], labels = ids[1:]); positions equal to `ignore_index` ([PAD]) are skipped.
        """
        states = None
        if output_hidden_states:
            hidden, states = self.backbone(input_ids, output_hidden_states=True)
        else:
            hidden = self.backbone(input_ids)
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(f"labels shape {tuple(labels.shape)} != input_ids shape {tuple(input_ids.shape)}")
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=ignore_index
            )
        return CausalLMOutput(logits=logits, loss=loss, hidden_states=hidden if return_hidden_states else None,
                              all_hidden_states=states)

    def set_activation_checkpointing(self, enabled: bool = True) -> "HyenaDNAForCausalLM":
        self.backbone.activation_checkpointing = enabled
        return self

    def num_parameters(self) -> int:
        """Unique trainable parameters (the tied head and shared sine frequency count once)."""
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | Path) -> Path:
        """Our format: config.json + model.safetensors, written atomically (hyena.checkpoint)."""
        return _checkpoint.save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> "HyenaDNAForCausalLM":
        """Any layout hyena.checkpoint reads (ours, official, HF port, MultiMolecule)."""
        return _checkpoint.read_pretrained(path, model_cls=cls, **kwargs).model


def from_pretrained(path: str | Path, *, map_location: str | torch.device = "cpu",
                    **config_overrides) -> HyenaDNAForCausalLM:
    """Load a HyenaDNA checkpoint of any supported layout, in official token ids, eval mode.

    A task-head checkpoint (hyena.heads, MultiMolecule `...ForSequencePrediction`) loads as its
    backbone with the tied LM head; its task head is ignored here (use hyena.heads to keep it).
    See hyena.checkpoint.read_pretrained for the layouts and `config_overrides`.
    """
    return HyenaDNAForCausalLM.from_pretrained(path, map_location=map_location, **config_overrides)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups following the HyenaDNA recipe.

    Weight decay applies to matrices (projections, MLP, embedding, short conv); it is 0 for the
    implicit-filter MLP (weights, biases and sine frequencies: the official code tags them with
    weight_decay 0), for every bias (the long-conv skip B included) and for LayerNorm parameters
    (the official optimizer hooks' bias/normalization defaults).
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():  # dedups the tied head and shared frequency
        if not param.requires_grad:
            continue
        if ".implicit_filter." in name or name.endswith("bias") or ".norm" in name or "ln_f" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
