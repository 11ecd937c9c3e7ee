"""The official standalone HyenaDNA code (HazyResearch/hyena-dna, `standalone_hyenadna.py`) as a
benchmark baseline, loaded from a scratch folder at run time and never stored in this repository.

    model = official_backbone(our_model, path=fetch_official())   # same weights as ours

`fetch_official` downloads the file at a pinned commit into a temporary folder and checks its
SHA-256; on a machine without internet pass a copy with `--official PATH`. The file imports
`torchvision.ops.StochasticDepth` and `transformers`' tokenizer base class at the top, though
the backbone uses neither (drop path 0, no tokenizer); when they are not installed, `load_module`
gives the file two inert stand-ins so the model code itself runs unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
import types
import urllib.request
from pathlib import Path

import torch
from torch import nn

COMMIT = "d553021b483b82980aa4b868b37ec2d4332e198a"
URL = f"https://raw.githubusercontent.com/HazyResearch/hyena-dna/{COMMIT}/standalone_hyenadna.py"
SHA256 = "9121af5eb03ae68ed104d381046418453a8483d4cdbfe94a5ddb016d669a4c53"  # of the file at COMMIT


def fetch_official(path: str | None = None) -> Path:
    """The standalone file: `path` if given, else downloaded into a fresh temporary folder."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise SystemExit(f"--official {path}: no such file; download {URL} and pass its path")
        return p
    target = Path(tempfile.mkdtemp(prefix="hyena-official-")) / "standalone_hyenadna.py"
    try:
        with urllib.request.urlopen(URL, timeout=60) as response:
            data = response.read()
    except OSError as err:
        raise SystemExit(f"cannot download {URL} ({err}); on an offline machine download it "
                         f"elsewhere and pass --official PATH") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{URL}: SHA-256 {digest} is not the pinned file's {SHA256}; pass --official PATH")
    target.write_bytes(data)
    return target


def _stand_ins() -> dict[str, types.ModuleType]:
    """Inert modules for the two imports the backbone never uses (only where not installed)."""
    modules: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("torchvision") is None:
        class StochasticDepth(nn.Module):  # drop path with p = 0, the only value the backbone uses
            def __init__(self, p: float, mode: str):
                super().__init__()
                if p != 0:
                    raise ValueError("stand-in StochasticDepth supports p = 0 only")

            def forward(self, x):
                return x

        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.StochasticDepth = StochasticDepth
        tv.ops = ops
        modules.update({"torchvision": tv, "torchvision.ops": ops})
    try:
        import transformers.tokenization_utils  # noqa: F401
    except ImportError:
        tu = types.ModuleType("transformers.tokenization_utils")
        tu.AddedToken = str
        tu.PreTrainedTokenizer = object
        tr = types.ModuleType("transformers")
        tr.tokenization_utils = tu
        modules.update({"transformers": tr, "transformers.tokenization_utils": tu})
    return modules


def load_module(path: Path) -> types.ModuleType:
    stand_ins = _stand_ins()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        spec = importlib.util.spec_from_file_location("standalone_hyenadna", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def official_backbone(ours, module: types.ModuleType) -> nn.Module:
    """The official HyenaDNAModel (backbone, no head) with our model's weights, in eval mode.

    Its output is the final hidden states, the same as `ours.backbone(ids)`.
    """
    cfg = ours.config
    layer = {"_name_": "hyena", "emb_dim": cfg.emb_dim, "filter_order": cfg.filter_order,
             "short_filter_order": cfg.short_filter_order, "l_max": cfg.l_max, "modulate": cfg.modulate,
             "w": cfg.w, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0, "shift": cfg.modulation_shift}
    with torch.device("cpu"):
        model = module.HyenaDNAModel(d_model=cfg.d_model, n_layer=cfg.n_layer, d_inner=cfg.d_inner,
                                     vocab_size=12, layer=layer, pad_vocab_size_multiple=8,
                                     resid_dropout=0.0, embed_dropout=0.1, use_head=False)
    state = {"backbone." + k: v for k, v in ours.backbone.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    fixed = ("pos_emb.z", "pos_emb.t", "modulation.deltas")  # buffers both compute from the config
    assert not unexpected and all(k.endswith(fixed) for k in missing), (missing, unexpected)
    return model.eval()
