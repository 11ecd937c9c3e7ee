"""tracking.py against a real SQLite MLflow store: runs, metrics, the registry, models:/ URIs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hyena import HyenaConfig, HyenaDNAForCausalLM
from hyena_platform import tracking
from hyena_platform.errors import ConfigError, InputError
from hyena_platform.tracking import TrackingConfig

pytestmark = pytest.mark.integration  # a real MLflow store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> TrackingConfig:
    root = tmp_path_factory.mktemp("mlflow")
    return TrackingConfig(uri="sqlite:///mlflow.db", register_as="unit-model").resolved(root)


def tiny_model(seed: int) -> HyenaDNAForCausalLM:
    torch.manual_seed(seed)
    return HyenaDNAForCausalLM(HyenaConfig(d_model=16, n_layer=1, l_max=66))


def test_relative_sqlite_uris_resolve_against_a_base_directory(tmp_path):
    cfg = TrackingConfig(uri="sqlite:///sub/mlflow.db").resolved(tmp_path)
    assert cfg.uri == f"sqlite:///{tmp_path}/sub/mlflow.db"
    assert cfg.artifact_location == (tmp_path / "sub" / "mlartifacts").as_uri()
    assert TrackingConfig(uri="sqlite:////abs/m.db").resolved(tmp_path).uri == "sqlite:////abs/m.db"
    server = TrackingConfig(uri="http://mlflow:5000").resolved(tmp_path)
    assert server.uri == "http://mlflow:5000" and server.artifact_location is None


@pytest.mark.parametrize("uri, parsed", [
    ("models:/hyenadna@candidate", ("hyenadna", "candidate", None)),
    ("models:/hyenadna/12", ("hyenadna", None, 12)),
])
def test_model_uris_parse(uri, parsed):
    assert tracking.parse_model_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["models:/hyenadna", "models:/a/b/c", "runs:/abc/model", "hyenadna@candidate"])
def test_bad_model_uris_explain_the_two_forms(uri):
    with pytest.raises(ConfigError, match=r"models:/NAME@ALIAS .* models:/NAME/VERSION"):
        tracking.parse_model_uri(uri)


def test_flatten_config():
    assert tracking.flatten({"train": {"lr": 1e-3, "betas": (0.9, 0.99), "stages": None}, "model": {"overrides": {}}}) == {
        "train.lr": "0.001", "train.betas": "[0.9, 0.99]", "train.stages": "None", "model.overrides": "{}"}


def test_runs_are_found_by_their_ray_train_key_and_metrics_logged_once(store):
    run_id = tracking.start_run(store, run_key="file:///runs/a", run_name="a", tags={"x": "1"})
    assert tracking.find_run(store, "file:///runs/a").info.run_id == run_id
    assert tracking.find_run(store, "file:///runs/b") is None
    n = tracking.log_metrics(store, run_id, [("train/loss", 2.0, 1), ("train/loss", math.nan, 2),
                                             ("train/loss", 1.5, 3)])
    assert n == 2  # the non-finite value is skipped
    assert tracking.metric_history(store, run_id, "train/loss") == [(1, 2.0), (3, 1.5)]
    assert tracking.last_logged_step(store, run_id, "train/loss") == 3
    tracking.log_params(store, run_id, {"train.lr": "0.1"})
    tracking.log_params(store, run_id, {"train.lr": "0.1", "train.steps": "5"})  # a resumed run: no clash
    assert tracking.get_run(store, run_id).data.params == {"train.lr": "0.1", "train.steps": "5"}
    tracking.detach_run(store, run_id)
    assert tracking.find_run(store, "file:///runs/a") is None


def test_register_versions_move_the_alias_and_load_by_alias_and_version(store, tmp_path):
    run_id = tracking.start_run(store, run_key="file:///runs/reg", run_name="reg")
    versions = []
    for seed in (1, 2):
        model = tiny_model(seed)
        directory = model.save_pretrained(tmp_path / f"m{seed}")
        versions.append(tracking.register_model_dir(
            store, run_id, directory, tags={"run_id": run_id, "seed": seed}, artifact_path=f"model{seed}"))
    assert versions[1] == versions[0] + 1
    info = tracking.model_version("models:/unit-model@candidate", tracking_uri=store.uri)
    assert info.version == versions[1] and info.tags == {"run_id": run_id, "seed": "2"} and info.run_id == run_id

    x = torch.randint(7, 12, (1, 30))
    with torch.no_grad():
        latest = tracking.load_model("models:/unit-model@candidate", tracking_uri=store.uri).eval()(x).logits
        first = tracking.load_model(f"models:/unit-model/{versions[0]}", tracking_uri=store.uri).eval()(x).logits
        assert torch.equal(latest, tiny_model(2).eval()(x).logits)
        assert torch.equal(first, tiny_model(1).eval()(x).logits)
    # a local directory loads without MLflow
    assert isinstance(tracking.load_model(tmp_path / "m1"), HyenaDNAForCausalLM)


def test_missing_registry_entries_are_input_errors(store):
    with pytest.raises(InputError, match=r"models:/unit-model@nope: not found in the model registry"):
        tracking.model_version("models:/unit-model@nope", tracking_uri=store.uri)
    with pytest.raises(InputError, match=r"models:/no-such-model/1: not found"):
        tracking.load_model("models:/no-such-model/1", tracking_uri=store.uri)


def test_register_refuses_a_directory_that_is_not_a_checkpoint(store, tmp_path):
    run_id = tracking.start_run(store, run_key="file:///runs/bad", run_name="bad")
    with pytest.raises(InputError, match="missing config.json"):
        tracking.register_model_dir(store, run_id, tmp_path)


def test_tracking_is_the_only_module_importing_mlflow():
    root = Path(__file__).resolve().parents[1]
    importers = sorted(
        str(p.relative_to(root)) for p in (root / "platform").rglob("*.py")
        if any(line.lstrip().startswith(("import mlflow", "from mlflow")) for line in p.read_text().splitlines())
    )
    assert importers == ["platform/hyena_platform/tracking.py"]


def test_importing_tracking_does_not_import_mlflow():
    code = "import sys, hyena_platform.tracking, hyena_platform.train.config; print('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
