"""Launch a fine-tuning job on Ray Train; leave a tracked MLflow run and a registered task model.

    result = run_finetune(load_finetune_job("jobs/finetune_species.yaml"), source="jobs/finetune_species.yaml")
    print(result.table())   # model vs k-mer baseline on valid and test

The driver's steps, in order: the base model (checkpoint directory or models:/, with lineage),
the labelled data (read, checked, lengths fitted to the model), the plan (steps, epochs,
validations), the MLflow run of this Ray Train run (same storage + name = resume; a finished run
is reused unless ``fresh``), the k-mer baseline, the TorchTrainer (shared machinery of
pretraining: Ray start-up, storage, env params, checkpoint layout, optimizer, progress tail),
and the registration of the best checkpoint with lineage tags.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from hyena_platform import tracking
from hyena_platform.config import to_dict
from hyena_platform.errors import ConfigError, HyenaPlatformError, InputError
from hyena_platform.finetune.config import FinetuneJob
from hyena_platform.finetune.examples import TaskData, balanced_class_weights, fit_lengths
from hyena_platform.finetune.metrics import METRICS

ProgressFn = Callable[[dict[str, Any]], None]
MODEL_VERSION_TAG = "hyena.model_version"
RESUME_STRICT = ("model.", "task.", "data.", "train.", "baseline.", "resolved.")


class FinetuneStoppedError(HyenaPlatformError):
    """Training stopped on a non-finite loss; nothing was registered."""


@dataclass(frozen=True)
class BaseModel:
    directory: Path  # a local checkpoint directory (downloaded for models:/)
    lineage: dict[str, str]  # base_model_name/version/run_id, or base_model_path/hash


@dataclass
class FinetuneResult:
    run_id: str
    run_name: str
    tracking_uri: str
    model_name: str
    model_version: int
    alias: str
    metric: str
    problem_type: str
    model_metrics: dict[str, dict[str, float]]  # valid/test -> metric -> value (best checkpoint)
    baseline_metrics: dict[str, dict[str, float]]
    steps: int
    best_step: int | None
    stopped_early: bool
    checkpoint_path: str
    data_hash: str
    reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.alias}"

    @property
    def version_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"

    def table(self) -> str:
        """Model (best checkpoint) beside the k-mer baseline, valid and test."""
        cols = [("model", "valid"), ("model", "test"), ("k-mer", "valid"), ("k-mer", "test")]
        lines = [f"{'metric':<10}" + "".join(f"{f'{who} {split}':>13}" for who, split in cols)]
        for m in METRICS[self.problem_type]:
            cells = []
            for who, split in cols:
                source = self.model_metrics if who == "model" else self.baseline_metrics
                value = (source.get(split) or {}).get(m)
                cells.append(f"{value:13.4f}" if value is not None and np.isfinite(value) else f"{'-':>13}")
            lines.append(f"{m + ('*' if m == self.metric else ''):<10}" + "".join(cells))
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ steps


def resolve_base(job: FinetuneJob, tracking_uri: str, workdir: Path, *, source: str) -> BaseModel:
    """The base checkpoint as a local directory plus its lineage tags."""
    ref = job.model.init_from
    if ref.startswith("models:/"):
        try:
            info = tracking.model_version(ref, tracking_uri=tracking_uri)
            directory = tracking.download_model(ref, workdir / "base", tracking_uri=tracking_uri)
        except (InputError, ConfigError) as err:
            raise ConfigError(f"{source}: model.init_from: {err}") from None
        return BaseModel(directory, {"base_model_name": info.name, "base_model_version": str(info.version),
                                     "base_model_run_id": info.run_id or "", "base_model_uri": ref})
    path = Path(ref).expanduser()
    if not path.exists():
        raise ConfigError(f"{source}: model.init_from={ref!r}: no such checkpoint directory")
    return BaseModel(path, {"base_model_path": str(path.resolve()), "base_model_hash": directory_hash(path)})


def directory_hash(path: Path) -> str:
    """sha256 over a checkpoint's files (names and bytes): which weights the model started from."""
    h = hashlib.sha256()
    files = sorted(p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path if path.is_dir() else path.parent)).encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def build_start_model(job: FinetuneJob, base: BaseModel, data: TaskData, *, source: str):
    """The task model: the base's backbone and a new head (seeded), in the job's head config."""
    import torch

    from hyena import CheckpointError
    from hyena.heads import TASK_MODELS, HeadConfig

    head = HeadConfig(num_labels=data.num_labels, problem_type=job.task.problem_type, label_names=data.label_names,
                      pooling=job.task.pooling, dropout=job.task.head_dropout)
    torch.manual_seed(job.train.seed)
    try:
        return TASK_MODELS[job.task.type].from_pretrained(base.directory, head=head, **job.model.overrides)
    except (CheckpointError, OSError) as err:
        raise ConfigError(f"{source}: model.init_from={job.model.init_from!r}: cannot load ({err})") from None


