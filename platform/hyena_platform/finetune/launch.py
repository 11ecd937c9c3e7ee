"""Launch a fine-tuning job on Ray Train; leave a tracked MLflow run and a registered task model.

    result = run_finetune(load_finetune_job("jobs/finetune_species.yaml"), source="jobs/finetune_species.yaml")
    print(result.table())   # model vs k-mer baseline on valid and test, and row by row on test

`run_finetune` is pretraining's table of contents (hyena_platform.train.launch) with two steps
of its own, `plan_finetune` (the base model with its lineage, the labelled data checked and
fitted to the model, the steps) and `log_baseline` (the k-mer baseline); the rest are
pretraining's steps, called as they are:

    plan = plan_finetune(job, source, workdir)          # bad input stops here: nothing written or tracked
    with owned_run_directory(...):                       # locked, claimed, cleared on --fresh
        run = open_or_resume_run(plan, fresh=...)        # same storage + name = resume; finished = reused
        baseline = log_baseline(plan, run_id)
        trainer = build_trainer(plan, run_id, None, progress_file, finetune_loop_per_worker,
                                worker_config(plan), FinetuneCallback(...))
        with Reporter(progress_file, progress): result = fit_interruptible(trainer)
        check_outcome(plan, run_id, result)              # a diverged run registers nothing
        register(plan, run_id, result, baseline)         # best checkpoint, card, paired test, finish_run
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from hyena_platform import tracking
from hyena_platform.config import to_dict
from hyena_platform.errors import ConfigError, InputError
from hyena_platform.finetune.config import FinetuneJob
from hyena_platform.finetune.examples import TaskData, balanced_class_weights, fit_lengths
from hyena_platform.finetune.paired import PairedComparison, ScoredRows, compare, load_rows, save_rows
from hyena_platform.finetune.result import (
    PAIRED_PREFIX,
    FinetuneResult,
    baseline_from_run,
    finetune_card,
    reused_result,
)
from hyena_platform.train.launch import (
    Reporter,
    Stopwatch,
    build_trainer,
    check_outcome,
    check_resources,
    ending_run,
    environment,
    finish_run,
    fit_interruptible,
    open_or_resume_run,
    owned_run_directory,
    storage_uri,
)

ProgressFn = Callable[[dict[str, Any]], None]
# A change in these makes a resumed run another experiment (scaling, checkpoint, tracking may change).
RESUME_STRICT = ("model.", "task.", "data.", "train.", "baseline.", "resolved.")
BASELINE_ROWS = "baseline/test_rows.npz"  # run artifact: the baseline's scored test rows


@dataclass(frozen=True)
class Baseline:
    """The fitted (or logged) k-mer baseline: valid/test metrics ({} without one) and its test rows."""

    metrics: dict[str, dict[str, float]]
    test_rows: ScoredRows | None


@dataclass(frozen=True)
class BaseModel:
    directory: Path  # a local checkpoint directory (downloaded for models:/)
    lineage: dict[str, str]  # base_model_name/version/run_id/uri, or base_model_path/hash


@dataclass(frozen=True)
class FinetunePlan:
    """Everything resolved before any work; the attributes pretraining's shared steps read
    (`train.launch.RunPlan`) and the task's own: base model, data, start model, steps."""

    job: FinetuneJob
    source: str
    tracking: Any  # tracking.TrackingConfig, resolved
    name: str  # the Ray Train run name
    storage: str  # absolute storage path (or URI)
    params: dict[str, str]  # MLflow params: the job, the resolved plan, lineage, environment
    model_desc: str
    base: BaseModel
    data: TaskData
    model: Any  # the task model to start from: the base's backbone and a new head
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    class_weights: tuple[float, ...] | None

    @property
    def run_key(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def resume_strict(self) -> tuple[str, ...]:
        return RESUME_STRICT

    def reused(self, run) -> FinetuneResult:
        return reused_result(self.tracking, run, name=self.name, metric=self.job.metric,
                             problem_type=self.job.task.problem_type)


# ------------------------------------------------------------------------------------ plan


def plan_finetune(job: FinetuneJob, source: str, workdir: Path) -> FinetunePlan:
    """Base model, data, start model and steps; ConfigError/InputError before anything is written."""
    tcfg = job.tracking.resolved()
    base = resolve_base(job, tcfg.uri, workdir, source=source)
    data = load_data(job)
    model = build_start_model(job, base, data, source=source)
    fit_data_lengths(job, data, model.config.l_max)
    steps = plan_steps(job, len(data.splits["train"]), source=source)
    weights = class_weights(job, data, source=source)
    params = {**tracking.flatten(to_dict(job)), **environment(),
              "resolved.steps": str(steps["total_steps"]), "resolved.steps_per_epoch": str(steps["steps_per_epoch"]),
              "resolved.label_names": json.dumps(list(data.label_names)), "resolved.data_hash": data.content_hash,
              "resolved.parameters": str(model.num_parameters()),
              **{f"resolved.examples.{s}": str(len(v)) for s, v in data.splits.items()},
              **{f"resolved.{k}": v for k, v in base.lineage.items()}}
    return FinetunePlan(job, source, tcfg, job.run_name(source), storage_uri(job.checkpoint.storage_path), params,
                        f"finetune:{job.model.init_from}", base, data, model, steps["steps_per_epoch"],
                        steps["total_steps"], steps["eval_every"], tuple(weights) if weights is not None else None)


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
                      pooling=job.task.pooling, strands=job.task.strands, dropout=job.task.head_dropout,
                      token_mlp=job.task.token_mlp, standardize=job.train.head_init == "probe")
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


