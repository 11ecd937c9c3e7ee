"""Checkpoint import and export: our format, official HyenaDNA (Lightning and Hugging Face port)
and MultiMolecule, all loaded into official token ids.

Our format is a directory with `config.json` (HyenaConfig fields) and `model.safetensors`
(tensors under our, i.e. the official backbone's, names; the tied head and shared sine frequency
stored once). Every loader funnels into one strict step: rename keys to ours, check the fixed
buffers, then demand exactly our key set and shapes, naming the file and offending keys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from hyena.config import HyenaConfig
from hyena.operator import ExponentialModulation, PositionalEmbedding

FORMAT_NAME = "hyena-platform"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# MultiMolecule's DnaTokenizer order, as official ids: MM row i holds official row MM_TO_OFFICIAL[i].
# Official [BOS] (2) has no MultiMolecule token; it travels in MM's unused row 11 so that
# export -> import is lossless.
MM_TO_OFFICIAL = [4, 0, 1, 6, 3, 5, 7, 8, 9, 10, 11, 2, 12, 13, 14, 15]
OFFICIAL_TO_MM = [MM_TO_OFFICIAL.index(i) for i in range(16)]
# State-dict prefixes of a task head (hyena.heads); the language-model loader sets them aside.
HEAD_PREFIXES = ("head.", "pooler.", "token_mlp.")


class CheckpointError(ValueError):
    """A checkpoint cannot be read: unknown layout, missing/unexpected keys or wrong shapes."""


# --------------------------------------------------------------------------------------------
# Our format


def save_pretrained(model: torch.nn.Module, directory: str | Path, *, extra_config: dict | None = None) -> Path:
    """Write `directory` atomically: a reader never sees a half-written checkpoint.

    `extra_config` adds keys to config.json (hyena.heads stores `architecture` and `head`).
    """
    config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "model_type": "hyenadna",
              **model.config.to_dict(), **(extra_config or {})}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in _canonical_state_dict(model).items()}
    return _write_directory(directory, config, tensors, {"format": FORMAT_NAME})


def _write_directory(directory: str | Path, config: dict, tensors: dict[str, torch.Tensor],
                     metadata: dict[str, str], extra_files: dict[str, str] | None = None) -> Path:
    """config.json + model.safetensors (+ `extra_files`, name -> text) written under a temporary
    name, then renamed into place."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata=metadata)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _canonical_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without the tied head and, when shared, without the duplicate frequencies."""
    state = dict(model.state_dict())
    state.pop("lm_head.weight", None)
    if not model.config.separate_sine_freqs:
        for key in [k for k in state if re.search(r"\.implicit_filter\.[35]\.freq$", k)]:
            del state[key]
    return state


# --------------------------------------------------------------------------------------------
# Loading


@dataclass
class Pretrained:
    """A checkpoint as read: the language model, the tensors of a task head and the raw config."""

    model: Any  # the model_cls instance (HyenaDNAForCausalLM)
    head_state: dict[str, torch.Tensor]  # keys under HEAD_PREFIXES (task-head models)
    raw_config: dict
    layout: str  # ours, lightning, hf or multimolecule
    source: str  # the weights file, for error messages