def load_data(job: FinetuneJob) -> TaskData:
    from hyena_platform.finetune.data import load_task_data

    return load_task_data(job.data, task=job.task.type, problem_type=job.task.problem_type)


def fit_data_lengths(job: FinetuneJob, data: TaskData, l_max: int) -> None:
    """Sequences longer than the model's l_max: an error, or cropped as data.crop says."""
    for name, split in data.splits.items():
        data.splits[name] = fit_lengths(split, l_max, job.data.crop, split_name=name)


def plan_steps(job: FinetuneJob, n_train: int, *, source: str) -> dict[str, int]:
    per_epoch = n_train // job.train.batch_size
    if per_epoch < 1:
        raise InputError(f"{source}: the train split has {n_train} examples, fewer than train.batch_size="
                         f"{job.train.batch_size}; lower the batch size or add data")
    total = job.train.steps or job.train.epochs * per_epoch
    return {"steps_per_epoch": per_epoch, "total_steps": total, "eval_every": job.train.eval_every or per_epoch}


def class_weights(job: FinetuneJob, data: TaskData, *, source: str) -> list[float] | None:
    cw = job.train.class_weights
    if cw == "none":
        return None
    if cw == "balanced":
        return balanced_class_weights(data.splits["train"], data.num_labels).tolist()
    if len(cw) != data.num_labels:
        raise ConfigError(f"{source}: train.class_weights has {len(cw)} weights for {data.num_labels} classes "
                          f"({', '.join(data.label_names)})")
    return list(cw)


def open_run(job: FinetuneJob, tcfg, params: dict[str, str], *, name: str, run_key: str, fresh: bool,
             source: str) -> tuple[str, Any | None]:
    """(run id, the finished run to reuse or None). Same storage + name = the same run."""
    existing = tracking.find_run(tcfg, run_key)
    if fresh and existing is not None:  # the run directory was cleared by the caller
        tracking.detach_run(tcfg, existing.info.run_id)
        existing = None
    if existing is None:
        run_id = tracking.start_run(tcfg, run_key=run_key, run_name=name, tags={"hyena.job": source,
                                                                             "hyena.storage": run_key})
        tracking.log_params(tcfg, run_id, params)
        tracking.log_text(tcfg, run_id, yaml.safe_dump(to_dict(job), sort_keys=False), "config.yaml")
        return run_id, None
    logged = existing.data.params
    differences = sorted(k for k in params if k.startswith(RESUME_STRICT) and params[k] != logged.get(k))
    if differences:
        k = differences[0]
        raise ConfigError(f"{source}: run {name!r} was started with a different configuration ({k}: "
                          f"{logged.get(k)!r} then, {params.get(k)!r} now); rerun with --fresh to start over, "
                          "or set checkpoint.name to start a new run")
    if existing.info.status == "FINISHED" and existing.data.tags.get(MODEL_VERSION_TAG):
        return existing.info.run_id, existing
    tracking.reopen_run(tcfg, existing.info.run_id)
    return existing.info.run_id, None


def log_baseline(job: FinetuneJob, data: TaskData, tcfg, run_id: str) -> dict[str, dict[str, float]]:
    """Fit the k-mer baseline once per run (a resumed run reads it back)."""
    from hyena_platform.finetune.kmer import run_baseline

    if not job.baseline.enabled:
        return {}
    logged = baseline_from_run(tcfg, run_id, job.task.problem_type)
    if logged:
        return logged
    out = run_baseline(data, data.splits, job.baseline)
    tracking.log_metrics(tcfg, run_id, [(f"baseline/{s}/{k}", v, 0) for s in ("valid", "test")
                                        for k, v in out[s].items()])
    tracking.log_params(tcfg, run_id, {"baseline_fit.train_examples": int(out["train"]["examples"]),
                                       "baseline_fit.features": int(out["train"]["features"])})
    return {s: out[s] for s in ("valid", "test")}


