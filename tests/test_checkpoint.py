"""Checkpoint formats: our own round trip, the official Lightning and Hugging Face layouts, the
MultiMolecule layout (export and import), and one clear error for every malformed checkpoint."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

import hyena
from hyena import CheckpointError, HyenaConfig, HyenaDNAForCausalLM
from hyena.checkpoint import MM_TO_OFFICIAL


def make_model(seed=0, **overrides) -> HyenaDNAForCausalLM:
    cfg = HyenaConfig(**{**dict(d_model=16, n_layer=2, l_max=66, filter_order=8), **overrides})
    torch.manual_seed(seed)
    m = HyenaDNAForCausalLM(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def logits(model, x):
    with torch.no_grad():
        return model.eval()(x).logits


def official_state_dict(model: HyenaDNAForCausalLM) -> dict:
    """What the official code's state_dict holds: fixed buffers included, head stored too."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for i, layer in enumerate(model.backbone.layers):
        f = layer.mixer.filter_fn
        prefix = f"backbone.layers.{i}.mixer.filter_fn."
        state[prefix + "pos_emb.z"] = f.pos_emb.z.clone()
        state[prefix + "pos_emb.t"] = f.pos_emb.t.clone()
        state[prefix + "modulation.deltas"] = f.modulation.deltas.clone()
    return state


def official_config(cfg: HyenaConfig) -> dict:
    return {
        "d_model": cfg.d_model, "n_layer": cfg.n_layer, "d_inner": cfg.d_inner, "vocab_size": 12,
        "resid_dropout": 0.0, "embed_dropout": 0.1, "layer_norm_epsilon": 1e-5, "pad_vocab_size_multiple": 8,
        "layer": {"_name_": "hyena", "emb_dim": cfg.emb_dim, "filter_order": cfg.filter_order,
                  "local_order": 3, "l_max": cfg.l_max, "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0,
                  "lr_pos_emb": 0.0},
    }


def hf_config(cfg: HyenaConfig) -> dict:
    return {
        "_name_or_path": "LongSafari/hyenadna-test-hf", "model_type": "hyenadna", "architectures": ["HyenaDNAForCausalLM"],
        "d_model": cfg.d_model, "n_layer": cfg.n_layer, "d_inner": cfg.d_inner, "vocab_size": 12,
        "max_seq_len": cfg.l_max, "emb_dim": cfg.emb_dim, "filter_order": cfg.filter_order,
        "short_filter_order": 3, "hyena_order": 2, "activation_freq": 10, "num_inner_mlps": 2,
        "train_freq": True, "use_bias": True, "pad_vocab_size_multiple": 8, "embed_dropout": 0.1,
        "hyena_dropout": 0.0, "hyena_filter_dropout": 0.0, "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02, "tie_word_embeddings": True,
    }


X = torch.randint(7, 12, (2, 66), generator=torch.Generator().manual_seed(1))


def test_our_format_round_trip(tmp_path):
    m = make_model()
    out = m.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    keys = load_file(str(out / "model.safetensors")).keys()
    assert "lm_head.weight" not in keys  # tied: stored once
    assert not any(re.search(r"implicit_filter\.[35]\.freq", k) for k in keys)  # shared: once
    assert not any(k.endswith(("pos_emb.z", "pos_emb.t", "deltas")) for k in keys)  # derived
    loaded = hyena.from_pretrained(out)
    assert loaded.config == m.config
    assert not loaded.training
    torch.testing.assert_close(logits(loaded, X), logits(m, X), rtol=0, atol=0)
    # The tie survives loading: the head is the embedding, not a copy.
    assert loaded.lm_head.weight is loaded.backbone.embeddings.word_embeddings.weight