def read_pretrained(path: str | Path, *, model_cls: type[torch.nn.Module], map_location: str | torch.device = "cpu",
                    **config_overrides: Any) -> Pretrained:
    """Load a HyenaDNA checkpoint of any supported layout as `model_cls`, in official token ids,
    eval mode, with a task head's tensors beside it (hyena.heads builds on them).

    `model_cls` is HyenaDNAForCausalLM, passed in so that this module does not import hyena.model
    (``hyena.from_pretrained`` and ``HyenaDNAForCausalLM.from_pretrained`` call this).
    A task-head checkpoint (hyena.heads, MultiMolecule `...ForSequencePrediction`) loads as its
    backbone with the tied LM head. `path` is a directory (ours, official Lightning `weights.ckpt`
    + `config.json`, official HF port, MultiMolecule) or a Lightning `.ckpt` file next to its
    `config.json`. `config_overrides` change HyenaConfig fields that do not alter shapes, e.g.
    `modulation_shift=0.0` (official training code) or `separate_sine_freqs=True`.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    directory = path if path.is_dir() else path.parent
    config_path = directory / CONFIG_FILE
    raw = _read_json(config_path) if config_path.is_file() else None
    layout = detect_layout(path, raw)
    cfg, state, source = _READERS[layout](path, raw)
    head_state = {k: state.pop(k) for k in [k for k in state if k.startswith(HEAD_PREFIXES)]}
    model = _build(model_cls, cfg, state, source, config_overrides, map_location)
    return Pretrained(model, head_state, raw or {}, layout, source)


def detect_layout(path: Path, raw_config: dict | None) -> str:
    """Name the checkpoint layout at `path`: ours, lightning, hf or multimolecule."""
    directory = path if path.is_dir() else path.parent
    if path.is_file() and path.suffix == ".ckpt" or (directory / "weights.ckpt").is_file() and path.is_dir():
        if raw_config is None:
            raise CheckpointError(f"{directory}: a Lightning checkpoint needs its config.json beside it")
        return "lightning"
    if raw_config is None:
        raise CheckpointError(
            f"{directory}: no {CONFIG_FILE}; expected a HyenaDNA checkpoint directory (ours, official "
            "weights.ckpt + config.json, the official Hugging Face port, or MultiMolecule)"
        )
    if raw_config.get("format") == FORMAT_NAME:
        return "ours"
    if "hidden_size" in raw_config and "num_hidden_layers" in raw_config:
        return "multimolecule"
    if "d_model" in raw_config and "n_layer" in raw_config:
        return "hf"
    raise CheckpointError(
        f"{directory / CONFIG_FILE}: unknown checkpoint layout (no 'format', 'd_model'/'n_layer' or "
        "'hidden_size'/'num_hidden_layers' keys)"
    )


# The official code's defaults for HyenaConfig fields that another layout's config may leave out
# (None: HyenaConfig's own default).
_LAYOUT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 12, "pad_vocab_size_multiple": 8, "order": 2, "filter_order": 64, "emb_dim": 5,
    "short_filter_order": 3, "w": 10.0, "embed_dropout": 0.1, "hyena_dropout": 0.0, "resid_dropout": 0.0,
    "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
}


def _same(*names: str) -> dict[str, str]:
    return {name: name for name in names}


# Where each HyenaConfig field stands in another layout's config ("layer.x": key x of the nested
# `layer` dict); a field not listed is not read from that layout.
_LIGHTNING_KEYS = {
    **_same("d_model", "n_layer", "d_inner", "vocab_size", "pad_vocab_size_multiple", "embed_dropout",
            "resid_dropout", "layer_norm_epsilon"),
    **{name: "layer." + name for name in ("l_max", "order", "filter_order", "emb_dim", "short_filter_order", "w")},
}
_HF_KEYS = {
    **_same("d_model", "n_layer", "d_inner", "vocab_size", "pad_vocab_size_multiple", "filter_order", "emb_dim",
            "short_filter_order", "embed_dropout", "hyena_dropout", "layer_norm_epsilon", "initializer_range"),
    "l_max": "max_seq_len", "order": "hyena_order", "w": "activation_freq",
}
_MULTIMOLECULE_KEYS = {
    **_same("pad_vocab_size_multiple", "filter_order", "short_filter_order", "initializer_range"),
    "d_model": "hidden_size", "n_layer": "num_hidden_layers", "d_inner": "intermediate_size",
    "l_max": "max_position_embeddings", "order": "hyena_order", "emb_dim": "filter_emb_dim", "w": "activation_freq",
    "embed_dropout": "embedding_dropout", "hyena_dropout": "hidden_dropout", "layer_norm_epsilon": "layer_norm_eps",
}


def _mapped_config(raw: dict, keys: dict[str, str], where: Any) -> HyenaConfig:
    """HyenaConfig from another layout's config dict, renamed through `keys` (one of the tables above)."""
    fields = {}
    for field, key in keys.items():
        section = raw
        if key.startswith("layer."):
            section, key = raw.get("layer", {}), key[len("layer."):]
        value = section.get(key, _LAYOUT_DEFAULTS.get(field))
        if value is not None:
            fields[field] = value
    return _config_from(fields, where)


def _read_ours(path: Path, raw: dict) -> tuple[HyenaConfig, dict, str]:
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path / CONFIG_FILE}: format_version {raw['format_version']} is newer than "
                              f"this library's {FORMAT_VERSION}; upgrade hyena-platform")
    fields = {k: v for k, v in raw.items() if k not in ("format", "format_version", "model_type", "architecture", "head")}
    cfg = _config_from(fields, path / CONFIG_FILE)
    weights = path / WEIGHTS_FILE
    return cfg, _load_safetensors(weights), str(weights)