def baseline_from_run(tcfg, run_id: str, problem_type: str) -> dict[str, dict[str, float]]:
    metrics = tracking.get_run(tcfg, run_id).data.metrics
    out = {s: {k: metrics[f"baseline/{s}/{k}"] for k in METRICS[problem_type] if f"baseline/{s}/{k}" in metrics}
           for s in ("valid", "test")}
    return out if out["test"] else {}


# -------------------------------------------------------------------------------------- main


def run_finetune(job: FinetuneJob, *, source: str = "<job>", fresh: bool = False,
                 progress: ProgressFn | None = None, ray_logs: bool = True) -> FinetuneResult:
    """Run (or resume, or reuse) the job; see the module docstring. Bad input stops before any
    file is written or anything tracked. The run directory is owned, locked and cleared on
    `fresh` as pretraining's (hyena_platform.train.rundir)."""
    from hyena_platform.train.launch import environment, storage_uri
    from hyena_platform.train.rundir import run_directory

    t0 = time.perf_counter()
    tcfg = job.tracking.resolved()
    name = job.run_name(source)
    run_key = f"{storage_uri(job.checkpoint.storage_path).rstrip('/')}/{name}"
    with tempfile.TemporaryDirectory(prefix="hyena-finetune-") as workdir:
        base = resolve_base(job, tcfg.uri, Path(workdir), source=source)
        data = load_data(job)
        model = build_start_model(job, base, data, source=source)
        fit_data_lengths(job, data, model.config.l_max)
        plan = plan_steps(job, len(data.splits["train"]), source=source)
        weights = class_weights(job, data, source=source)
        params = {**tracking.flatten(to_dict(job)), **environment(),
                  "resolved.steps": str(plan["total_steps"]), "resolved.steps_per_epoch": str(plan["steps_per_epoch"]),
                  "resolved.label_names": json.dumps(list(data.label_names)), "resolved.data_hash": data.content_hash,
                  "resolved.parameters": str(model.num_parameters()),
                  **{f"resolved.examples.{s}": str(len(v)) for s, v in data.splits.items()},
                  **{f"resolved.{k}": v for k, v in base.lineage.items()}}
        run_dir = run_directory(storage_uri(job.checkpoint.storage_path), name)
        with run_dir.lock(job=f"hyena finetune {source}"):
            if fresh and run_dir.is_ours():  # a new or foreign directory: claim() decides
                run_dir.clear(what="--fresh")  # refused, deleting nothing, unless every file is ours
            run_dir.claim(job=f"hyena finetune {source}")
            run_id, finished = open_run(job, tcfg, params, name=name, run_key=run_key, fresh=fresh, source=source)
            if finished is not None:
                return reused_result(job, tcfg, finished, name)
            timings = {"setup": round(time.perf_counter() - t0, 3)}
            try:
                baseline = log_baseline(job, data, tcfg, run_id)
                timings["baseline"] = round(time.perf_counter() - t0 - sum(timings.values()), 3)
                result = fit(job, model, data, plan, weights, tcfg, run_id, name=name, progress=progress,
                             ray_logs=ray_logs)
                timings["fit"] = round(time.perf_counter() - t0 - sum(timings.values()), 3)
                return register(job, result, data, base, baseline, plan, tcfg, run_id, name=name, timings=timings)
            except BaseException:
                tracking.end_run(tcfg, run_id, "FAILED")
                raise


def fit(job: FinetuneJob, model, data: TaskData, plan: dict, weights, tcfg, run_id: str, *, name: str,
        progress: ProgressFn | None, ray_logs: bool):
    """The TorchTrainer run: the pretraining job's Ray start-up, storage, failure and checkpoint
    policy and progress tail, with the fine-tuning loop and callback."""
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from hyena_platform.finetune.callback import FinetuneCallback
    from hyena_platform.finetune.loop import finetune_loop_per_worker
    from hyena_platform.ray_setup import start_ray
    from hyena_platform.train.launch import Reporter, storage_uri

    start_ray(job.scaling.address, worker_logs=ray_logs)  # as pretraining (report interval included)
    sc = job.scaling
    resources = {"CPU": sc.cpus_per_worker, **({"GPU": sc.gpus_per_worker} if sc.use_gpu else {})}
    progress_dir = tempfile.mkdtemp(prefix="hyena-progress-")
    progress_path = os.path.join(progress_dir, "progress.jsonl")
    config = {"job": job, "plan": plan, "model_config": model.config.to_dict(),
              "head_config": model.head_config.to_dict(), "init_weights": ray.put(model.state_dict()),
              "data": ray.put(data.splits), "class_weights": weights}
    trainer = TorchTrainer(
        finetune_loop_per_worker, train_loop_config=config, torch_config=TorchConfig(backend=sc.torch_backend),
        scaling_config=ray.train.ScalingConfig(num_workers=sc.num_workers, use_gpu=sc.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_uri(job.checkpoint.storage_path),
            failure_config=ray.train.FailureConfig(max_failures=job.checkpoint.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.checkpoint.keep),
            callbacks=[FinetuneCallback(tcfg, run_id, total_steps=plan["total_steps"], metric=job.metric,
                                        progress_path=progress_path)]),
    )
    with Reporter(progress_path, progress):
        return trainer.fit()


