"""`hyena finetune` end to end on a small real task: species of 1,024-base windows of complete
bacterial references (tests/assets/finetune, held-out strains in test), a real local Ray (2 DDP
workers), a real SQLite MLflow, the base model registered there and used as models:/NAME@ALIAS."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

import hyena
from hyena import HyenaConfig, HyenaDNAForCausalLM
from hyena_platform import tracking
from hyena_platform.config import from_mapping, to_dict
from hyena_platform.finetune.config import FinetuneJob
from hyena_platform.finetune.examples import hash_files
from hyena_platform.tracking import TrackingConfig

from _driver_kill import kill_after_first_checkpoint, run_cli

ASSETS = Path(__file__).resolve().parent / "assets" / "finetune"
SPECIES = ASSETS / "species_small.parquet"
LABELS = ["E.Coli", "H.Pylori", "S.Aureus", "V.Cholerae"]


def register_base(tmp_path) -> str:
    cfg = TrackingConfig(uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="base", register_as="tiny-base").resolved()
    torch.manual_seed(0)
    lm = HyenaDNAForCausalLM(HyenaConfig(d_model=16, n_layer=1, d_inner=32, filter_order=8, l_max=1026))
    lm.save_pretrained(tmp_path / "base")
    run_id = tracking.start_run(cfg, run_key="base", run_name="base")
    tracking.register_model_dir(cfg, run_id, tmp_path / "base")
    tracking.end_run(cfg, run_id)
    return cfg.uri


def species_job(tmp_path, uri: str, task: dict | None = None, **train) -> FinetuneJob:
    return from_mapping(FinetuneJob, {
        "model": {"init_from": "models:/tiny-base@candidate"},
        "task": {"type": "sequence", "problem_type": "single_label_classification", "pooling": "mean", **(task or {})},
        "data": {"path": str(SPECIES), "valid_fraction": 0.2},
        "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "eval_batch": 16, "log_every": 2, **train},
        "baseline": {"max_k": 3},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "threads_per_worker": 1},
        "checkpoint": {"storage_path": str(tmp_path / "runs"), "name": "species"},
        "tracking": {"uri": uri, "experiment": "ft", "register_as": "species"},
    }, source="species.yaml")


def check_probe_step(tmp_path, job, uri, metrics, step0_mcc) -> None:
    """Step 0 of a `head_init: probe` run is the probe fitted here on the frozen base model's
    features, rows in the two workers' gathered order (worker r scores examples r, r + 2, ...)."""
    import numpy as np

    from hyena_platform.finetune.data import load_task_data
    from hyena_platform.finetune.launch import build_start_model, resolve_base
    from hyena_platform.finetune.probe import C_GRID, fit_probe, split_features

    data = load_task_data(job.data, task="sequence", problem_type="single_label_classification")
    model = build_start_model(job, resolve_base(job, uri, tmp_path / "probe", source="x"), data, source="x")
    assert model.head_config.standardize

    def gathered(split):
        parts = [split_features(model, split, range(r, len(split), 2), task="sequence",
                                problem_type="single_label_classification", batch_size=16) for r in (0, 1)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    probe = fit_probe(gathered(data.splits["train"]), gathered(data.splits["valid"]),
                      problem_type="single_label_classification", num_labels=4, metric="mcc")
    assert metrics["probe/C"] == probe.C and probe.C in C_GRID
    assert metrics["probe/rows"] == len(data.splits["train"])
    assert step0_mcc == pytest.approx(probe.valid_metrics["mcc"], abs=0.02)


@pytest.mark.integration
def test_finetune_registers_the_best_checkpoint_with_lineage_and_resumes_as_reused(ray_cluster, tmp_path):
    from hyena_platform.finetune.launch import run_finetune

    uri = register_base(tmp_path)
    # LP-FT (the head fitted on the frozen backbone first) on a token MLP's pooled features
    job = species_job(tmp_path, uri, task={"token_mlp": 32}, head_init="probe")
    events = []
    result = run_finetune(job, source="species.yaml", progress=events.append, ray_logs=False)
    assert result.model_version == 1 and not result.reused
    assert set(result.model_metrics["test"]) == {"accuracy", "macro_f1", "mcc", "auroc"}
    assert set(result.baseline_metrics["test"]) == {"accuracy", "macro_f1", "mcc", "auroc"}

    client = tracking.client(uri)
    version = client.get_model_version("species", "1")
    tags = version.tags
    assert tags["base_model_name"] == "tiny-base" and tags["base_model_version"] == "1"
    assert tags["data_hash"] == hash_files([str(SPECIES)])
    assert tags["task_type"] == "sequence" and tags["problem_type"] == "single_label_classification"
    assert tags["strands"] == "forward"
    assert json.loads(tags["label_names"]) == LABELS
    run = client.get_run(result.run_id)
    val = tracking.metric_history(job.tracking.resolved(), result.run_id, "val/mcc")
    steps_per_epoch = int(run.data.params["resolved.steps_per_epoch"])
    assert [s for s, _ in val] == [0, steps_per_epoch, 2 * steps_per_epoch]  # the probe, then once per epoch
    assert "baseline/test/mcc" in run.data.metrics and "train/loss" in run.data.metrics
    assert any(e.get("val") for e in events) and any(e.get("probe") for e in events)
    assert result.model_metrics["valid"]["mcc"] == pytest.approx(max(v for _, v in val), abs=1e-9)
    check_probe_step(tmp_path, job, uri, run.data.metrics, val[0][1])

    # The registered version is the best checkpoint: reloaded, it reproduces the logged test accuracy.
    model_dir = tracking.download_model("models:/species@candidate", tmp_path / "dl", tracking_uri=uri)
    model = hyena.heads.from_pretrained(model_dir)
    assert model.head_config.label_names == tuple(LABELS) and model.head_config.token_mlp == 32
    from hyena_platform.finetune.data import load_task_data
    from hyena_platform.finetune.evaluate import split_metrics, split_scores

    data = load_task_data(job.data, task="sequence", problem_type="single_label_classification")
    test = data.splits["test"]
    labels, scores = split_scores(model, test, range(len(test)), task="sequence",
                                  problem_type="single_label_classification", batch_size=16)
    assert split_metrics(labels, scores, "single_label_classification")["accuracy"] == pytest.approx(
        run.data.metrics["test/accuracy"], abs=1e-6)

    # Row by row on test: the registered model's rows against the baseline's logged rows give the
    # counts and the difference the run reported.
    from hyena_platform.finetune.paired import load_rows

    paired, bar = result.paired, load_rows(tracking.download_artifact(
        job.tracking.resolved(), result.run_id, "baseline/test_rows.npz", tmp_path / "rows"))
    assert paired is not None and paired.rows == len(test) and bar.labels.tolist() == labels.tolist()
    right, right_bar = scores.argmax(1) == labels, bar.scores.argmax(1) == bar.labels
    assert (paired.model_only, paired.baseline_only, paired.both_wrong) == (
        (right & ~right_bar).sum(), (right_bar & ~right).sum(), (~right & ~right_bar).sum())
    assert paired.difference == pytest.approx(
        result.model_metrics["test"]["mcc"] - result.baseline_metrics["test"]["mcc"], abs=1e-9)
    assert 0 <= paired.mcnemar_p <= 1 and paired.low <= paired.high

    # The version carries a model card: task, labels, the metrics beside the k-mer baseline, lineage.
    readme = (tracking.download_version("models:/species@candidate", tmp_path / "card", tracking_uri=uri)
              / "README.md").read_text()
    test_mcc, baseline_mcc = result.model_metrics["test"]["mcc"], result.baseline_metrics["test"]["mcc"]
    for fact in ("sequence single label classification", "mean pooling of a 32-wide token MLP", ", ".join(LABELS), "model, test", "k-mer baseline, test",
                 f"{test_mcc:.4g}", f"{baseline_mcc:.4g}", "base model: models:/tiny-base/1",
                 f"MLflow run: {result.run_id}", result.data_hash, "head.num_labels",
                 "k-mer frequencies of the whole sequence, k = 1..3", "Row by row on the same test rows: right only "
                 f"by the model {paired.model_only:,}, only by the k-mer baseline {paired.baseline_only:,}"):
        assert fact in readme, fact
    assert f"{test_mcc:.4g}" in version.description and "model, test" in version.description

    again = run_finetune(job, source="species.yaml", ray_logs=False)
    assert again.reused and again.model_version == 1
    assert again.paired == paired  # read back from the run's metrics
    for table in (result.table(), again.table()):  # what the baseline counted, also read back for a reused run
        assert "\nk-mer: k-mer frequencies of the whole sequence, k = 1..3\ntest, row by row: right only" in table
        assert table.endswith(paired.lines()[-1])
    assert len(client.search_model_versions("name='species'")) == 1


@pytest.mark.integration
def test_bad_labels_stop_before_anything_is_tracked(tmp_path, capsys):
    import pyarrow.parquet as pq

    from hyena_platform.cli import main

    table = pq.read_table(SPECIES).to_pydict()
    table["label"][5] = None
    import pyarrow as pa

    pq.write_table(pa.table(table), tmp_path / "bad.parquet")
    lm = HyenaDNAForCausalLM(HyenaConfig(d_model=16, n_layer=1, d_inner=32, filter_order=8, l_max=1026))
    lm.save_pretrained(tmp_path / "base")
    job = tmp_path / "job.yaml"
    job.write_text(f"model: {{init_from: {tmp_path / 'base'}}}\ntask: {{type: sequence}}\n"
                   f"data: {{path: {tmp_path / 'bad.parquet'}}}\n"
                   f"tracking: {{uri: 'sqlite:///{tmp_path}/mlflow.db'}}\n"
                   f"checkpoint: {{storage_path: {tmp_path / 'runs'}}}\n")
    assert main(["finetune", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.parquet: row 6: empty label in column 'label'" in err[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def ray_address(ray_cluster) -> str:
    """The GCS address of the session's local Ray (conftest.ray_cluster), for subprocess drivers."""
    return ray_cluster.get_runtime_context().gcs_address


@pytest.mark.integration
def test_killed_finetune_driver_rerun_resumes_from_its_checkpoint(ray_address, tmp_path):
    """SIGKILL `hyena finetune` after its first checkpoint; the same command resumes from it
    (steps continue, none repeated or missing), then registers the best checkpoint once."""
    uri = register_base(tmp_path)
    data = to_dict(species_job(tmp_path, uri, steps=40, eval_every=4, log_every=1, epochs=1))
    data["scaling"] = {"num_workers": 1, "cpus_per_worker": 0.5, "threads_per_worker": 1}
    job_file = tmp_path / "species.yaml"
    job_file.write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_ADDRESS": ray_address, "PYTHONUNBUFFERED": "1"}
    storage = tmp_path / "runs" / "species"

    lines, done = kill_after_first_checkpoint("finetune", tmp_path, job_file, env, storage, timeout_s=480)
    assert done and max(done) < 40, "the driver was killed too late"

    second = run_cli("finetune", tmp_path, job_file, env)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert "resumed from the checkpoint at step" in out and "registered models:/species/1" in out, out

    client = tracking.client(uri)
    runs = client.search_runs([client.get_experiment_by_name("ft").experiment_id])
    assert len(runs) == 1, "the rerun must continue the same MLflow run"
    run = runs[0]
    assert run.info.status == "FINISHED"
    cfg = TrackingConfig(uri=uri).resolved()
    resumed = tracking.metric_history(cfg, run.info.run_id, "train/resumed_from_step")
    assert len(resumed) == 1 and resumed[0][1] >= 4 and resumed[0][1] % 4 == 0  # a checkpoint's step, not 0
    assert [s for s, _ in tracking.metric_history(cfg, run.info.run_id, "train/loss")] == list(range(1, 41)), \
        "".join(lines) + "\n--- rerun ---\n" + out
    assert [s for s, _ in tracking.metric_history(cfg, run.info.run_id, "val/mcc")] == list(range(4, 41, 4))
    versions = client.search_model_versions("name='species'")
    assert len(versions) == 1 and versions[0].run_id == run.info.run_id
    best = max(tracking.metric_history(cfg, run.info.run_id, "val/mcc"), key=lambda sv: (sv[1], -sv[0]))
    assert versions[0].tags["best_step"] == str(best[0])  # the best validation before or after the kill


@pytest.mark.integration
def test_early_stopping_stops_after_patience_and_registers_the_best_weights(ray_cluster, tmp_path):
    """A valid split that the training makes worse: the train windows again, with the two species'
    labels swapped, so every step that fits train lowers valid AUROC (exactly 1 - train AUROC).
    The run must stop `patience` validations after its best one, long before `train.steps`, and
    register the best weights, not the last ones. The head reads both strands (task.strands both):
    its registered version reloads as such and reproduces the best validation."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hyena_platform.finetune.data import load_task_data
    from hyena_platform.finetune.evaluate import split_metrics, split_scores
    from hyena_platform.finetune.launch import run_finetune

    rows = pq.read_table(SPECIES).to_pydict()
    keep = [i for i, label in enumerate(rows["label"]) if label in ("S.Aureus", "V.Cholerae")]
    swap = {"S.Aureus": "V.Cholerae", "V.Cholerae": "S.Aureus"}
    files = {}
    for split, source, relabel in (("train", "train", {}), ("valid", "train", swap), ("test", "test", {})):
        picked = [i for i in keep if rows["split"][i] == source]
        files[split] = str(tmp_path / f"{split}.parquet")
        pq.write_table(pa.table({"sequence": [rows["sequence"][i] for i in picked],
                                 "label": [relabel.get(rows["label"][i], rows["label"][i]) for i in picked]}),
                       files[split])
    uri = register_base(tmp_path)
    patience, every, total = 2, 2, 40
    data = to_dict(species_job(tmp_path, uri, steps=total, eval_every=every, patience=patience, metric="auroc",
                               lr=1e-2, log_every=2))
    data["data"] = {"train": files["train"], "valid": files["valid"], "test": files["test"]}
    data["baseline"] = {"enabled": False}
    data["task"]["strands"] = "both"
    data["scaling"] = {"num_workers": 1, "cpus_per_worker": 0.5, "threads_per_worker": 1}
    job = from_mapping(FinetuneJob, data, source="early.yaml")
    result = run_finetune(job, source="early.yaml", ray_logs=False)

    cfg = job.tracking.resolved()
    history = tracking.metric_history(cfg, result.run_id, "val/auroc")
    best_step, best_value = max(history, key=lambda sv: (sv[1], -sv[0]))
    assert result.stopped_early and result.best_step == best_step
    assert result.steps == best_step + patience * every < total, history
    assert [s for s, _ in history] == list(range(every, result.steps + 1, every))
    assert history[-1][1] < best_value, history  # the last weights are worse than the best ones

    # The registered version holds the best weights: they reproduce the best validation, not the last.
    model = hyena.heads.from_pretrained(tracking.download_model("models:/species@candidate", tmp_path / "dl",
                                                                tracking_uri=uri))
    assert model.head_config.strands == "both"
    valid = load_task_data(job.data, task="sequence", problem_type="single_label_classification").splits["valid"]
    labels, scores = split_scores(model, valid, range(len(valid)), task="sequence",
                                  problem_type="single_label_classification", batch_size=16)
    assert split_metrics(labels, scores, "single_label_classification")["auroc"] == pytest.approx(best_value, abs=1e-6)
    assert result.model_metrics["valid"]["auroc"] == pytest.approx(best_value, abs=1e-6)
