"""hyena: HyenaDNA in pure PyTorch (Nguyen et al. 2023), with its tokenizer and checkpoint I/O.

    >>> import hyena
    >>> model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig.variant("tiny-1k"))
    >>> model = hyena.from_pretrained("path/to/checkpoint")  # ours, official, HF port, MultiMolecule
    >>> clf = hyena.HyenaDNAForSequencePrediction.from_pretrained("path", head=hyena.HeadConfig(num_labels=4))
    >>> hyena.embed(model, ["ACGTTGCA"], pooling="mean")       # (1, D) sequence embeddings
    >>> hyena.generate(model, hyena.Tokenizer().encode("ACGT"), 64, seed=0).sequences

This package imports only torch, numpy and safetensors: never Ray or MLflow. Names are loaded on
first use (PEP 562), so `import hyena.tokenizer` in a data worker does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "hyena.checkpoint", "export_multimolecule": "hyena.checkpoint",
    "from_pretrained": "hyena.model", "save_pretrained": "hyena.checkpoint",
    "OFFICIAL_PARAMETER_COUNTS": "hyena.config", "VARIANTS": "hyena.config",
    "ConfigValueError": "hyena.config", "HyenaConfig": "hyena.config",
    "CausalLMOutput": "hyena.model", "HyenaDNAForCausalLM": "hyena.model", "HyenaDNAModel": "hyena.model",
    "param_groups": "hyena.model",
    "HeadConfig": "hyena.heads", "HyenaDNAForSequencePrediction": "hyena.heads",
    "HyenaDNAForTokenPrediction": "hyena.heads", "PredictionOutput": "hyena.heads",
    "autocast_context": "hyena.precision", "resolve_precision": "hyena.precision",
    "EmbeddingError": "hyena.embedding", "embed": "hyena.embedding",
    "CachedDecoder": "hyena.generation", "GenerationError": "hyena.generation",
    "GenerationOutput": "hyena.generation", "generate": "hyena.generation",
    "HyenaOperator": "hyena.operator", "SequenceTooLongError": "hyena.operator",
    "Tokenizer": "hyena.tokenizer", "TokenizerError": "hyena.tokenizer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hyena' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