# ------------------------------------------------------------------------------- the steps


def log_baseline(plan: FinetunePlan, run_id: str, progress: ProgressFn | None = None) -> Baseline:
    """Fit the k-mer baseline once per run (a resumed run reads it back); the fit can take
    minutes, so `progress` hears of it before it starts. Its scored test rows are a run artifact,
    for the paired comparison with the model (finetune.paired)."""
    from hyena_platform.finetune.kmer import run_baseline

    job, tcfg, data = plan.job, plan.tracking, plan.data
    if not job.baseline.enabled:
        return Baseline({}, None)
    logged = baseline_from_run(tcfg, run_id, job.task.problem_type)
    if logged:
        return Baseline(logged, logged_rows(plan, run_id))
    if progress is not None:
        progress({"event": "baseline", "features": job.baseline_features})
    out = run_baseline(data, data.splits, job.baseline, strands=job.task.strands)
    fit = out["train"]
    tracking.log_metrics(tcfg, run_id, [(f"baseline/{s}/{k}", v, 0) for s in ("valid", "test")
                                        for k, v in out[s].items()] + [("baseline/fit_seconds", fit["fit_seconds"], 0)])
    tracking.log_params(tcfg, run_id, {"baseline_fit.train_examples": int(fit["examples"]),
                                       "baseline_fit.features": int(fit["features"]),
                                       "baseline_fit.strength": f"{fit['strength']:g}"})
    with tempfile.TemporaryDirectory(prefix="hyena-baseline-") as tmp:
        folder, _, name = BASELINE_ROWS.rpartition("/")
        save_rows(out["test_rows"], Path(tmp) / name)
        tracking.log_artifact(tcfg, run_id, Path(tmp) / name, folder)
    if progress is not None:
        metric = job.metric
        progress({"event": "baseline_done", "metric": metric, "valid_value": out["valid"][metric], "test_value": out["test"][metric],
                  "examples": int(fit["examples"]), "seconds": fit["fit_seconds"]})
    return Baseline({s: out[s] for s in ("valid", "test")}, out["test_rows"])


def logged_rows(plan: FinetunePlan, run_id: str) -> ScoredRows | None:
    """The baseline's test rows logged by an earlier attempt of the run (None before they were)."""
    with tempfile.TemporaryDirectory(prefix="hyena-baseline-") as tmp:
        path = tracking.download_artifact(plan.tracking, run_id, BASELINE_ROWS, tmp)
        return load_rows(path) if path is not None else None


def paired_comparison(plan: FinetunePlan, outcome: dict, baseline: Baseline) -> PairedComparison | None:
    """The model's test rows against the baseline's (None without both)."""
    job = plan.job
    if outcome.get("test_rows") is None or baseline.test_rows is None:
        return None
    return compare(job.task.problem_type, job.metric, outcome["test_rows"], baseline.test_rows,
                   sequence_task=job.task.type == "sequence", seed=job.baseline.seed)