def register(job: FinetuneJob, result, data: TaskData, base: BaseModel, baseline: dict, plan: dict, tcfg,
             run_id: str, *, name: str, timings: dict) -> FinetuneResult:
    """Register the best checkpoint (by the validation metric) with its lineage."""
    from hyena_platform.finetune.loop import BEST_DIR

    outcome = result.return_value or {}
    if outcome.get("status") != "done" or result.checkpoint is None:
        raise FinetuneStoppedError(f"fine-tuning stopped at step {outcome.get('step')}: "
                                   f"{outcome.get('message') or 'non-finite loss'}; nothing was registered")
    metric = job.metric
    model_metrics = {"valid": outcome["best_valid"], "test": outcome["test"]}
    with result.checkpoint.as_directory() as directory:
        meta = json.loads((Path(directory) / "meta.json").read_text())["progress"]
        tags = {**base.lineage, "run_id": run_id, "data_hash": data.content_hash, "task_type": job.task.type,
                "problem_type": job.task.problem_type, "label_names": json.dumps(list(data.label_names)),
                "metric": metric, f"val_{metric}": f"{model_metrics['valid'][metric]:.6g}",
                f"test_{metric}": f"{model_metrics['test'][metric]:.6g}", "best_step": meta["best_step"],
                **({f"baseline_test_{metric}": f"{baseline['test'][metric]:.6g}"} if baseline else {})}
        version = tracking.register_model_dir(
            tcfg, run_id, Path(directory) / BEST_DIR, tags=tags,
            description=f"HyenaDNA {job.task.type} {job.task.problem_type} head on {job.model.init_from}, run {name}")
    summary = {"model_uri": f"models:/{tcfg.register_as}@{tcfg.alias}", "version": version, "metric": metric,
               "model": model_metrics, "baseline": baseline, "plan": plan, "best_step": meta["best_step"],
               "stopped_early": meta["stopped_early"], "timings_s": timings, "label_names": list(data.label_names)}
    tracking.log_text(tcfg, run_id, json.dumps(summary, indent=2), "summary.json")
    tracking.set_tags(tcfg, run_id, {MODEL_VERSION_TAG: version, "hyena.data_hash": data.content_hash})
    tracking.end_run(tcfg, run_id, "FINISHED")
    return FinetuneResult(run_id=run_id, run_name=name, tracking_uri=tcfg.uri, model_name=tcfg.register_as,
                          model_version=version, alias=tcfg.alias, metric=metric, problem_type=job.task.problem_type,
                          model_metrics=model_metrics, baseline_metrics=baseline, steps=meta["step"],
                          best_step=meta["best_step"], stopped_early=meta["stopped_early"],
                          checkpoint_path=result.checkpoint.path, data_hash=data.content_hash, timings=timings)


def reused_result(job: FinetuneJob, tcfg, run, name: str) -> FinetuneResult:
    """The result of a run that had already finished (nothing was trained)."""
    metrics = run.data.metrics
    names = METRICS[job.task.problem_type]
    model_metrics = {s: {k: metrics[f"{p}/{k}"] for k in names if f"{p}/{k}" in metrics}
                     for s, p in (("valid", "best_valid"), ("test", "test"))}
    return FinetuneResult(
        run_id=run.info.run_id, run_name=name, tracking_uri=tcfg.uri, model_name=tcfg.register_as,
        model_version=int(run.data.tags[MODEL_VERSION_TAG]), alias=tcfg.alias, metric=job.metric,
        problem_type=job.task.problem_type, model_metrics=model_metrics,
        baseline_metrics=baseline_from_run(tcfg, run.info.run_id, job.task.problem_type),
        steps=int(run.data.params.get("resolved.steps", 0)), best_step=int(run.data.tags.get("hyena.best_step", 0)),
        stopped_early=False, checkpoint_path=run.data.tags.get("hyena.last_checkpoint", ""),
        data_hash=run.data.tags.get("hyena.data_hash", ""), reused=True)
