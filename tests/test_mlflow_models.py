"""Registered versions are MLflow Models: pyfunc load and predict, a real `mlflow models serve`,
model cards, legacy versions, `hyena export`, and bad input, against a real SQLite store.

The sequences are real: windows of the bundled V. cholerae N16961 genome."""

from __future__ import annotations

import http.server
import importlib.metadata as md
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

import hyena
from hyena import HyenaConfig, HyenaDNAForCausalLM, Tokenizer
from hyena.tokenizer import SEP
from hyena_platform import tracking
from hyena_platform.cli import main as cli_main, program_environment
from hyena_platform.errors import InputError
from hyena_platform.model_card import ModelCard
from hyena_platform.tracking import TrackingConfig

pytestmark = pytest.mark.integration  # a real MLflow store (and a real model server)

NAME = "hyena-mlmodel-test"


def tiny_model(seed: int) -> HyenaDNAForCausalLM:
    torch.manual_seed(seed)
    return HyenaDNAForCausalLM(HyenaConfig(d_model=16, n_layer=2, l_max=130)).eval()


def card_for(model: HyenaDNAForCausalLM, run_id: str) -> ModelCard:
    return ModelCard(
        title="HyenaDNA test model", task="causal language model (next-base prediction), pretrained",
        architecture=model.config.to_dict(), parameters=model.num_parameters(), data_hash="3f2a9c",
        data={"source": "bundled V. cholerae N16961", "valid chromosomes": ["chrII"]},
        splits={"train": "2,961,149 bases", "valid": "1,072,315 bases"},
        metrics=[{"stage": 0, "length": 64, "model perplexity": 3.91, "k=2 perplexity": 3.95}],
        lineage={"base model": "random initialisation", "MLflow run": run_id},
    )


