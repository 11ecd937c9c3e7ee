"""HyenaConfig: every hyperparameter of HyenaDNA, validated, and the seven released variants.

HyenaDNA: Nguyen et al., "HyenaDNA: Long-Range Genomic Sequence Modeling at Single Nucleotide
Resolution", NeurIPS 2023. Operator: Poli et al., "Hyena Hierarchy", ICML 2023.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigValueError(ValueError):
    """A HyenaConfig field has an invalid value or an unknown name."""


@dataclass(frozen=True)
class HyenaConfig:
    """HyenaDNA hyperparameters. Defaults are the released models' shared values."""

    d_model: int = 128
    n_layer: int = 2
    d_inner: int | None = None  # None -> 4 * d_model
    vocab_size: int = 12
    pad_vocab_size_multiple: int = 8
    l_max: int = 1026  # maximum input length in tokens (= max_length + 2 special tokens)
    # Hyena operator
    order: int = 2  # N in the paper: N-1 long convolutions and N+1 projections
    filter_order: int = 64  # width of the implicit-filter MLP
    emb_dim: int = 5  # positional features: t and (emb_dim-1)/2 sine/cosine bands
    short_filter_order: int = 3  # depthwise causal short convolution kernel size
    w: float = 10.0  # initial sine frequency of the filter MLP activations
    modulation_shift: float = 0.05  # inference code uses 0.05, official training code 0.0
    modulate: bool = True
    fast_decay_pct: float = 0.3
    slow_decay_pct: float = 1.5
    decay_target: float = 1e-2
    # MultiMolecule keeps one sine frequency per activation (3 per filter); the official model
    # shares one. True keeps three independent tensors so such checkpoints load faithfully.
    separate_sine_freqs: bool = False
    # Dropouts (the released models: embedding 0.1 in training, the rest 0)
    embed_dropout: float = 0.1
    resid_dropout: float = 0.0
    hyena_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if self.d_inner is None:
            object.__setattr__(self, "d_inner", 4 * self.d_model)
        self.validate()

    def validate(self) -> None:
        positive = ("d_model", "n_layer", "d_inner", "vocab_size", "pad_vocab_size_multiple",
                    "l_max", "filter_order", "emb_dim", "short_filter_order")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigValueError(f"HyenaConfig.{name} must be a positive integer, got {value!r}")
        if self.order < 2:
            raise ConfigValueError(f"HyenaConfig.order must be >= 2, got {self.order}")
        if self.emb_dim < 3 or self.emb_dim % 2 == 0:
            raise ConfigValueError(
                f"HyenaConfig.emb_dim must be odd and >= 3 (t plus sine/cosine pairs), got {self.emb_dim}"
            )
        if self.l_max < 2:
            raise ConfigValueError(f"HyenaConfig.l_max must be >= 2, got {self.l_max}")
        for name in ("embed_dropout", "resid_dropout", "hyena_dropout"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ConfigValueError(f"HyenaConfig.{name} must be in [0, 1), got {p}")
        if not (0 < self.decay_target < 1 and self.fast_decay_pct > 0 and self.slow_decay_pct > 0):
            raise ConfigValueError("HyenaConfig decay parameters must be positive, decay_target in (0, 1)")

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return int(math.ceil(self.vocab_size / m) * m)

    @classmethod
    def variant(cls, name: str, **overrides: Any) -> "HyenaConfig":
        """One of the seven released HyenaDNA variants, optionally with field overrides."""
        if name not in VARIANTS:
            raise ConfigValueError(f"unknown HyenaDNA variant {name!r}; released variants: {', '.join(VARIANTS)}")
        return cls(**{**VARIANTS[name], **overrides})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HyenaConfig":
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ConfigValueError(
                f"unknown HyenaConfig field(s) {', '.join(unknown)}; valid fields: {', '.join(cls.field_names())}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "HyenaConfig":
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"model_type": "hyenadna", **self.to_dict()}, indent=2) + "\n")

    def num_parameters(self) -> int:
        """Closed-form parameter count (tied head, shared sine frequency), for order 2 models."""
        D, n = self.d_model, self.n_layer
        per_layer = (
            3 * D * D + 3 * D  # in_proj
            + 3 * D * self.short_filter_order + 3 * D  # depthwise short conv
            + D * D + D  # out_proj
            + self.emb_dim * self.filter_order + self.filter_order  # filter MLP in
            + 2 * (self.filter_order ** 2 + self.filter_order)  # filter MLP hidden
            + self.filter_order * (3 if self.separate_sine_freqs else 1)  # sine frequencies
            + self.filter_order * D * (self.order - 1)  # filter MLP out (no bias)
            + D * (self.order - 1)  # long-conv bias B
            + 4 * D  # two LayerNorms
            + 2 * D * self.d_inner + self.d_inner + D  # MLP
        ) + (self.order - 2) * D * D  # extra projections when order > 2
        return n * per_layer + self.padded_vocab_size * D + 2 * D


_RELEASED = dict(order=2, filter_order=64, emb_dim=5, short_filter_order=3, w=10.0)

VARIANTS: dict[str, dict[str, Any]] = {
    "tiny-1k": dict(d_model=128, n_layer=2, d_inner=512, l_max=1026, **_RELEASED),
    "tiny-1k-d256": dict(d_model=256, n_layer=2, d_inner=1024, l_max=1026, **_RELEASED),
    "tiny-16k-d128": dict(d_model=128, n_layer=2, d_inner=512, l_max=16386, **_RELEASED),
    "small-32k": dict(d_model=256, n_layer=4, d_inner=1024, l_max=32770, **_RELEASED),
    "medium-160k": dict(d_model=256, n_layer=8, d_inner=1024, l_max=160002, **_RELEASED),
    "medium-450k": dict(d_model=256, n_layer=8, d_inner=1024, l_max=450002, **_RELEASED),
    "large-1m": dict(d_model=256, n_layer=8, d_inner=1024, l_max=1000002, **_RELEASED),
}

# Official parameter counts (tied LM head), from the released checkpoints.
OFFICIAL_PARAMETER_COUNTS = {
    "tiny-1k": 436_096,
    "tiny-1k-d256": 1_641_088,
    "tiny-16k-d128": 436_096,
    "small-32k": 3_277_568,
    "medium-160k": 6_550_528,
    "medium-450k": 6_550_528,
    "large-1m": 6_550_528,
}