def test_save_is_atomic_and_leaves_no_temp_dirs(tmp_path):
    m = make_model()
    m.save_pretrained(tmp_path / "ckpt")
    m.save_pretrained(tmp_path / "ckpt")  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_official_lightning_checkpoint(tmp_path):
    m = make_model()
    state = {"model." + k: v for k, v in official_state_dict(m).items()}
    state["loss.dummy_buffer"] = torch.zeros(1)  # other Lightning modules' buffers are ignored
    torch.save({"state_dict": state, "epoch": 3, "global_step": 100}, tmp_path / "weights.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(official_config(m.config)))
    loaded = hyena.from_pretrained(tmp_path)
    torch.testing.assert_close(logits(loaded, X), logits(m, X), rtol=0, atol=0)
    # The .ckpt file path works as well as the directory.
    torch.testing.assert_close(logits(hyena.from_pretrained(tmp_path / "weights.ckpt"), X), logits(m, X))


def test_official_lightning_activation_checkpointed_keys(tmp_path):
    m = make_model()
    state = {}
    for k, v in official_state_dict(m).items():
        k = re.sub(r"\.(mixer|mlp)\.", r".\1.layer.", k)
        state["model." + k] = v
    torch.save({"state_dict": state}, tmp_path / "weights.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(official_config(m.config)))
    torch.testing.assert_close(logits(hyena.from_pretrained(tmp_path), X), logits(m, X), rtol=0, atol=0)


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.safetensors"])
def test_official_hf_port(tmp_path, weights):
    m = make_model()
    state = {}
    for k, v in official_state_dict(m).items():
        if re.search(r"implicit_filter\.[35]\.freq", k):
            continue  # the HF port stores the shared frequency once
        state["hyena." + k if k.startswith("backbone.") else k] = v.contiguous()
    if weights.endswith(".bin"):
        torch.save(state, tmp_path / weights)
    else:
        state["lm_head.weight"] = state["lm_head.weight"].clone()
        save_file(state, str(tmp_path / weights))
    (tmp_path / "config.json").write_text(json.dumps(hf_config(m.config)))
    loaded = hyena.from_pretrained(tmp_path)
    assert loaded.config.l_max == 66 and not loaded.config.separate_sine_freqs
    torch.testing.assert_close(logits(loaded, X), logits(m, X), rtol=0, atol=0)


def test_multimolecule_export_import_round_trip(tmp_path):
    m = make_model()
    hyena.export_multimolecule(m, tmp_path / "mm")
    cfg = json.loads((tmp_path / "mm" / "config.json").read_text())
    assert cfg["model_type"] == "hyenadna" and cfg["hidden_size"] == 16 and cfg["vocab_size"] == 11
    tensors = load_file(str(tmp_path / "mm" / "model.safetensors"))
    emb = tensors["model.embeddings.word_embeddings.weight"]
    official = m.backbone.embeddings.word_embeddings.weight
    # MultiMolecule's A (row 6) is official A (row 7); its <pad> (row 0) is official [PAD] (4).
    torch.testing.assert_close(emb[6], official[7])
    torch.testing.assert_close(emb[0], official[4])
    assert "model.final_layer_norm.weight" in tensors
    assert all(f"model.layers.0.mixer.filter_fn.implicit_filter.{i}.freq" in tensors for i in (1, 3, 5))
    loaded = hyena.from_pretrained(tmp_path / "mm")
    torch.testing.assert_close(logits(loaded, X), logits(m, X), rtol=0, atol=0)
    torch.testing.assert_close(loaded.backbone.embeddings.word_embeddings.weight, official, rtol=0, atol=0)


def test_differing_frequency_copies_load_faithfully(tmp_path):
    m = make_model(separate_sine_freqs=True)
    with torch.no_grad():
        m.backbone.layers[0].mixer.filter_fn.implicit_filter[3].freq.add_(1.0)
    hyena.export_multimolecule(m, tmp_path / "mm")
    loaded = hyena.from_pretrained(tmp_path / "mm")
    assert loaded.config.separate_sine_freqs  # detected, not averaged or dropped
    assert loaded.num_parameters() == m.num_parameters()
    torch.testing.assert_close(logits(loaded, X), logits(m, X), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="copies of the implicit filter differ.*separate_sine_freqs=True"):
        hyena.from_pretrained(tmp_path / "mm", separate_sine_freqs=False)
    # Saved in our format, the three copies survive.
    again = hyena.from_pretrained(loaded.save_pretrained(tmp_path / "ours"))
    torch.testing.assert_close(logits(again, X), logits(m, X), rtol=0, atol=0)


def test_equal_copies_load_shared(tmp_path):
    m = make_model()
    hyena.export_multimolecule(m, tmp_path / "mm")
    loaded = hyena.from_pretrained(tmp_path / "mm")
    assert not loaded.config.separate_sine_freqs
    f = loaded.backbone.layers[0].mixer.filter_fn.implicit_filter
    assert f[1].freq is f[3].freq is f[5].freq


def test_config_overrides_at_load(tmp_path):
    m = make_model()
    path = m.save_pretrained(tmp_path / "ckpt")
    assert hyena.from_pretrained(path, modulation_shift=0.0).config.modulation_shift == 0.0
    with pytest.raises(CheckpointError, match="unknown config override"):
        hyena.from_pretrained(path, shfit=0.0)


# ---- one clear error for each malformed checkpoint -------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        hyena.from_pretrained(tmp_path / "nope")


def test_directory_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no config.json"):
        hyena.from_pretrained(tmp_path)


def test_unknown_layout(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden": 3}))
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        hyena.from_pretrained(tmp_path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    m = make_model()
    path = m.save_pretrained(tmp_path / "ckpt")
    tensors = load_file(str(path / "model.safetensors"))
    del tensors["backbone.layers.1.mlp.fc2.bias"]
    tensors["backbone.layers.1.extra.weight"] = torch.zeros(2)
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: missing keys backbone.layers.1.mlp.fc2.bias; "
                                              r"unexpected keys backbone.layers.1.extra.weight"):
        hyena.from_pretrained(path)


def test_shape_mismatch_is_named(tmp_path):
    m = make_model()
    path = m.save_pretrained(tmp_path / "ckpt")
    cfg = json.loads((path / "config.json").read_text())
    cfg["d_inner"] = 32
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"shape mismatch: .*backbone.layers.0.mlp.fc1.bias \(64,\) != expected \(32,\)"):
        hyena.from_pretrained(path)


def test_wrong_l_max_is_caught_by_the_fixed_buffers(tmp_path):
    m = make_model()
    state = {"model." + k: v for k, v in official_state_dict(m).items()}
    torch.save({"state_dict": state}, tmp_path / "weights.ckpt")
    cfg = official_config(m.config)
    cfg["layer"]["l_max"] = 130
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="pos_emb.z does not match.*l_max=130"):
        hyena.from_pretrained(tmp_path)


def test_pickle_with_arbitrary_objects_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"state_dict": {}, "evil": Evil()}, tmp_path / "weights.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(official_config(make_model().config)))
    with pytest.raises(CheckpointError, match="weights-only pickle"):
        hyena.from_pretrained(tmp_path)


def test_corrupt_safetensors(tmp_path):
    path = make_model().save_pretrained(tmp_path / "ckpt")
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        hyena.from_pretrained(path)


def test_untied_head_is_refused(tmp_path):
    m = make_model()
    state = {"model." + k: v for k, v in official_state_dict(m).items()}
    state["model.lm_head.weight"] = torch.randn_like(state["model.lm_head.weight"])
    torch.save({"state_dict": state}, tmp_path / "weights.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(official_config(m.config)))
    with pytest.raises(CheckpointError, match="ties them"):
        hyena.from_pretrained(tmp_path)
