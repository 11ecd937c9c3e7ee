#!/usr/bin/env python
"""Generate golden fixtures from MultiMolecule's ``HyenaDnaForCausalLM``.

The fixtures let the test suite prove that our own pure-PyTorch HyenaDNA (``hyena/``) and its
MultiMolecule importer reproduce MultiMolecule's numbers, without multimolecule being installed
when the tests run. Only this generator needs it:

    python3 -m venv /tmp/mm-venv
    /tmp/mm-venv/bin/pip install torch==2.13.0          # CPU build; install it first
    /tmp/mm-venv/bin/pip freeze > /tmp/mm-constraints.txt
    /tmp/mm-venv/bin/pip install -c /tmp/mm-constraints.txt multimolecule numpy safetensors
    /tmp/mm-venv/bin/python scripts/make_multimolecule_golden.py

It writes, under ``tests/assets/multimolecule/`` (see ``NOTES.md`` there for the format):

* ``separate_freqs/``: ``save_pretrained`` output (``config.json``, ``generation_config.json``,
  ``model.safetensors``) of a tiny random model whose three sine-frequency copies per layer
  (``implicit_filter.{1,3,5}.freq``) hold DIFFERENT values, plus ``golden.npz``;
* ``shared_freqs/``: the same for a second model whose three copies are equal (the case of every
  converted official checkpoint).

Every parameter is set by this script from its own numpy generator (nominal init value plus
noise), so the weights do not depend on MultiMolecule's initialisation code. Everything is
float32, eval mode, one CPU thread. ``golden.npz`` is written with fixed zip timestamps, so two
runs with the same package versions produce byte-identical files.

Before writing, the script checks that (1) ``from_pretrained`` on the saved folder reproduces the
weights exactly and the logits to float32 rounding, (2) the logits permuted into official row order equal those of a copy whose
embedding rows are permuted and which is fed official token ids, and (3) an independent float64
re-implementation of the formulas documented in NOTES.md matches MultiMolecule's logits.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import math
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

try:
    from multimolecule import HyenaDnaConfig, HyenaDnaForCausalLM
except ImportError:  # pragma: no cover - only this script needs multimolecule
    sys.exit("multimolecule is not installed: see the module docstring for the venv recipe.")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "assets" / "multimolecule"

# Tiny architecture: every released feature (order 2, 3 sine layers, emb_dim 5, short filter 3)
# with small widths so that model.safetensors stays ~90 KB.
CONFIG = dict(
    vocab_size=11,  # MultiMolecule DnaTokenizer("streamline"); the embedding is padded to 16 rows
    hidden_size=32,
    num_hidden_layers=2,
    intermediate_size=64,
    max_position_embeddings=258,  # = l_max (256 bases + 2 specials)
    filter_order=16,
    filter_emb_dim=5,
    num_inner_mlps=2,
    hyena_order=2,
    short_filter_order=3,
    activation_freq=10,
    train_freq=True,
)
LENGTHS = [1, 7, 64, 200, 258]  # 258 = l_max exactly
BATCH = 2
HIDDEN_STATES_MAX_LEN = 64  # per-layer hidden states are stored only for cases this short

FIXTURES = {
    # name: (weight seed, input seed, three different freq copies?)
    "separate_freqs": (1001, 2001, True),
    "shared_freqs": (1002, 2002, False),
}

# MultiMolecule ids: <pad>=0 <cls>=1 <eos>=2 <unk>=3 <mask>=4 <null>=5 A=6 C=7 G=8 T=9 N=10.
# Official ids:      [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6 A=7 .. N=11.
# MM_ROW_FOR_OFFICIAL[o] = the MultiMolecule embedding/logit row that holds official row o.
# It is the inverse of MultiMolecule's converter (pad<-4, cls<-0, eos<-1, unk<-6, mask<-3,
# null<-5, A..N<-7..11, 12..15 kept). Official [BOS] (2) has no MultiMolecule row; by our
# convention it takes MultiMolecule's spare row 11, which makes the map a bijection of 16 rows.
MM_ROW_FOR_OFFICIAL = np.array([1, 2, 11, 4, 0, 5, 3, 6, 7, 8, 9, 10, 12, 13, 14, 15], dtype=np.int64)
OFFICIAL_ID_FOR_MM = np.argsort(MM_ROW_FOR_OFFICIAL).astype(np.int64)  # inverse permutation
MM_NUCLEOTIDES = np.array([6, 7, 8, 9, 10], dtype=np.int64)  # A C G T N
MM_PAD = 0


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------
def _nominal_and_std(name: str, shape: tuple[int, ...], freq_copy: float | None) -> tuple[float, float]:
    """Nominal (init-like) value and noise std for one parameter, by name.

    Stds are chosen so every sub-module changes the logits by O(1): a bug anywhere shows up far
    above float32 noise, while the filter MLP stays smooth enough to be well conditioned.
    """
    if name.endswith("word_embeddings.weight"):
        # The head is tied to this matrix: std 0.1 keeps |logits| near 2, a trained model's
        # scale, so float32 rounding (~2e-6 relative in both implementations) stays under the
        # tests' 1e-5 absolute tolerance while any bug still moves logits by >1e-4.
        return 0.0, 0.1
    if "norm" in name:  # norm1, norm2, final_layer_norm
        return (1.0, 0.2) if name.endswith("weight") else (0.0, 0.2)
    if name.endswith(".freq"):
        return float(freq_copy), 0.5
    if ".implicit_filter." in name:
        idx = int(name.split(".implicit_filter.")[1].split(".")[0])
        if name.endswith("bias"):
            return 0.0, 0.1
        if idx == 0:
            return 0.0, 0.15  # Linear(emb_dim -> filter_order), then sin(~10 x)
        if idx == 6:
            return 0.0, 0.3  # Linear(filter_order -> D), no bias
        return 0.0, 0.05  # inner Linear(filter_order -> filter_order), then sin(~10 x)
    if name.endswith("filter_fn.bias"):  # the per-channel skip "D" of the long convolution
        return 0.0, 0.5
    if "short_filter" in name:
        return 0.0, 0.5 if name.endswith("weight") else 0.2
    if name.endswith(".bias"):  # in_proj, out_proj, fc1, fc2 biases
        return 0.0, 0.1
    if name.endswith(".weight") and len(shape) == 2:  # in_proj, out_proj, fc1, fc2
        return 0.0, 1.0 / math.sqrt(shape[1])
    raise KeyError(f"no perturbation rule for parameter {name} {shape}")


def set_weights(model: HyenaDnaForCausalLM, seed: int, separate_freqs: bool) -> None:
    """Overwrite every parameter with nominal value + N(0, std) noise from a seeded generator."""
    rng = np.random.default_rng(seed)
    layer_freqs: dict[str, dict[int, np.ndarray]] = {}
    params = dict(model.named_parameters())  # the tied lm_head appears once, as the embedding
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            shape = tuple(p.shape)
            if name.endswith(".freq"):
                layer = name.split(".implicit_filter.")[0]
                idx = int(name.split(".implicit_filter.")[1].split(".")[0])
                if separate_freqs:
                    # distinct base per copy: a model that reuses one copy fails by a wide margin
                    base = {1: 10.0, 3: 6.0, 5: 14.0}[idx]
                    value = base + 0.5 * rng.standard_normal(shape)
                else:
                    # one shared vector (drawn on the first copy), copied to all three
                    store = layer_freqs.setdefault(layer, {})
                    if not store:
                        store[0] = 10.0 + 0.5 * rng.standard_normal(shape)
                    value = store[0]
            else:
                nominal, std = _nominal_and_std(name, shape, None)
                value = nominal + std * rng.standard_normal(shape)
            p.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))
    assert model.lm_head.weight.data_ptr() == model.model.embeddings.word_embeddings.weight.data_ptr()


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def make_cases(seed: int, l_max: int) -> dict[str, dict[str, np.ndarray]]:
    """MultiMolecule input ids (and masks) for every golden case."""
    rng = np.random.default_rng(seed)
    cases: dict[str, dict[str, np.ndarray]] = {}
    for length in LENGTHS:
        assert length <= l_max
        cases[f"L{length}"] = {"mm_input_ids": rng.choice(MM_NUCLEOTIDES, size=(BATCH, length))}
    # Every official token id 0..11 (MultiMolecule ids 0..11, row 11 = official [BOS]), shuffled,
    # inside random DNA: checks the whole embedding/logit row permutation.
    specials = np.concatenate([rng.permutation(12), rng.permutation(12)])
    dna = rng.choice(MM_NUCLEOTIDES, size=(BATCH, 32))
    dna[0, 4:28] = specials
    dna[1, 2:26] = rng.permutation(specials)
    cases["specials"] = {"mm_input_ids": dna}
    # Padding behaviour of MultiMolecule's attention_mask (see NOTES.md): right and left padding.
    length, valid = 40, 25
    for side in ("right", "left"):
        ids = rng.choice(MM_NUCLEOTIDES, size=(BATCH, length))
        mask = np.ones((BATCH, length), dtype=np.int64)
        sl = slice(valid, None) if side == "right" else slice(None, length - valid)
        ids[1, sl] = MM_PAD
        mask[1, sl] = 0
        cases[f"pad_{side}"] = {"mm_input_ids": ids, "attention_mask": mask}
        # the same valid bases, alone (unpadded), to compare against
        unpadded = ids[1, :valid] if side == "right" else ids[1, length - valid :]
        cases[f"pad_{side}_unpadded"] = {"mm_input_ids": unpadded[None, :].copy()}
    for case in cases.values():
        case["mm_input_ids"] = case["mm_input_ids"].astype(np.int64)
    return cases


# --------------------------------------------------------------------------------------------
# Independent float64 cross-check of the documented formulas (not used for the fixtures)
# --------------------------------------------------------------------------------------------
def reference_logits_f64(sd: dict[str, torch.Tensor], cfg: dict, ids: np.ndarray) -> np.ndarray:
    """Re-derive the logits from the state dict with the formulas in NOTES.md, in float64,
    with the long convolution done directly (no FFT). Inputs without padding only."""
    g = {k: v.detach().double() for k, v in sd.items()}
    D, l_max, n_layers = cfg["hidden_size"], cfg["max_position_embeddings"], cfg["num_hidden_layers"]
    L = ids.shape[1]
    n = torch.arange(l_max, dtype=torch.float64)
    t = n / (l_max - 1)
    omega = 2 * math.pi * n / l_max
    z = torch.stack([t, torch.cos(1e-4 * omega), torch.cos(omega), -torch.sin(1e-4 * omega), -torch.sin(omega)], -1)
    deltas = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, D, dtype=torch.float64)
    h = g["model.embeddings.word_embeddings.weight"][torch.from_numpy(ids)]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        f = p + "mixer.filter_fn.implicit_filter."
        # implicit filter, then exponential modulation with shift 0.05
        a = torch.sin(g[f + "1.freq"] * (z @ g[f + "0.weight"].T + g[f + "0.bias"]))
        a = torch.sin(g[f + "3.freq"] * (a @ g[f + "2.weight"].T + g[f + "2.bias"]))
        a = torch.sin(g[f + "5.freq"] * (a @ g[f + "4.weight"].T + g[f + "4.bias"]))
        k = (a @ g[f + "6.weight"].T) * (torch.exp(-t[:, None] * deltas.abs()) + 0.05)  # (l_max, D)
        k = k[:L]
        u = F.layer_norm(h, (D,), g[p + "norm1.weight"], g[p + "norm1.bias"], 1e-5)
        zz = u @ g[p + "mixer.in_proj.weight"].T + g[p + "mixer.in_proj.bias"]  # (B, L, 3D)
        w = g[p + "mixer.short_filter.weight"][:, 0, :]  # (3D, 3)
        zp = F.pad(zz, (0, 0, 2, 0))
        zc = w[:, 0] * zp[:, :-2] + w[:, 1] * zp[:, 1:-1] + w[:, 2] * zp[:, 2:] + g[p + "mixer.short_filter.bias"]
        x0, x1, v = zc[..., :D], zc[..., D : 2 * D], zc[..., 2 * D :]
        v = v * x1
        y = torch.zeros_like(v)
        for s in range(L):  # y[t] = sum_{s<=t} k[s] v[t-s]
            y[:, s:] += k[s] * v[:, : L - s]
        v = y + g[p + "mixer.filter_fn.bias"] * v
        h = h + (v * x0) @ g[p + "mixer.out_proj.weight"].T + g[p + "mixer.out_proj.bias"]
        u = F.layer_norm(h, (D,), g[p + "norm2.weight"], g[p + "norm2.bias"], 1e-5)
        u = F.gelu(u @ g[p + "mlp.fc1.weight"].T + g[p + "mlp.fc1.bias"], approximate="tanh")
        h = h + u @ g[p + "mlp.fc2.weight"].T + g[p + "mlp.fc2.bias"]
    h = F.layer_norm(h, (D,), g["model.final_layer_norm.weight"], g["model.final_layer_norm.bias"], 1e-5)
    return (h @ g["model.embeddings.word_embeddings.weight"].T).numpy()


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps and sorted keys (byte-stable)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            arr = np.asarray(arrays[key])
            if not arr.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
                arr = arr.copy(order="C")
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


@torch.no_grad()
def run_case(model: HyenaDnaForCausalLM, case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ids = torch.from_numpy(case["mm_input_ids"])
    mask = torch.from_numpy(case["attention_mask"]) if "attention_mask" in case else None
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    logits = out.logits.float().numpy()
    hidden = torch.stack(out.hidden_states).numpy()  # (n_layers + 2, B, L, D)
    res = {
        "mm_logits": logits,
        "official_logits": logits[..., MM_ROW_FOR_OFFICIAL],
        "last_hidden_state": hidden[-1],  # after final_layer_norm (what the LM head sees)
    }
    if ids.shape[1] <= HIDDEN_STATES_MAX_LEN:
        res["hidden_states"] = hidden
    return res


def build_fixture(name: str, weight_seed: int, input_seed: int, separate: bool, out_dir: Path) -> dict:
    torch.manual_seed(0)  # MultiMolecule's own init is overwritten, but keep construction stable
    config = HyenaDnaConfig(**CONFIG)
    model = HyenaDnaForCausalLM(config).eval()
    set_weights(model, weight_seed, separate)

    fdir = out_dir / name
    if fdir.exists():
        shutil.rmtree(fdir)
    model.save_pretrained(fdir)
    cases = make_cases(input_seed, CONFIG["max_position_embeddings"])

    arrays: dict[str, np.ndarray] = {}
    for cname, case in cases.items():
        for k, v in case.items():
            arrays[f"{cname}__{k}"] = v
        arrays[f"{cname}__official_input_ids"] = OFFICIAL_ID_FOR_MM[case["mm_input_ids"]]
        for k, v in run_case(model, case).items():
            arrays[f"{cname}__{k}"] = v

    # Filter pieces at full l_max, for unit-testing the implicit filter on its own.
    l_max = CONFIG["max_position_embeddings"]
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            ff = layer.mixer.filter_fn
            arrays[f"filter__layer{i}_k"] = ff.filter(l_max)[0].numpy()  # (l_max, D), modulated
            if i == 0:
                z, t = ff.pos_emb(l_max)
                arrays["filter__pos_emb_z"] = z[0].numpy()  # (l_max, 5)
                arrays["filter__pos_emb_t"] = t[0, :, 0].numpy()  # (l_max,)
                arrays["filter__modulation_deltas"] = ff.modulation.deltas.reshape(-1).numpy()  # (D,)
    arrays["mm_row_for_official"] = MM_ROW_FOR_OFFICIAL
    arrays["official_id_for_mm"] = OFFICIAL_ID_FOR_MM
    arrays["lengths"] = np.array(LENGTHS, dtype=np.int64)
    meta = {
        "fixture": name,
        "separate_freqs": separate,
        "weight_seed": weight_seed,
        "input_seed": input_seed,
        "config": CONFIG,
        "cases": sorted(cases),
        "generator": "scripts/make_multimolecule_golden.py",
        "versions": {
            "multimolecule": importlib.metadata.version("multimolecule"),
            "transformers": importlib.metadata.version("transformers"),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))

    # ---- self-checks -------------------------------------------------------------------
    # (1) the saved folder reloads to the same weights and logits. (Logits agree to float32
    # rounding only: BLAS may take a different code path for differently aligned buffers.)
    reloaded = HyenaDnaForCausalLM.from_pretrained(fdir).eval()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), f"reload changed {key}"
    for cname, case in cases.items():
        again = run_case(reloaded, case)["mm_logits"]
        np.testing.assert_allclose(again, arrays[f"{cname}__mm_logits"], rtol=1e-5, atol=1e-5)
    # (2) official-order logits == a model with permuted embedding rows fed official ids
    perm_model = HyenaDnaForCausalLM(config).eval()
    perm_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        emb = perm_model.model.embeddings.word_embeddings.weight
        emb.copy_(emb[torch.from_numpy(MM_ROW_FOR_OFFICIAL)].clone())
    for cname, case in cases.items():
        off_case = dict(case, mm_input_ids=arrays[f"{cname}__official_input_ids"])
        got = run_case(perm_model, off_case)["mm_logits"]
        np.testing.assert_allclose(got, arrays[f"{cname}__official_logits"], rtol=0, atol=1e-5)
    # (3) independent float64 re-derivation of the documented formulas
    sd = model.state_dict()
    worst = 0.0
    for cname, case in cases.items():
        if "attention_mask" in case:
            continue
        ref = reference_logits_f64(sd, CONFIG, case["mm_input_ids"])
        got = arrays[f"{cname}__mm_logits"]
        err = float(np.max(np.abs(ref - got)) / max(1.0, float(np.max(np.abs(ref)))))
        worst = max(worst, err)
        assert err < 1e-4, f"float64 reference disagrees with MultiMolecule in {cname}: {err}"

    save_npz_deterministic(fdir / "golden.npz", arrays)
    logits_scale = float(np.abs(arrays["L258__mm_logits"]).max())
    return {"name": name, "max_rel_err_vs_f64": worst, "max_abs_logit_L258": logits_scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (wseed, iseed, separate) in FIXTURES.items():
        info = build_fixture(name, wseed, iseed, separate, args.out)
        print(json.dumps(info))


if __name__ == "__main__":
    main()