def worker_config(plan: FinetunePlan):
    """The workers' slice of the job: pretraining's WorkerConfig (one stage of the whole run, the
    model and its head, the start weights) and the task's data and validation rules."""
    import ray

    from hyena_platform.finetune.loop import FinetuneWorkerConfig
    from hyena_platform.train.loop import WorkerConfig
    from hyena_platform.train.schedule import Stage

    job, sc = plan.job, plan.job.scaling
    longest = max(len(t) for t in plan.data.splits["train"].tokens)
    stage = Stage(index=0, length=longest, steps=plan.total_steps, micro_batch=job.train.batch_size // sc.num_workers,
                  grad_accum=1, start_step=0)
    shared = WorkerConfig(
        train=replace(job.train, steps=plan.total_steps), stages=(stage,), model_config=plan.model.config.to_dict(),
        checkpoint_every=job.checkpoint.every_steps, torch_threads=sc.torch_threads,
        init_weights=ray.put(plan.model.state_dict()), head=plan.model.head_config.to_dict(), task=job.task.type,
        freeze_backbone=job.train.freeze_backbone)
    return FinetuneWorkerConfig(
        worker=shared, splits=ray.put(plan.data.splits), problem_type=job.task.problem_type,
        steps_per_epoch=plan.steps_per_epoch, global_batch=job.train.batch_size, eval_every=plan.eval_every,
        eval_batch=job.train.eval_batch, metric=job.metric, patience=job.train.patience,
        class_weights=plan.class_weights, reverse_complement=job.train.reverse_complement,
        probe=job.train.head_init == "probe", test_picks=paired_test_picks(plan))


def paired_test_picks(plan: FinetunePlan):
    """Token tasks with a baseline: the test bases it scores, which the model's test rows pair with."""
    from hyena_platform.finetune.kmer import evaluated_picks

    job = plan.job
    if job.task.type != "token" or not job.baseline.enabled:
        return None
    return evaluated_picks(plan.data.splits["test"], job.baseline, "test")


def run_finetune(job: FinetuneJob, *, source: str = "<job>", fresh: bool = False,
                 progress: ProgressFn | None = None, ray_logs: bool = True) -> FinetuneResult:
    """Run (or resume, or reuse) the job; see the module docstring. Bad input stops before any
    file is written or anything tracked."""
    from hyena_platform.finetune.callback import FinetuneCallback
    from hyena_platform.finetune.loop import finetune_loop_per_worker
    from hyena_platform.ray_setup import start_ray

    clock = Stopwatch()
    with tempfile.TemporaryDirectory(prefix="hyena-finetune-") as workdir:
        plan = plan_finetune(job, source, Path(workdir))
        with owned_run_directory(plan.storage, plan.name, fresh=fresh, job=f"hyena finetune {source}"):
            run = open_or_resume_run(plan, fresh=fresh)
            if isinstance(run, FinetuneResult):
                return run
            run_id: str = run
            clock.lap("setup")
            with ending_run(plan.tracking, run_id):
                baseline = log_baseline(plan, run_id, progress)
                clock.lap("baseline")
                start_ray(job.scaling.address, worker_logs=ray_logs)
                check_resources(job.scaling)  # a request the cluster cannot meet would wait forever
                progress_path = os.path.join(tempfile.mkdtemp(prefix="hyena-progress-"), "progress.jsonl")
                callback = FinetuneCallback(plan.tracking, run_id, total_steps=plan.total_steps, metric=job.metric,
                                            progress_path=progress_path)
                trainer = build_trainer(plan, run_id, None, progress_path, finetune_loop_per_worker,
                                        worker_config(plan), callback)
                with Reporter(progress_path, progress):
                    result = fit_interruptible(trainer)
                clock.lap("fit")
                check_outcome(plan, run_id, result)
                return register(plan, run_id, result, baseline, clock)