def _read_lightning(path: Path, raw: dict) -> tuple[HyenaConfig, dict, str]:
    ckpt_path = path if path.is_file() else path / "weights.ckpt"
    ckpt = _torch_load(ckpt_path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{ckpt_path}: expected a Lightning checkpoint with a 'state_dict'")
    cfg = _mapped_config(raw, _LIGHTNING_KEYS, path if path.is_dir() else path.parent)
    renamed = {}
    for key, value in state.items():
        if not key.startswith("model."):
            continue  # e.g. torchmetrics or loss buffers saved by Lightning
        key = key[len("model."):]
        # Activation-checkpointed training wraps mixer/mlp in a module called `layer`.
        key = re.sub(r"\.(mixer|mlp)\.layer\.", r".\1.", key)
        renamed[key] = value
    return cfg, renamed, str(ckpt_path)


def _read_hf(path: Path, raw: dict) -> tuple[HyenaConfig, dict, str]:
    _require_released_mlp(raw.get("num_inner_mlps", 2), path / CONFIG_FILE)
    cfg = _mapped_config(raw, _HF_KEYS, path / CONFIG_FILE)
    state, source = _load_weights_file(path)
    renamed = {k[len("hyena."):] if k.startswith("hyena.") else k: v for k, v in state.items()}
    return cfg, renamed, source


def _read_multimolecule(path: Path, raw: dict) -> tuple[HyenaConfig, dict, str]:
    _require_released_mlp(raw.get("num_inner_mlps", 2), path / CONFIG_FILE)
    cfg = _mapped_config(raw, _MULTIMOLECULE_KEYS, path / CONFIG_FILE)
    state, source = _load_weights_file(path)
    renamed = {}
    for key, value in state.items():
        if key.startswith("model.pooler."):
            key = key[len("model."):]  # sequence-prediction pooler: a task-head tensor
        elif key.startswith(("sequence_head.", "token_head.")):
            key = "head." + key.split(".", 1)[1]
        elif key.startswith("model."):
            key = "backbone." + key[len("model."):]
        key = key.replace(".final_layer_norm.", ".ln_f.")
        if key == "backbone.embeddings.word_embeddings.weight" or key == "lm_head.weight":
            value = _permute_rows(value, MM_TO_OFFICIAL, source, key)
        renamed[key] = value
    # MultiMolecule keeps one frequency per activation; its checkpoints may also omit them
    # (train_freq false), in which case every activation uses activation_freq.
    return cfg, renamed, source


_READERS: dict[str, Callable[[Path, dict], tuple[HyenaConfig, dict, str]]] = {
    "ours": _read_ours, "lightning": _read_lightning, "hf": _read_hf, "multimolecule": _read_multimolecule,
}


def _build(model_cls: type[torch.nn.Module], cfg: HyenaConfig, state: dict[str, torch.Tensor], source: str,
           overrides: dict[str, Any], map_location: str | torch.device) -> Any:
    _check_and_drop_fixed_buffers(cfg, state, source)
    state = dict(state)
    head = state.pop("lm_head.weight", None)
    emb_key = "backbone.embeddings.word_embeddings.weight"
    if head is not None and emb_key in state and not torch.equal(head, state[emb_key]):
        raise CheckpointError(f"{source}: lm_head.weight differs from the embedding, but HyenaDNA ties them")

    freqs = _frequency_copies(state)
    differ = any(len(c) > 1 and any(not torch.equal(c[0], x) for x in c[1:]) for c in freqs.values())
    if "separate_sine_freqs" in overrides:
        if differ and not overrides["separate_sine_freqs"]:
            raise CheckpointError(f"{source}: the sine-frequency copies of the implicit filter differ; "
                                  "loading them shared would change the model. Use separate_sine_freqs=True")
    elif differ:
        overrides = {**overrides, "separate_sine_freqs": True}
    unknown = sorted(set(overrides) - set(HyenaConfig.field_names()))
    if unknown:
        raise CheckpointError(f"unknown config override(s) {', '.join(unknown)}; valid: {', '.join(HyenaConfig.field_names())}")
    cfg = cfg.replace(**overrides)
    for prefix, copies in freqs.items():
        if not copies:
            continue
        if cfg.separate_sine_freqs:  # a checkpoint that stores one shared copy fills all three
            for i in (1, 3, 5):
                state.setdefault(f"{prefix}{i}.freq", copies[0])
        else:
            for i in (3, 5):
                state.pop(f"{prefix}{i}.freq", None)
    model = model_cls(cfg)  # buffers are computed from the config
    expected = _canonical_state_dict(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short_list(unexpected)}")
        raise CheckpointError(f"{source}: " + "; ".join(parts))
    bad = [f"{k} {tuple(state[k].shape)} != expected {tuple(expected[k].shape)}"
           for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if bad:
        raise CheckpointError(f"{source}: shape mismatch: {_short_list(bad)}")

    full = dict(state)
    full["lm_head.weight"] = state[emb_key]
    if not cfg.separate_sine_freqs:
        for prefix, copies in freqs.items():
            for i in (3, 5):
                full[f"{prefix}{i}.freq"] = full[f"{prefix}1.freq"]
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in full.items()}, strict=True)
    return model.to(map_location).eval()


