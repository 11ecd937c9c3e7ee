"""Task heads on the HyenaDNA backbone: sequence- and token-level classification and regression.

HyenaDNA (Nguyen et al. 2023, sec. 4.2-4.4) fine-tunes the pretrained backbone with a linear
head, on a pooled sequence representation (GenomicBenchmarks, Nucleotide Transformer tasks,
species classification) or on every token (per-base tasks). The shape is Hugging Face's:
`HeadConfig` -> the backbone (`HyenaDNAModel`, attribute `backbone`) -> `HyenaDNAFor...Prediction`,
with the loss computed when labels are given.

Padding is on the RIGHT with [PAD]. The model is causal, so the hidden state at a real position
never sees the padding after it: a mixed-length batch gives each sequence the outputs it gets
alone (up to FFT rounding). Pooling keeps that property:

- `last` (default): the hidden state of the last real token, the only one that has read the
  whole sequence in a causal model (the choice of the HyenaDNA fine-tuning code);
- `mean`: the average over real tokens;
- `first`: position 0, only for MultiMolecule checkpoints, whose pooler reads the first token.

Token features before pooling (`HeadConfig.token_mlp`, sequence heads): a linear head on the
mean of the states is a linear function of the mean state, d_model numbers per read. A k-mer
profile, the classic composition feature (4^k counts), is the mean over positions of a sparse,
nonlinear function of the last k bases. With `token_mlp: W`, every position's state first goes
through dense (d_model -> W) + ReLU and the pooling averages those W features: a learned, soft
k-mer profile of width W read from the backbone's context (DeepSets' phi-then-pool, Zaheer et
al. 2017). The layer starts as random features (weights N(0, 1/d_model), biases N(0, 1): Rahimi
& Recht 2007), so a linear probe fitted on the frozen model already reads them; fine-tuning
then trains it with everything else.

Strands (`HeadConfig.strands`): a causal model's state at base t has read the bases before t
only, which is all a next-base predictor needs and half of what a per-base label needs (a gene's
start codon lies downstream of the bases before it). `both` reads every sequence twice, as given
and reverse-complemented (one backbone call on the stacked batch), and gives the head the two
reads' states side by side (width 2 x d_model): per base, the forward state at t and the
reverse read's state at the same base, which has read everything after t, so each base is
predicted from the whole sequence; a sequence head pools each read in its own coordinates. The
halves stay in order (forward, reverse), so a strand-specific label (CDS+ vs CDS-) remains
readable: on the reverse complement of x the head sees the same two states swapped. The same
weights read both strands, as in HyenaDNA's reverse-complement augmentation (Nguyen et al.
2023, sec. 4.1), at twice the compute; MultiMolecule's heads read one strand, so such a head does
not export there.

Checkpoints: our format (config.json with `architecture` and `head`, one model.safetensors) and
MultiMolecule's `HyenaDnaForSequencePrediction` / `HyenaDnaForTokenPrediction` (import and
export, token rows permuted as for the language model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from hyena.checkpoint import HEAD_PREFIXES, CheckpointError, Pretrained, read_pretrained, save_pretrained
from hyena.config import ConfigValueError, HyenaConfig
from hyena.model import HyenaDNAForCausalLM, HyenaDNAModel
from hyena.tokenizer import COMPLEMENT, PAD

ProblemType = Literal["single_label_classification", "multi_label_classification", "regression"]
Pooling = Literal["last", "mean", "first"]
Strands = Literal["forward", "both"]
Transform = Literal["identity", "linear", "nonlinear"]
Activation = Literal["gelu", "gelu_tanh", "relu", "tanh", "silu"]
IGNORE_INDEX = -100  # class label of positions that take no part in the loss (token tasks)

_ACTIVATIONS = {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU,
                "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass(frozen=True)
class HeadConfig:
    """What a task head predicts and how. `label_names` name the classes or targets, in order."""

    num_labels: int
    problem_type: ProblemType = "single_label_classification"
    label_names: tuple[str, ...] = ()
    pooling: Pooling = "last"  # sequence heads only
    strands: Strands = "forward"  # both: the head reads the sequence and its reverse complement
    pooler: bool = False  # MultiMolecule's pooler: tanh(dense(pooled)) before the head
    transform: Transform = "identity"  # MultiMolecule's head transform before the decoder
    transform_act: Activation = "gelu"
    transform_layer_norm_eps: float = 1e-12
    dropout: float = 0.0
    bias: bool = True
    standardize: bool = False  # (x - mean) / scale on the head's input, both fixed buffers (set by a probe)
    token_mlp: int = 0  # sequence heads: width of a dense + ReLU layer on every state before pooling (0: none)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 1:
            raise ConfigValueError(f"HeadConfig.num_labels must be a positive integer, got {self.num_labels!r}")
        if self.problem_type == "single_label_classification" and self.num_labels < 2:
            raise ConfigValueError("HeadConfig: single-label classification needs num_labels >= 2 "
                                   "(use multi_label_classification for one binary label)")
        for name, kind in (("problem_type", ProblemType), ("pooling", Pooling), ("strands", Strands),
                           ("transform", Transform), ("transform_act", Activation)):
            if getattr(self, name) not in get_args(kind):
                raise ConfigValueError(f"HeadConfig.{name} must be one of {', '.join(get_args(kind))}, "
                                       f"got {getattr(self, name)!r}")
        if self.label_names and len(self.label_names) != self.num_labels:
            raise ConfigValueError(f"HeadConfig: {len(self.label_names)} label_names for num_labels={self.num_labels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigValueError(f"HeadConfig.dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.token_mlp, bool) or not isinstance(self.token_mlp, int) or self.token_mlp < 0:
            raise ConfigValueError(f"HeadConfig.token_mlp must be a width >= 0 (0: none), got {self.token_mlp!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HeadConfig":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigValueError(f"unknown HeadConfig field(s) {', '.join(unknown)}; valid fields: {', '.join(names)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["label_names"] = list(self.label_names)
        return out


@dataclass
class PredictionOutput:
    logits: torch.Tensor  # (B, num_labels) sequence heads, (B, L, num_labels) token heads
    loss: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None  # (B, L, D) final backbone states, when asked


class _HeadTransform(nn.Module):
    """dense -> [activation] -> LayerNorm (MultiMolecule's `linear` / `nonlinear` transforms)."""

    def __init__(self, d_model: int, head: HeadConfig):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.activation = _ACTIVATIONS[head.transform_act]() if head.transform == "nonlinear" else nn.Identity()
        self.layer_norm = nn.LayerNorm(d_model, eps=head.transform_layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.activation(self.dense(x)))


class FeatureScaler(nn.Module):
    """(x - mean) / scale with fixed per-feature buffers (identity until set).

    A linear head on raw pooled states learns slowly: the features are strongly correlated and
    far from unit scale. Fitting the head on the frozen backbone's standardised features first
    and fine-tuning from there (LP-FT: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
    Features and Underperform Out-of-Distribution") needs the standardisation kept in the model:
    the buffers hold the training set's feature statistics and are saved with the head."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.scale.to(x.dtype)


class PredictionHead(nn.Module):
    """[scaler] -> dropout -> transform -> decoder (D -> num_labels)."""

    def __init__(self, d_model: int, head: HeadConfig):
        super().__init__()
        self.scaler = FeatureScaler(d_model) if head.standardize else nn.Identity()
        self.dropout = nn.Dropout(head.dropout)
        self.transform = nn.Identity() if head.transform == "identity" else _HeadTransform(d_model, head)
        self.decoder = nn.Linear(d_model, head.num_labels, bias=head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(self.dropout(self.scaler(x))))


class TokenMLP(nn.Module):
    """dense (d_model -> width) + ReLU on every position's state, before pooling (see the module
    docstring). Initialised as random features, not HyenaDNA's N(0, 0.02) with zero biases: with
    zero biases every unit would split the states through the origin, and a random spread of
    thresholds is what makes the pooled units read like counts of distinct contexts."""

    def __init__(self, d_model: int, width: int):
        super().__init__()
        self.dense = nn.Linear(d_model, width)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.dense.weight, std=self.dense.in_features ** -0.5)
        nn.init.normal_(self.dense.bias, std=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.dense(x))


class _Pooler(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x))


class _HeadModel(nn.Module):
    """What both task models share: backbone, head, checkpoints, freezing."""

    task: str = ""
    _mm_architecture: str = ""
    _mm_prefix: str = ""

    def __init__(self, cfg: HyenaConfig, head: HeadConfig):
        super().__init__()
        self.config = cfg
        self.head_config = head
        self.backbone = HyenaDNAModel(cfg)
        self.token_mlp = TokenMLP(cfg.d_model, head.token_mlp) if head.token_mlp else None
        read_width = head.token_mlp or cfg.d_model
        width = read_width * (2 if head.strands == "both" else 1)  # the two reads side by side
        self.pooler = _Pooler(width) if head.pooler else None
        self.head = PredictionHead(width, head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """HyenaDNA's initialisation (N(0, 0.02), zero biases, scaled residual projections) for
        all, then the token MLP's random features."""
        HyenaDNAForCausalLM.reset_parameters(self)
        if self.token_mlp is not None:
            self.token_mlp.reset_parameters()

    def freeze_backbone(self, frozen: bool = True) -> "_HeadModel":
        """Train the head only (linear probing) or, with frozen=False, everything again."""
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)
        return self

    def set_activation_checkpointing(self, enabled: bool = True) -> "_HeadModel":
        self.backbone.activation_checkpointing = enabled
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _reads(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        """The backbone's states (B, L, D) of each read, each in its own coordinates: [forward],
        or [forward, reverse complement] for a both-strands head; the real-token mask; and the
        `reverse_index` between the two reads (None for a forward head)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
        mask = input_ids.ne(PAD) if attention_mask is None else attention_mask.to(torch.bool)
        check_right_padding(mask)
        if self.head_config.strands == "forward":
            return [self.backbone(input_ids)], mask, None
        rc, index = reverse_complement_batch(input_ids, mask)
        return list(self.backbone(torch.cat([input_ids, rc])).chunk(2)), mask, index

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_pretrained(self, directory, extra_config={
            "architecture": type(self).__name__, "head": self.head_config.to_dict()})

    @classmethod
    def from_pretrained(cls, path: str | Path, head: HeadConfig | None = None, *,
                        map_location: str | torch.device = "cpu", **config_overrides: Any) -> "_HeadModel":
        """A task model from any checkpoint `hyena.from_pretrained` reads.

        The backbone weights are always taken. The head is loaded when the checkpoint holds one
        of this task (ours or MultiMolecule's) and `head` is None or equal to it; otherwise a new
        head is initialised from `head` (required then).
        """
        pre = read_pretrained(path, model_cls=HyenaDNAForCausalLM, map_location="cpu", **config_overrides)
        stored = stored_head(pre)
        if stored is not None and stored[0] != cls.task:
            stored = None  # a head of the other task: keep the backbone, start a new head
        if head is None and stored is None:
            raise CheckpointError(f"{path}: the checkpoint has no {cls.task}-prediction head; "
                                  "pass head=HeadConfig(num_labels=..., problem_type=...) to start one")
        model = cls(pre.model.config, head or stored[1])
        model.backbone.load_state_dict(pre.model.backbone.state_dict())
        if stored is not None and (head is None or head == stored[1]):
            _load_head_state(model, pre)
        return model.to(map_location).eval()

    def multimolecule_head(self) -> tuple[str, str, dict[str, Any]]:
        """(architecture, tensor prefix, config keys) for hyena.export_multimolecule."""
        h = self.head_config
        if h.standardize:
            raise CheckpointError(
                "this head standardises its input (HeadConfig.standardize, set by a linear probe); MultiMolecule's "
                "heads have no such step. Export the backbone with hyena.export_multimolecule(hyena.from_pretrained(DIR), "
                "OUT) instead")
        if h.strands != "forward":
            raise CheckpointError(
                "this head reads both strands (HeadConfig.strands='both'); MultiMolecule's heads read one. "
                "Export the backbone with hyena.export_multimolecule(hyena.from_pretrained(DIR), OUT) instead")
        mm_type = {"single_label_classification": "multiclass", "regression": "regression",
                   "multi_label_classification": "binary" if h.num_labels == 1 else "multilabel"}[h.problem_type]
        head = {"num_labels": h.num_labels, "problem_type": mm_type, "dropout": h.dropout, "bias": h.bias,
                "transform": None if h.transform == "identity" else h.transform,
                "transform_act": h.transform_act, "layer_norm_eps": h.transform_layer_norm_eps}
        labels = h.label_names or tuple(f"LABEL_{i}" for i in range(h.num_labels))
        return self._mm_architecture, self._mm_prefix, {
            "num_labels": h.num_labels, "problem_type": mm_type, "head": head,
            "id2label": {str(i): n for i, n in enumerate(labels)}, "label2id": {n: i for i, n in enumerate(labels)}}


class HyenaDNAForSequencePrediction(_HeadModel):
    """One prediction per sequence: logits (B, num_labels) from the pooled hidden state."""

    task = "sequence"
    _mm_architecture = "HyenaDnaForSequencePrediction"
    _mm_prefix = "sequence_head."

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, *, class_weights: torch.Tensor | None = None,
                return_hidden_states: bool = False) -> PredictionOutput:
        """`attention_mask` (B, L) marks real tokens (default: input_ids != [PAD]); padding must
        be on the right. `labels`: (B,) class ids, (B, C) 0/1 for multi-label, (B,) or (B, C)
        targets for regression. `class_weights` (C,) weight the classification loss."""
        pooled, forward_states = self.pooled_features(input_ids, attention_mask)
        logits = self.head(pooled)
        loss = None if labels is None else prediction_loss(logits, labels, None, self.head_config, class_weights)
        return PredictionOutput(logits, loss, forward_states if return_hidden_states else None)

    def pooled_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """What the head reads, (B, D) or (B, 2D) for a both-strands head (D: token_mlp's width
        when set; after the pooler, if any), and the forward read's backbone states (B, L, D)."""
        reads, mask, _ = self._reads(input_ids, attention_mask)
        per_read = reads if self.token_mlp is None else [self.token_mlp(h) for h in reads]
        pooled = torch.cat([pool(h, mask, self.head_config.pooling) for h in per_read], dim=-1)
        if self.pooler is not None:
            pooled = self.pooler(pooled)
        return pooled, reads[0]

    def multimolecule_head(self) -> tuple[str, str, dict[str, Any]]:
        if self.token_mlp is not None:
            raise CheckpointError(
                "MultiMolecule's HyenaDnaForSequencePrediction has no layer before its pooling; this model "
                f"has a token MLP (width {self.head_config.token_mlp}). Export the backbone with "
                "hyena.export_multimolecule(hyena.from_pretrained(DIR), OUT) instead")
        if self.head_config.pooling != "first" or self.pooler is None:
            raise CheckpointError(
                "MultiMolecule's HyenaDnaForSequencePrediction pools the FIRST token through a dense+tanh "
                f"pooler; this model pools {self.head_config.pooling!r}"
                f"{' with' if self.pooler is not None else ' without'} a pooler, which it cannot represent. "
                "Export the backbone with hyena.export_multimolecule(hyena.from_pretrained(DIR), OUT) instead")
        return super().multimolecule_head()


class HyenaDNAForTokenPrediction(_HeadModel):
    """One prediction per token (per base): logits (B, L, num_labels)."""

    task = "token"
    _mm_architecture = "HyenaDnaForTokenPrediction"
    _mm_prefix = "token_head."

    def __init__(self, cfg: HyenaConfig, head: HeadConfig):
        if head.pooler or head.token_mlp:
            raise ConfigValueError("HeadConfig.pooler and token_mlp apply to sequence heads only")
        super().__init__(cfg, head)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, *, class_weights: torch.Tensor | None = None,
                return_hidden_states: bool = False) -> PredictionOutput:
        """`labels`: (B, L) class ids with IGNORE_INDEX (-100) for unlabelled positions, or
        (B, L, C) / (B, L) floats (NaN = unlabelled) for multi-label and regression. Padding
        positions never count. `hidden_states`: the forward read's backbone states."""
        features, mask, forward_states = self.token_features(input_ids, attention_mask)
        logits = self.head(features)  # (B, L, C)
        loss = None if labels is None else prediction_loss(logits, labels, mask, self.head_config, class_weights)
        return PredictionOutput(logits, loss, forward_states if return_hidden_states else None)

    def token_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """What the head reads at each base, (B, L, D) or (B, L, 2D) for a both-strands head (the
        reverse read's states put back at their bases); the real-token mask; the forward states."""
        reads, mask, index = self._reads(input_ids, attention_mask)
        if index is None:
            return reads[0], mask, reads[0]
        back = reads[1].gather(1, index.unsqueeze(-1).expand_as(reads[1]))  # the index is its own inverse
        return torch.cat([reads[0], back], dim=-1), mask, reads[0]


TASK_MODELS: dict[str, type[_HeadModel]] = {
    "sequence": HyenaDNAForSequencePrediction, "token": HyenaDNAForTokenPrediction,
}


def from_pretrained(path: str | Path, *, map_location: str | torch.device = "cpu", **config_overrides: Any) -> _HeadModel:
    """Load a task model whose checkpoint holds its head (ours or MultiMolecule's), eval mode."""
    model = from_pretrained_any(path, map_location=map_location, **config_overrides)
    if not isinstance(model, _HeadModel):
        raise CheckpointError(f"{path}: not a task-head checkpoint (no sequence or token prediction head); "
                              "build one with HyenaDNAForSequencePrediction.from_pretrained(path, head=HeadConfig(...))")
    return model


def from_pretrained_any(path: str | Path, *, map_location: str | torch.device = "cpu",
                        **config_overrides: Any) -> nn.Module:
    """The task model when the checkpoint holds a head, else the language model (eval mode)."""
    pre = read_pretrained(path, model_cls=HyenaDNAForCausalLM, map_location="cpu", **config_overrides)
    stored = stored_head(pre)
    if stored is None:
        return pre.model.to(map_location).eval()
    model = TASK_MODELS[stored[0]](pre.model.config, stored[1])
    model.backbone.load_state_dict(pre.model.backbone.state_dict())
    _load_head_state(model, pre)
    return model.to(map_location).eval()


# --------------------------------------------------------------------------------------------
# Pure functions: padding check, pooling, loss, probabilities


def check_right_padding(mask: torch.Tensor) -> None:
    """Every row must be real tokens then padding, with at least one real token."""
    if mask.dim() != 2:
        raise ValueError(f"attention_mask must have shape (batch, length), got {tuple(mask.shape)}")
    if mask.shape[1] and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("attention_mask: padding must be on the right (a real token follows padding); "
                         "tokenize with hyena.Tokenizer(padding_side='right')")
    if mask.shape[1] == 0 or not bool(mask[:, 0].all()):
        raise ValueError("attention_mask: every sequence needs at least one real token")


_COMPLEMENT = torch.from_numpy(COMPLEMENT.astype("int64"))  # the tokenizer's table, as an index tensor


def reverse_index(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) index that reverses each row's real tokens in place and keeps its padding: position
    t < n goes to n - 1 - t. It is its own inverse."""
    n = mask.sum(dim=1, keepdim=True)
    t = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return torch.where(t < n, n - 1 - t, t)


def reverse_complement_batch(input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids -> the reverse complement of each row's real tokens, still
    right-padded, and the `reverse_index` that maps positions between the two."""
    index = reverse_index(mask)
    flipped = _COMPLEMENT.to(input_ids.device)[input_ids.gather(1, index)]
    return torch.where(mask, flipped, input_ids), index


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, L, D), right-padded mask (B, L) -> (B, D)."""
    if how == "last":
        last = mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if how == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1)
    if how == "first":
        return hidden[:, 0]
    raise ValueError(f"unknown pooling {how!r}; valid: {', '.join(get_args(Pooling))}")


def prediction_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None,
                    head: HeadConfig, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (single label), BCE with logits (multi-label), MSE (regression).

    `mask` (B, L) selects real tokens for token heads (None for sequence heads); class labels
    equal to IGNORE_INDEX and NaN float labels are skipped as well."""
    logits = logits.float()
    C = head.num_labels
    if head.problem_type == "single_label_classification":
        labels = labels.long()
        if mask is not None:
            labels = labels.masked_fill(~mask, IGNORE_INDEX)
        weight = None if class_weights is None else class_weights.to(logits.device, torch.float32)
        return F.cross_entropy(logits.reshape(-1, C), labels.reshape(-1), weight=weight, ignore_index=IGNORE_INDEX)
    labels = labels.to(logits.dtype)
    if labels.dim() == logits.dim() - 1 and C == 1:
        labels = labels.unsqueeze(-1)
    if labels.shape != logits.shape:
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}")
    keep = ~torch.isnan(labels)
    if mask is not None:
        keep &= mask.unsqueeze(-1)
    target = torch.where(keep, labels, torch.zeros_like(labels))
    if head.problem_type == "multi_label_classification":
        pos_weight = None if class_weights is None else class_weights.to(logits.device, torch.float32)
        per = F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=pos_weight)
    else:
        per = (logits - target) ** 2
    return (per * keep).sum() / keep.sum().clamp(min=1)