@pytest.fixture(scope="module")
def sequences(bundled_genome) -> list[str]:
    """Real windows of three lengths (two share a length), one with an IUPAC code (-> N)."""
    import pyfaidx

    fasta = pyfaidx.Fasta(str(bundled_genome))
    chrom = str(fasta["chrI"][100_000:100_400]).upper()
    seqs = [chrom[:100], chrom[100:200], chrom[200:240], chrom[300:317]]
    seqs[2] = seqs[2][:10] + "R" + seqs[2][11:]
    return seqs


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A SQLite store with one registered MLflow-Model version (alias candidate)."""
    import mlflow

    root = tmp_path_factory.mktemp("registry")
    cfg = TrackingConfig(uri="sqlite:///mlflow.db", register_as=NAME).resolved(root)
    run_id = tracking.start_run(cfg, run_key="file:///runs/mlmodel", run_name="mlmodel")
    model = tiny_model(7)
    directory = model.save_pretrained(root / "checkpoint")
    version = tracking.register_model_dir(cfg, run_id, directory, card=card_for(model, run_id),
                                          tags={"run_id": run_id}, description="registered by the test")
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(cfg.uri)
    mlflow.set_registry_uri(cfg.uri)
    yield SimpleNamespace(cfg=cfg, run_id=run_id, model=model, version=version, root=root)
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def direct_log_likelihood(model, sequence: str) -> np.ndarray:
    ids = torch.from_numpy(Tokenizer().encode(sequence)).long()[None]
    inputs = torch.cat([torch.tensor([[SEP]]), ids[:, :-1]], dim=1)
    with torch.no_grad():
        logp = torch.log_softmax(model(inputs).logits.float(), -1).gather(-1, ids[..., None])[0, :, 0]
    return logp.numpy()


def direct_embedding(model, sequence: str, pooling: str) -> np.ndarray:
    ids = torch.from_numpy(Tokenizer().encode(sequence)).long()[None]
    with torch.no_grad():
        hidden = model.backbone(ids)[0]
    return (hidden.mean(0) if pooling == "mean" else hidden[-1]).numpy()


def assert_log_likelihoods(rows, model, sequences):
    for row, seq in zip(rows, sequences):
        expected = direct_log_likelihood(model, seq)
        got = np.asarray(row["log_likelihood"], dtype=np.float64)
        n = np.array([c == "N" for c in Tokenizer().decode(Tokenizer().encode(seq))])
        assert np.isnan(got[n]).all() and not np.isnan(got[~n]).any()
        assert np.abs(got[~n] - expected[~n]).max() <= 1e-5
        assert row["bases"] == len(seq)
        assert abs(row["mean_log_likelihood"] - expected[~n].mean()) <= 1e-5


# ------------------------------------------------------------------------ pyfunc and the card


def test_pyfunc_load_model_predicts_what_a_direct_forward_returns(registry, sequences):
    import mlflow.pyfunc
    import pandas as pd

    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@candidate")
    frame = pd.DataFrame({"sequence": sequences})
    assert_log_likelihoods(loaded.predict(frame).to_dict("records"), registry.model, sequences)
    for pooling in ("mean", "last"):
        out = loaded.predict(frame, params={"output": "embedding", "pooling": pooling})
        for vector, seq in zip(out["embedding"], sequences):
            assert np.abs(np.asarray(vector) - direct_embedding(registry.model, seq, pooling)).max() <= 1e-5
    # by version number too, and a row's numbers do not depend on the rest of the request
    alone = mlflow.pyfunc.load_model(f"models:/{NAME}/{registry.version}").predict(frame.iloc[[2]])
    np.testing.assert_allclose(alone["log_likelihood"][0], loaded.predict(frame)["log_likelihood"][2], atol=1e-6, rtol=0)


def test_a_registered_version_is_an_mlflow_model_with_a_card(registry):
    info = tracking.model_version(f"models:/{NAME}@candidate", tracking_uri=registry.cfg.uri)
    root = tracking.download_version(f"models:/{NAME}@candidate", registry.root / "dl", tracking_uri=registry.cfg.uri)
    mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "hyena.pyfunc" and flavor["data"] == "data/checkpoint"
    assert set(mlmodel["flavors"]) == {"python_function"}  # no pytorch flavor, no torch.export
    assert sorted(p.name for p in (root / "data" / "checkpoint").iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in root.rglob("*") if p.suffix in (".pkl", ".pt", ".pth", ".bin", ".ckpt", ".pt2")]
    assert (root / "code" / "hyena" / "pyfunc.py").is_file() and (root / "code" / "hyena" / "model.py").is_file()
    params = {p["name"]: p["default"] for p in json.loads(mlmodel["signature"]["params"])}
    assert params == {"output": "log_likelihood", "pooling": "mean", "batch_size": 8}
    assert json.loads(mlmodel["signature"]["inputs"]) == [{"type": "string", "name": "sequence", "required": True}]
    example = json.loads((root / "input_example.json").read_text())
    assert example["columns"] == ["sequence"] and set(example["data"][0][0]) <= set("ACGT")
    requirements = (root / "requirements.txt").read_text().split()
    assert f"torch=={md.version('torch').split('+')[0]}" in requirements and any(r.startswith("safetensors==") for r in requirements)
    readme = (root / "README.md").read_text()
    for fact in ("## Architecture", f"{registry.model.num_parameters():,}", "3f2a9c", "chrII", "k=2 perplexity",
                 "3.91", "## Lineage", registry.run_id, f"models:/{NAME}@candidate"):
        assert fact in readme, fact
    assert info.description.startswith("registered by the test") and "k=2 perplexity" in info.description
    assert info.tags == {"run_id": registry.run_id}
    assert "MLflow Model" in tracking.client(registry.cfg.uri).get_registered_model(NAME).description


def test_a_fine_tuned_head_registers_with_class_probabilities_as_its_default(registry, sequences, tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    from hyena.heads import HeadConfig, HyenaDNAForSequencePrediction

    torch.manual_seed(4)
    head = HyenaDNAForSequencePrediction(HyenaConfig(d_model=16, n_layer=1, l_max=130), HeadConfig(
        num_labels=2, label_names=("V. cholerae", "E. coli"))).eval()
    cfg = TrackingConfig(uri=registry.cfg.uri, register_as="head-test")
    tags = {"data_hash": "sha256:ab12", "val_accuracy": "0.91", "baseline_test_accuracy": "0.74",
            "base_model_name": NAME, "base_model_version": str(registry.version)}
    tracking.register_model_dir(cfg, registry.run_id, head.save_pretrained(tmp_path / "head"), artifact_path="head",
                                tags=tags, description="species classifier")
    readme = (tracking.download_version("models:/head-test@candidate", tmp_path / "dl", tracking_uri=cfg.uri)
              / "README.md").read_text()  # a card from the model and the tags when the caller gives none
    for fact in ("# species classifier", "single_label_classification", "sha256:ab12", "| 0.91 | 0.74 |",
                 f"base_model_name: {NAME}", "head.label_names", f"{head.num_parameters():,}"):
        assert fact in readme, fact
    loaded = mlflow.pyfunc.load_model("models:/head-test@candidate")
    assert json.loads(loaded.metadata.to_dict()["signature"]["params"])[0]["default"] == "class_probabilities"
    out = loaded.predict(pd.DataFrame({"sequence": sequences}))
    for probs, label, seq in zip(out["probabilities"], out["label"], sequences):
        with torch.no_grad():
            want = torch.softmax(head(torch.from_numpy(Tokenizer().encode(seq)).long()[None]).logits[0], -1).numpy()
        assert np.abs(np.asarray(probs) - want).max() <= 1e-5 and label == head.head_config.label_names[want.argmax()]


# ---------------------------------------------------------------------------- mlflow models serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_mlflow_models_serve_answers_with_the_same_numbers(registry, sequences):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.cfg.uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@candidate", "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # up to 120 s on a busy machine
            if server.poll() is not None:
                pytest.fail(f"mlflow models serve exited {server.returncode}: {server.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not answer /ping")
        data = {"dataframe_split": {"columns": ["sequence"], "data": [[s] for s in sequences]}}
        status, body = post(base + "/invocations", data)
        assert status == 200
        assert_log_likelihoods(body["predictions"], registry.model, sequences)
        status, body = post(base + "/invocations", {**data, "params": {"output": "embedding", "pooling": "last"}})
        assert status == 200
        for row, seq in zip(body["predictions"], sequences):
            assert np.abs(np.asarray(row["embedding"]) - direct_embedding(registry.model, seq, "last")).max() <= 1e-5
        status, body = post(base + "/invocations", {"dataframe_split": {"columns": ["sequence"], "data": [["ACGTX"]]}})
        assert status == 400 and "row 0" in json.dumps(body) and "'X' at position 4" in json.dumps(body)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert server.returncode is not None


# ---------------------------------------------------------------------------- legacy versions


def register_legacy(cfg: TrackingConfig, run_id: str, directory: Path, name: str) -> int:
    """How versions were registered before this change: checkpoint files at the source root."""
    c = tracking.client(cfg.uri)
    c.log_artifacts(run_id, str(directory), "legacy-model")
    c.create_registered_model(name)
    source = c.get_run(run_id).info.artifact_uri.rstrip("/") + "/legacy-model"
    version = c.create_model_version(name, source=source, run_id=run_id, tags={"steps": "10"}, description="old")
    c.set_registered_model_alias(name, "candidate", version.version)
    return int(version.version)


def test_legacy_versions_still_load_and_upgrade_to_mlflow_models(registry, sequences, tmp_path, capsys):
    import mlflow.pyfunc
    import pandas as pd

    model = tiny_model(11)
    legacy = register_legacy(registry.cfg, registry.run_id, model.save_pretrained(tmp_path / "old"), "legacy-test")
    uri = f"models:/legacy-test/{legacy}"
    x = torch.from_numpy(Tokenizer().encode(sequences[0])).long()[None]
    with torch.no_grad():
        assert torch.equal(tracking.load_model(uri, tracking_uri=registry.cfg.uri)(x).logits, model(x).logits)
    assert cli_main(["export", uri, str(tmp_path / "out"), "--tracking-uri", registry.cfg.uri]) == 0
    assert "hyena upgrade-model" in capsys.readouterr().out  # the way to re-register is named

    assert cli_main(["upgrade-model", "models:/legacy-test@candidate", "--tracking-uri", registry.cfg.uri]) == 0
    info = tracking.model_version("models:/legacy-test@candidate", tracking_uri=registry.cfg.uri)
    assert "MLflow Model" in tracking.client(registry.cfg.uri).get_registered_model("legacy-test").description
    assert info.version == legacy + 1 and info.tags == {"steps": "10", "hyena.upgraded_from": str(legacy)}
    out = mlflow.pyfunc.load_model("models:/legacy-test@candidate").predict(pd.DataFrame({"sequence": sequences}))
    assert_log_likelihoods(out.to_dict("records"), model, sequences)
    with pytest.raises(InputError, match="already an MLflow Model"):
        tracking.upgrade_model_version("models:/legacy-test@candidate", tracking_uri=registry.cfg.uri)
    # a version without aliases upgrades without gaining one
    c = tracking.client(registry.cfg.uri)
    bare = c.create_model_version("legacy-test", source=c.get_model_version("legacy-test", str(legacy)).source,
                                  run_id=registry.run_id)
    upgraded = tracking.upgrade_model_version(f"models:/legacy-test/{bare.version}", tracking_uri=registry.cfg.uri)
    assert c.get_registered_model("legacy-test").aliases == {"candidate": legacy + 1}
    assert tracking.is_mlflow_model(f"models:/legacy-test/{upgraded}", tracking_uri=registry.cfg.uri)


# -------------------------------------------------------------------------------------- export


def test_export_ours_and_the_card_from_a_registered_version(registry, tmp_path, sequences):
    out = tmp_path / "ours"
    assert cli_main(["export", f"models:/{NAME}@candidate", str(out), "--tracking-uri", registry.cfg.uri]) == 0
    assert (out / "README.md").read_text().startswith("# HyenaDNA test model")
    x = torch.from_numpy(Tokenizer().encode(sequences[0])).long()[None]
    with torch.no_grad():
        assert torch.equal(hyena.from_pretrained(out)(x).logits, registry.model(x).logits)


def test_export_refuses_to_replace_its_input_or_an_existing_directory(registry, tmp_path, capsys):
    source = registry.model.save_pretrained(tmp_path / "src")
    assert cli_main(["export", str(source), str(source), "--overwrite"]) == 2
    assert "would replace the model it exports" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("x")
    assert cli_main(["export", str(source), str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and (tmp_path / "taken" / "keep.txt").exists()


def test_multimolecule_export_runs_in_a_transformers_pipeline(registry, tmp_path):
    try:
        import multimolecule  # noqa: F401  registers HyenaDNA and DnaTokenizer with transformers
        from transformers import pipeline
    except ImportError as err:
        pytest.skip(f"multimolecule is not installed here ({err}); pip install multimolecule to run this test")
    from hyena.checkpoint import MM_TO_OFFICIAL

    model = tiny_model(5)
    with torch.no_grad():  # special tokens' embedding rows to zero: greedy decoding then picks bases
        model.backbone.embeddings.word_embeddings.weight[[0, 1, 2, 3, 4, 5, 6, 12, 13, 14, 15]] = 0
    source = model.save_pretrained(tmp_path / "src")
    out = tmp_path / "mm"
    assert cli_main(["export", str(source), str(out), "--format", "multimolecule"]) == 0
    generator = pipeline("text-generation", model=str(out))
    prompt = "AGGGTCATTAAATATATATAAAGATC"  # chrI:1-26 of the bundled genome
    result = generator(prompt, max_new_tokens=12, do_sample=False, return_tensors=True)[0]["generated_token_ids"]
    text = generator(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
    # our model, greedy, on the same token stream (MultiMolecule ids -> official ids)
    ids = torch.tensor([[MM_TO_OFFICIAL[i] for i in result]])
    n_prompt = ids.shape[1] - 12
    with torch.no_grad():
        for t in range(n_prompt, ids.shape[1]):
            assert model(ids[:, :t]).logits[0, -1].argmax().item() == ids[0, t].item()
    continuation = Tokenizer().decode(ids[0, n_prompt:].numpy())
    assert text.startswith(prompt) and text.replace(" ", "").endswith(continuation) and set(continuation) <= set("ACGTN")


# ------------------------------------------------------------------------------------ bad input


def test_unknown_names_aliases_and_versions_list_what_exists(registry):
    store = registry.cfg.uri
    with pytest.raises(InputError, match=rf"no registered model 'nope'; registered models: .*{NAME}"):
        tracking.load_model("models:/nope@candidate", tracking_uri=store)
    with pytest.raises(InputError, match=rf"models:/{NAME}@prod: not found .* versions of {NAME}: 1.*aliases: @candidate -> 1"):
        tracking.model_version(f"models:/{NAME}@prod", tracking_uri=store)
    with pytest.raises(InputError, match=rf"models:/{NAME}/99: not found .* versions of {NAME}: 1"):
        tracking.model_version(f"models:/{NAME}/99", tracking_uri=store)
    with pytest.raises(InputError, match=r"no MLflow store at sqlite:///.*missing\.db"):
        tracking.model_version("models:/x@y", tracking_uri=f"sqlite:///{registry.root}/missing.db")
    assert not (registry.root / "missing.db").exists()


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).hits += 1
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_tracking_server_that_is_down_fails_once_naming_its_uri(capsys, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InputError, match=rf"MLflow tracking server {down} is not reachable"):
        tracking.model_version("models:/hyenadna@candidate", tracking_uri=down)
    server = http.server.HTTPServer(("127.0.0.1", 0), _CountingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    unhealthy = f"http://127.0.0.1:{server.server_port}"
    try:
        code = cli_main(["export", "models:/hyenadna@candidate", str(tmp_path / "o"), "--tracking-uri", unhealthy])
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{unhealthy} answered HTTP 503" in err
    assert _CountingHandler.hits == 1  # one request, no retries (MLflow's client would retry 503 for minutes)
    assert not (tmp_path / "o").exists()


def test_missing_or_corrupt_artifact_files_are_one_line_errors(registry, tmp_path, capsys, monkeypatch):
    # The `hyena` program runs with program_environment (cli.console re-executes itself with it),
    # which keeps MLflow's per-file download bar off; cli_main in this process sets no environment.
    bars = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    monkeypatch.setenv(bars, program_environment({})[bars])
    cfg = TrackingConfig(uri=registry.cfg.uri, register_as="broken-test", alias="broken")
    tracking.register_model_dir(cfg, registry.run_id, tiny_model(3).save_pretrained(tmp_path / "m"),
                                artifact_path="broken-model")
    source = tracking.model_version("models:/broken-test@broken", tracking_uri=cfg.uri).source
    weights = Path(source.removeprefix("file://")) / "data" / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError, match=r"models:/broken-test@broken: the registered checkpoint cannot be read: .*safetensors"):
        tracking.load_model("models:/broken-test@broken", tracking_uri=cfg.uri)
    weights.unlink()
    with pytest.raises(InputError, match=r"models:/broken-test@broken .* missing model.safetensors in data/checkpoint"):
        tracking.load_model("models:/broken-test@broken", tracking_uri=cfg.uri)
    assert cli_main(["export", "models:/broken-test@broken", str(tmp_path / "o"), "--tracking-uri", cfg.uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing model.safetensors" in err and not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="missing config.json"):
        tracking.register_model_dir(cfg, registry.run_id, tmp_path)