def _frequency_copies(state: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Per filter prefix, the stored sine-frequency tensors in activation order."""
    out: dict[str, list[torch.Tensor]] = {}
    for key in sorted(state):
        m = re.match(r"(.*\.implicit_filter\.)([135])\.freq$", key)
        if m:
            out.setdefault(m.group(1), []).append(state[key])
    return out


def _check_and_drop_fixed_buffers(cfg: HyenaConfig, state: dict[str, torch.Tensor], source: str) -> None:
    """Official checkpoints store z, t and deltas; they must equal what the config implies."""
    pos = PositionalEmbedding(cfg.emb_dim, cfg.l_max)
    mod = ExponentialModulation(cfg.d_model * (cfg.order - 1), cfg)
    reference = {"pos_emb.z": pos.z, "pos_emb.t": pos.t, "modulation.deltas": mod.deltas}
    for key in [k for k in state if k.endswith(tuple(reference))]:
        name = next(n for n in reference if key.endswith(n))
        value, ref = state.pop(key).float(), reference[name]
        if value.shape != ref.shape or not torch.allclose(value, ref, atol=1e-4, rtol=1e-4):
            raise CheckpointError(
                f"{source}: {key} does not match the fixed values implied by the config (l_max={cfg.l_max}, "
                f"emb_dim={cfg.emb_dim}); was the model built with a different l_max?"
            )


def _config_from(fields: dict[str, Any], where: Any) -> HyenaConfig:
    try:
        return HyenaConfig.from_dict(fields)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{where}: {err}") from None


def _require_released_mlp(num_inner_mlps: int, where: Path) -> None:
    if num_inner_mlps != 2:
        raise CheckpointError(f"{where}: num_inner_mlps={num_inner_mlps}; only the released filter MLP (2) is supported")


def _permute_rows(value: torch.Tensor, order: list[int], source: str, key: str) -> torch.Tensor:
    if value.shape[0] != len(order):
        raise CheckpointError(f"{source}: {key} has {value.shape[0]} rows, expected {len(order)} (padded vocabulary)")
    out = torch.empty_like(value)
    out[torch.tensor(order)] = value
    return out


def _load_weights_file(directory: Path) -> tuple[dict[str, torch.Tensor], str]:
    st, binary = directory / WEIGHTS_FILE, directory / "pytorch_model.bin"
    if st.is_file():
        return _load_safetensors(st), str(st)
    if binary.is_file():
        state = _torch_load(binary)
        if not isinstance(state, dict):
            raise CheckpointError(f"{binary}: expected a state dict")
        return state, str(binary)
    raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} or pytorch_model.bin")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None


def _torch_load(path: Path) -> Any:
    """Pickles are untrusted: only tensors and plain containers are unpickled."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or others for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: cannot be read as a weights-only pickle ({first}). Objects other than tensors "
            "are refused for safety: re-save just the state_dict from a trusted environment"
        ) from None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _short_list(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------
# Export


def export_multimolecule(model: torch.nn.Module, directory: str | Path) -> Path:
    """Write a MultiMolecule checkpoint (config.json + model.safetensors + DnaTokenizer files) of `model`.

    A HyenaDNAForCausalLM becomes `HyenaDnaForCausalLM`; a hyena.heads model becomes
    `HyenaDnaForSequencePrediction`/`HyenaDnaForTokenPrediction` (it supplies
    `multimolecule_head()`). Embedding rows are permuted to MultiMolecule's token order; the
    frequency is written once per activation, as MultiMolecule stores it. Official [BOS] travels
    in MultiMolecule's unused row 11.
    """
    cfg = model.config
    if cfg.order != 2 or cfg.vocab_size != 12:
        raise CheckpointError("MultiMolecule export supports order-2 models with the official 12-token vocabulary")
    head_export = getattr(model, "multimolecule_head", None)
    architecture, head_prefix, head_config = head_export() if head_export else ("HyenaDnaForCausalLM", "", {})
    tensors = {}
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":
            continue
        if key.startswith("backbone."):
            new = ("model." + key[len("backbone."):]).replace(".ln_f.", ".final_layer_norm.")
        elif key.startswith("pooler."):
            new = "model." + key
        elif key.startswith("head."):
            new = head_prefix + key[len("head."):]
        else:
            new = key
        if key == "backbone.embeddings.word_embeddings.weight":
            value = value[torch.tensor(MM_TO_OFFICIAL)]
        tensors[new] = value.detach().to("cpu").contiguous().clone()
    config = {
        "architectures": [architecture], "model_type": "hyenadna", "vocab_size": 11,
        "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layer, "intermediate_size": cfg.d_inner,
        "embedding_dropout": cfg.embed_dropout, "hidden_dropout": cfg.hyena_dropout,
        "max_position_embeddings": cfg.l_max, "initializer_range": cfg.initializer_range,
        "layer_norm_eps": cfg.layer_norm_epsilon, "hyena_order": cfg.order, "filter_order": cfg.filter_order,
        "short_filter_order": cfg.short_filter_order, "filter_emb_dim": cfg.emb_dim, "num_inner_mlps": 2,
        "activation_freq": cfg.w, "filter_dropout": 0.0, "use_bias": True, "train_freq": True,
        "pad_vocab_size_multiple": cfg.pad_vocab_size_multiple, "tie_word_embeddings": True,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "unk_token_id": 3, "mask_token_id": 4,
        "null_token_id": 5, **head_config,
    }
    if cfg.modulation_shift != 0.05:
        warnings.warn(f"MultiMolecule uses modulation shift 0.05; this model uses {cfg.modulation_shift}, "
                      "so its MultiMolecule outputs will differ", stacklevel=2)
    return _write_directory(directory, config, tensors, {"format": "pt"},
                            extra_files=multimolecule_tokenizer_files(cfg.l_max))


# MultiMolecule's DnaTokenizer "streamline" alphabet, in its id order (MM_TO_OFFICIAL maps it).
MULTIMOLECULE_VOCAB = ("<pad>", "<cls>", "<eos>", "<unk>", "<mask>", "<null>", "A", "C", "G", "T", "N")


def multimolecule_tokenizer_files(l_max: int) -> dict[str, str]:
    """The tokenizer files `AutoTokenizer.from_pretrained` reads after `import multimolecule`
    (what `DnaTokenizer(alphabet="streamline").save_pretrained` writes), so that
    `transformers.pipeline("text-generation", model=directory)` works without other files."""
    specials = {i: token for i, token in enumerate(MULTIMOLECULE_VOCAB) if token.startswith("<")}
    config = {
        "tokenizer_class": "DnaTokenizer", "alphabet": "streamline", "nmers": 1, "codon": False,
        "replace_U_with_T": True, "do_upper_case": True, "clean_up_tokenization_spaces": True,
        "model_max_length": l_max, "pad_token": "<pad>", "cls_token": "<cls>", "bos_token": "<cls>",
        "eos_token": "<eos>", "sep_token": "<eos>", "unk_token": "<unk>", "mask_token": "<mask>",
        "extra_special_tokens": ["<null>"],
        "added_tokens_decoder": {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True} for i, t in specials.items()},
    }
    special_map = {k: config[k] for k in ("pad_token", "cls_token", "bos_token", "eos_token", "sep_token",
                                          "unk_token", "mask_token")}
    return {"tokenizer_config.json": json.dumps(config, indent=2) + "\n",
            "vocab.txt": "\n".join(MULTIMOLECULE_VOCAB) + "\n",
            "special_tokens_map.json": json.dumps(special_map, indent=2) + "\n"}
