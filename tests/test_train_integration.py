"""Pretraining end to end: a real local Ray (2 CPU workers), a real SQLite MLflow store in
tmp_path, the bundled real genome. A short warm-up of three stages (64 -> 128 -> 256), then the
registered version, its tags and alias loading; a diverging run. A worker process killed mid-run,
and the driver process killed mid-run and the job rerun: tests/test_resume_losses.py.

Kept small for a 2-core machine: d_model 32, a dozen steps per run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import yaml

from _pretrain_run import seq_len_by_step

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def job_mapping(tmp: Path, name: str, every_steps: int = 4, workers: int = 2, **train) -> dict:
    return {
        "model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64}},
        "data": {},
        "train": {"global_batch": 8, "micro_batch": 2, "start_length": 64, "target_length": 256,
                  "steps": 12, "warmup_stage_steps": 3, "log_every": 2, "val_windows": 8,
                  "baseline_orders": [1, 3], **train},
        "scaling": {"num_workers": workers, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"every_steps": every_steps, "keep": 2, "storage_path": str(tmp / "runs"), "name": name,
                       "max_failures": 2},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "register_as": "hyena-test", "alias": "candidate"},
    }


def make_job(tmp: Path, name: str, every_steps: int = 4, workers: int = 2, **train):
    from hyena_platform.train.config import job_from_mapping

    return job_from_mapping(job_mapping(tmp, name, every_steps, workers, **train), source=f"{name}.yaml")


def client(tmp: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp}/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def history(tmp: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client(tmp).get_metric_history(run_id, key))


@pytest.fixture(scope="module")
def finished(ray_cluster, tmp_path_factory):
    from hyena_platform.train.launch import run_pretrain

    tmp = tmp_path_factory.mktemp("pretrain")
    job = make_job(tmp, "warmup")
    events: list[dict] = []
    result = run_pretrain(job, source="warmup.yaml", progress=events.append)
    return tmp, job, result, events


# ---------------------------------------------------------------------------- a clean run


def test_warmup_runs_three_stages_in_order(finished):
    tmp, job, result, events = finished
    assert [s.length for s in result.stages] == [64, 128, 256]
    seq_len = history(tmp, result.run_id, "train/seq_len")
    assert [step for step, _ in seq_len] == list(range(1, 13))  # every step logged once
    assert {step: int(v) for step, v in seq_len} == seq_len_by_step(job)
    # held-out validation at each stage's end, at that stage's length
    val_len = history(tmp, result.run_id, "val/seq_len")
    assert val_len == [(3, 64.0), (6, 128.0), (12, 256.0)]
    loss = history(tmp, result.run_id, "train/loss")
    assert loss[-1][1] < loss[0][1]
    # the progress events the driver printed cover the stages and end with "done"
    assert events[-1]["event"] == "done" and events[-1]["step"] == 12
    assert {e["seq_len"] for e in events if e.get("seq_len")} == {64, 128, 256}


def test_learning_rate_follows_the_recipe(finished):
    from hyena_platform.train.schedule import lr_factor

    tmp, job, result, _ = finished
    lrs = history(tmp, result.run_id, "train/lr")
    expected = [job.train.lr * lr_factor(step - 1, 12, 0.01, 0.1) for step in range(1, 13)]
    assert [v for _, v in lrs] == pytest.approx(expected, rel=1e-6)
    assert lrs[-1][1] == pytest.approx(0.1 * job.train.lr)


def test_validation_and_kmer_baselines_are_logged_per_stage(finished):
    tmp, _, result, _ = finished
    for stage in result.stages:
        assert stage.val_loss is not None and 0 < stage.val_bits_per_base < 5
        assert set(stage.baselines) == {1, 3}
        # an order-3 chain on a bacterial genome is close to but below 2 bits per base
        assert 1.8 < stage.baselines[3] < 2.0
    ppl = history(tmp, result.run_id, "val/perplexity")
    assert [s for s, _ in ppl] == [3, 6, 12]
    assert "model ppl" in result.table() and "k=3 ppl" in result.table()


def test_exactly_one_mlflow_run_with_params_config_and_environment(finished):
    from hyena_platform.config import to_dict

    tmp, job, result, _ = finished
    c = client(tmp)
    runs = c.search_runs([c.get_experiment_by_name("hyena-pretrain").experiment_id])
    assert [r.info.run_id for r in runs] == [result.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.lr"] == "0.0006" and params["model.variant"] == "tiny-1k"
    assert params["resolved.model.d_model"] == "32" and params["env.torch"] == torch.__version__
    assert params["resolved.data_hash"].startswith("sha256:")
    assert run.data.tags["hyena.data_hash"] == result.data_hash
    local = Path(c.download_artifacts(result.run_id, "config.yaml", str(tmp / "dl")))
    assert yaml.safe_load(local.read_text()) == yaml.safe_load(yaml.safe_dump(to_dict(job)))


def test_registered_version_has_tags_and_alias(finished):
    tmp, _, result, _ = finished
    mv = client(tmp).get_model_version_by_alias("hyena-test", "candidate")
    assert int(mv.version) == result.model_version
    assert mv.run_id == result.run_id
    assert mv.tags["run_id"] == result.run_id
    assert mv.tags["variant"] == "tiny-1k"
    assert mv.tags["data_hash"] == result.data_hash
    assert float(mv.tags["val_perplexity"]) == pytest.approx(result.final_perplexity, rel=1e-5)


def test_registered_version_is_an_mlflow_model_with_the_runs_model_card(finished):
    import mlflow.pyfunc
    import pandas as pd

    from hyena_platform import tracking

    tmp, _, result, _ = finished
    uri = f"sqlite:///{tmp}/mlflow.db"
    root = tracking.download_version("models:/hyena-test@candidate", tmp / "card", tracking_uri=uri)
    readme = (root / "README.md").read_text()
    final = result.stages[-1]
    for fact in (result.data_hash, "chrII", f"{final.val_perplexity:.4g}", f"{2 ** final.baselines[3]:.4g}",
                 "k=3 perplexity", f"MLflow run: {result.run_id}", "random initialisation", "train:"):
        assert fact in readme, fact
    mv = client(tmp).get_model_version_by_alias("hyena-test", "candidate")
    assert "k=1 perplexity" in mv.description and result.data_hash in mv.description
    loaded = mlflow.pyfunc.load_model(root)  # the downloaded MLflow Model itself
    out = loaded.predict(pd.DataFrame({"sequence": ["ACGTTGCA"]}), params={"output": "embedding"})
    assert len(out["embedding"][0]) == 32


def test_load_by_alias_and_by_version_gives_the_trained_model(finished):
    from hyena import from_pretrained
    from hyena_platform import tracking

    tmp, _, result, _ = finished
    uri = f"sqlite:///{tmp}/mlflow.db"
    by_alias = tracking.load_model("models:/hyena-test@candidate", tracking_uri=uri)
    by_version = tracking.load_model(f"models:/hyena-test/{result.model_version}", tracking_uri=uri)
    reference = from_pretrained(Path(result.checkpoint_path) / "model")
    x = torch.randint(7, 12, (2, 100))
    with torch.no_grad():
        want = reference.eval()(x).logits
        assert torch.equal(by_alias.eval()(x).logits, want)
        assert torch.equal(by_version.eval()(x).logits, want)
    assert by_alias.config.d_model == 32


def test_init_from_a_registered_model_continues_from_its_weights(finished):
    from hyena_platform import tracking
    from hyena_platform.train.config import job_from_mapping
    from hyena_platform.train.launch import resolve_model

    tmp, _, result, _ = finished
    data = job_mapping(tmp, "continued")
    data["model"] = {"init_from": "models:/hyena-test@candidate", "overrides": {"embed_dropout": 0.0}}
    job = job_from_mapping(data, source="continued.yaml")
    uri = f"sqlite:///{tmp}/mlflow.db"
    cfg, state, desc = resolve_model(job, uri, source="continued.yaml")
    assert cfg.d_model == 32 and cfg.embed_dropout == 0.0 and desc == "init_from:models:/hyena-test@candidate"
    reference = tracking.load_model("models:/hyena-test@candidate", tracking_uri=uri).state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference)


def test_rerunning_a_finished_job_reuses_it(finished):
    from hyena_platform.train.launch import run_pretrain

    tmp, job, result, _ = finished
    t0 = time.perf_counter()
    again = run_pretrain(job, source="warmup.yaml")
    assert again.reused and again.run_id == result.run_id and again.model_version == result.model_version
    assert [s.val_loss for s in again.stages] == [s.val_loss for s in result.stages]
    assert time.perf_counter() - t0 < 20  # no training: MLflow lookups only


def test_rerunning_with_a_changed_recipe_is_refused(finished):
    from hyena_platform.errors import ConfigError
    from hyena_platform.train.launch import run_pretrain

    tmp, _, _, _ = finished
    with pytest.raises(ConfigError, match=r"different configuration \(train\.lr: '0\.0006' then, '0\.001' now.*--fresh"):
        run_pretrain(make_job(tmp, "warmup", lr=1e-3), source="warmup.yaml")


def test_logged_data_hash_is_the_shard_manifest_hash_of_the_same_genome(finished, tmp_path):
    """The hash logged for a FASTA run equals what `hyena shard` writes in its manifest."""
    from hyena_platform.data.config import DataConfig
    from hyena_platform.data.pipeline import write_shards

    _, _, result, _ = finished
    manifest = write_shards(DataConfig(), str(tmp_path / "shards"))
    assert manifest.content_hash == result.data_hash


# ---------------------------------------------------------------------------- faults


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(ray_cluster, tmp_path):
    from hyena_platform.train.launch import TrainingDivergedError, run_pretrain

    # lr 1e30: the first AdamW update moves every weight by ~1e30, the next forward overflows
    job = make_job(tmp_path, "diverge", every_steps=1, workers=1, steps=None, stages=[{"length": 64, "steps": 4}],
                   lr=1e30, warmup_fraction=0.0)
    with pytest.raises(TrainingDivergedError, match=r"non-finite loss .* at step \d+ .*last good checkpoint is .*checkpoint_0"):
        run_pretrain(job, source="diverge.yaml")
    c = client(tmp_path)
    run = c.search_runs([c.get_experiment_by_name("hyena-pretrain").experiment_id])[0]
    assert run.info.status == "FAILED" and "non-finite" in run.data.tags["hyena.stopped"]
    assert list((tmp_path / "runs" / "diverge").glob("checkpoint_*/model/model.safetensors"))
    assert not c.search_model_versions("name='hyena-test'")