def probabilities(logits: torch.Tensor, problem_type: str) -> torch.Tensor:
    """Class probabilities (softmax / sigmoid) or, for regression, the predictions themselves."""
    if problem_type == "single_label_classification":
        return torch.softmax(logits.float(), dim=-1)
    if problem_type == "multi_label_classification":
        return torch.sigmoid(logits.float())
    return logits.float()


# --------------------------------------------------------------------------------------------
# Stored heads: ours and MultiMolecule's

_OUR_ARCHITECTURES = {"HyenaDNAForSequencePrediction": "sequence", "HyenaDNAForTokenPrediction": "token"}
_MM_ARCHITECTURES = {"HyenaDnaForSequencePrediction": "sequence", "HyenaDnaForTokenPrediction": "token"}
_MM_PROBLEM_TYPES = {"multiclass": "single_label_classification", "multilabel": "multi_label_classification",
                     "binary": "multi_label_classification", "regression": "regression"}


def stored_head(pre: Pretrained) -> tuple[str, HeadConfig] | None:
    """(task, HeadConfig) of the head a checkpoint holds, or None for a language model."""
    raw = pre.raw_config
    if pre.layout == "ours" and raw.get("architecture") in _OUR_ARCHITECTURES:
        try:
            return _OUR_ARCHITECTURES[raw["architecture"]], HeadConfig.from_dict(raw.get("head") or {})
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"{pre.source}: config.json 'head': {err}") from None
    architectures = raw.get("architectures") or []
    task = next((_MM_ARCHITECTURES[a] for a in architectures if a in _MM_ARCHITECTURES), None)
    if pre.layout != "multimolecule" or task is None:
        return None
    return task, _multimolecule_head_config(pre, task)