def register(plan: FinetunePlan, run_id: str, result, fitted: Baseline, clock: Stopwatch) -> FinetuneResult:
    """Register the best checkpoint (by the validation metric) with its lineage tags and model
    card; the paired comparison with the baseline; summary.json; the run FINISHED (pretraining's
    `finish_run`)."""
    from hyena_platform.finetune.loop import BEST_DIR
    from hyena_platform.train.state import read_meta

    job, tcfg, data = plan.job, plan.tracking, plan.data
    outcome, metric, baseline = result.return_value or {}, job.metric, fitted.metrics
    model_metrics = {"valid": outcome["best_valid"], "test": outcome["test"]}
    paired = paired_comparison(plan, outcome, fitted)
    if paired is not None:
        tracking.log_metrics(tcfg, run_id, [(f"{PAIRED_PREFIX}{k}", v, 0) for k, v in paired.to_metrics().items()])
    with result.checkpoint.as_directory() as directory:
        meta = read_meta(directory)
        best_step, stopped_early = meta["progress"]["best_step"], meta["progress"]["stopped_early"]
        tags = {**plan.base.lineage, "run_id": run_id, "data_hash": data.content_hash, "task_type": job.task.type,
                "problem_type": job.task.problem_type, "strands": job.task.strands,
                "label_names": json.dumps(list(data.label_names)),
                "metric": metric, f"val_{metric}": f"{model_metrics['valid'][metric]:.6g}",
                f"test_{metric}": f"{model_metrics['test'][metric]:.6g}", "best_step": best_step,
                **({f"baseline_test_{metric}": f"{baseline['test'][metric]:.6g}"} if baseline else {})}
        version = tracking.register_model_dir(
            tcfg, run_id, Path(directory) / BEST_DIR, tags=tags, card=card(plan, run_id, model_metrics, baseline, paired),
            description=f"HyenaDNA {job.task.type} {job.task.problem_type} head on {job.model.init_from}, "
                        f"run {plan.name}")
    clock.lap("register")
    finish_run(plan, run_id, version, {
        "metric": metric, "model": model_metrics, "baseline": baseline,
        "paired_test": paired.to_metrics() if paired else None, "best_step": best_step,
        "stopped_early": stopped_early, "steps": meta["step"], "label_names": list(data.label_names),
        "checkpoint": result.checkpoint.path, "data_hash": data.content_hash, "timings_s": clock.timings})
    tracking.set_tags(tcfg, run_id, {"hyena.data_hash": data.content_hash})
    return FinetuneResult(run_id=run_id, run_name=plan.name, tracking_uri=tcfg.uri, model_name=tcfg.register_as,
                          model_version=version, alias=tcfg.alias, metric=metric, problem_type=job.task.problem_type,
                          model_metrics=model_metrics, baseline_metrics=baseline, paired=paired,
                          baseline_features=job.baseline_features if baseline else "", steps=meta["step"],
                          best_step=best_step, stopped_early=stopped_early, checkpoint_path=result.checkpoint.path,
                          data_hash=data.content_hash, timings=clock.timings)


def _token_mlp(width: int) -> str:
    return f" of a {width}-wide token MLP" if width else ""


def card(plan: FinetunePlan, run_id: str, model_metrics: dict, baseline: dict, paired: PairedComparison | None):
    """The registered version's model card: task, labels, metrics vs the k-mer baseline, lineage."""
    job, data = plan.job, plan.data
    task = (f"{'per-base' if job.task.type == 'token' else 'sequence'} "
            f"{job.task.problem_type.replace('_', ' ')}, fine-tuned"
            + (f" ({job.task.pooling} pooling{_token_mlp(job.task.token_mlp)})" if job.task.type == "sequence" else "")
            + (", both strands (the sequence and its reverse complement)" if job.task.strands == "both" else ""))
    sources = {"source": ", ".join(data.sources) or "-", "format": job.data.format}
    train_split = data.splits["train"]
    return finetune_card(
        title=f"HyenaDNA {job.task.type} model for {', '.join(data.label_names)} (run {plan.name})",
        task=task, model_config=plan.model.config.to_dict(), head_config=plan.model.head_config.to_dict(),
        parameters=plan.model.num_parameters(), data=sources, data_hash=data.content_hash,
        splits={s: len(v) for s, v in data.splits.items()}, label_names=data.label_names, metric=job.metric,
        model_metrics=model_metrics, baseline=baseline, baseline_features=job.baseline_features, paired=paired,
        lineage={"base model": tracking.lineage_uri(job.model.init_from, plan.tracking.uri)
                 if job.model.init_from.startswith("models:/") else
                 f"{plan.base.lineage['base_model_path']} (sha256 {plan.base.lineage['base_model_hash'][:16]})",
                 "MLflow run": run_id, "Ray Train run": plan.run_key, "job": plan.source},
        example_sequence=_bases(train_split.tokens[0]) if len(train_split) else "",
    )


def _bases(tokens) -> str:
    """A training example's bases (for the MLflow Model's input example)."""
    from hyena.tokenizer import Tokenizer

    return Tokenizer().decode(tokens)
