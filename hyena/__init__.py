"""hyena: HyenaDNA in pure PyTorch (Nguyen et al. 2023), with its tokenizer and checkpoint I/O.

    >>> import hyena
    >>> model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig.variant("tiny-1k"))
    >>> model = hyena.from_pretrained("path/to/checkpoint")  # ours, official, HF port, MultiMolecule

This package imports only torch, numpy and safetensors: never Ray or MLflow.
"""

from hyena.checkpoint import CheckpointError, export_multimolecule, from_pretrained, save_pretrained
from hyena.config import OFFICIAL_PARAMETER_COUNTS, VARIANTS, ConfigValueError, HyenaConfig
from hyena.model import CausalLMOutput, HyenaDNAForCausalLM, HyenaDNAModel, param_groups
from hyena.operator import HyenaOperator, SequenceTooLongError
from hyena.tokenizer import Tokenizer, TokenizerError

__all__ = [
    "CausalLMOutput", "CheckpointError", "ConfigValueError", "HyenaConfig", "HyenaDNAForCausalLM",
    "HyenaDNAModel", "HyenaOperator", "OFFICIAL_PARAMETER_COUNTS", "SequenceTooLongError", "Tokenizer",
    "TokenizerError", "VARIANTS", "export_multimolecule", "from_pretrained", "param_groups", "save_pretrained",
]