def _multimolecule_head_config(pre: Pretrained, task: str) -> HeadConfig:
    raw = pre.raw_config
    head = raw.get("head") or {}
    decoder = pre.head_state.get("head.decoder.weight")
    if decoder is None:
        raise CheckpointError(f"{pre.source}: a MultiMolecule {task}-prediction checkpoint without "
                              f"{task}_head.decoder.weight")
    num_labels = int(decoder.shape[0])
    mm_type = head.get("problem_type") or raw.get("problem_type")
    if mm_type is None:  # Hugging Face's rule when the config leaves it open
        mm_type = "regression" if num_labels == 1 else "multiclass"
    if mm_type not in _MM_PROBLEM_TYPES:
        raise CheckpointError(f"{pre.source}: unknown MultiMolecule problem_type {mm_type!r}")
    if head.get("act") is not None:
        raise CheckpointError(f"{pre.source}: head activation {head['act']!r} on the logits is not supported")
    id2label = raw.get("id2label") or {}
    names = tuple(id2label.get(str(i), "") for i in range(num_labels)) if len(id2label) == num_labels else ()
    try:
        return HeadConfig(
            num_labels=num_labels, problem_type=_MM_PROBLEM_TYPES[mm_type], label_names=names,
            pooling="first" if task == "sequence" else "last", pooler=task == "sequence",
            transform=head.get("transform") or "identity", transform_act=head.get("transform_act") or "gelu",
            transform_layer_norm_eps=float(head.get("layer_norm_eps", 1e-12)),
            dropout=float(head.get("dropout", 0.0)), bias="head.decoder.bias" in pre.head_state)
    except ConfigValueError as err:
        raise CheckpointError(f"{pre.source}: {err}") from None


def _load_head_state(model: _HeadModel, pre: Pretrained) -> None:
    expected = {k for k in model.state_dict() if k.startswith(HEAD_PREFIXES)}
    state = pre.head_state
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{pre.source}: head tensors: missing {missing or 'none'}; unexpected {unexpected or 'none'}")
    current = model.state_dict()
    bad = [k for k in expected if tuple(state[k].shape) != tuple(current[k].shape)]
    if bad:
        raise CheckpointError(f"{pre.source}: head tensor shape mismatch: {', '.join(sorted(bad))}")
    model.load_state_dict({**current, **{k: v.float() for k, v in state.items()}}, strict=True)
