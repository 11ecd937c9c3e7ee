"""Launch a pretraining job on Ray Train and leave a tracked MLflow run and a registered model.

    result = run_pretrain(load_job("jobs/pretrain_local.yaml"), source="jobs/pretrain_local.yaml")
    result.model_uri  # models:/hyenadna@candidate

`run_pretrain` is a table of contents over named steps, each usable on its own:

    plan = plan_run(job, source)                # model (variant, fields or init_from), stages, names
    run = open_or_resume_run(plan, fresh=...)   # the MLflow run of this Ray Train run, or a reused result
    data = build_datasets(plan, run_id)         # chunks, content hash, held-out windows, stage windows
    log_baselines(plan, run_id, data)           # k-mer baselines on the same held-out windows
    trainer = build_trainer(plan, run_id, data) # TorchTrainer + ReportCallback (MLflow) + progress file
    with Reporter(progress_file, progress): result = trainer.fit()
    register(plan, run_id, result, data)        # the final checkpoint's model as a new model version

Same storage path + run name = the same run: a rerun after a killed driver resumes, a finished
run is reused unless ``fresh``. A fine-tuning job (hyena_platform.finetune.launch) reuses
`owned_run_directory`, `open_or_resume_run`, `build_trainer` (with its own per-worker function,
worker config and callback), `Reporter`, `fit_interruptible`, `check_outcome`, `ending_run` and
`finish_run`; its plan has the attributes of `RunPlan` that these read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform as _platform
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from hyena import HyenaConfig
from hyena_platform import tracking
from hyena_platform.config import to_dict
from hyena_platform.errors import ConfigError, HyenaPlatformError, InputError
from hyena_platform.ray_setup import on_cluster, start_ray
from hyena_platform.train.config import PretrainJob, check_job
from hyena_platform.train.data import content_hash, fit_baselines, stage_dataset, validation_windows
from hyena_platform.train.result import (  # noqa: F401 - re-exported: PretrainResult, StageSummary
    MODEL_VERSION_TAG,
    PretrainResult,
    StageSummary,
    median_tokens_per_s,
    pretrain_card,
    reused_result,
    stage_summaries,
)
from hyena_platform.train.schedule import Stage

ProgressFn = Callable[[dict[str, Any]], None]
# Sections whose change makes a resumed run a different experiment (scaling, checkpoint and
# tracking may change between attempts: more workers, another alias, ...).
RESUME_STRICT_SECTIONS = ("model.", "data.", "train.")


class TrainingDivergedError(HyenaPlatformError):
    """The loss or gradient norm became non-finite; the run stopped at the last good checkpoint."""


class TrainingRunError(HyenaPlatformError):
    """A worker or the controller of the Ray Train run failed (out of memory, a crashed process, an
    error in a callback): one line naming the cause; a rerun resumes from the last checkpoint."""

    exit_code = 1


# ----------------------------------------------------------------------------------- helpers


def resolve_model(job: PretrainJob, tracking_uri: str, *, source: str) -> tuple[HyenaConfig, dict | None, str]:
    """(architecture, initial state dict or None, a short description for tags)."""
    m = job.model
    if m.init_from is None:
        return m.hyena_config(), None, m.variant or "custom"
    from hyena import CheckpointError, from_pretrained

    try:
        if m.init_from.startswith("models:/"):
            loaded = tracking.load_model(m.init_from, tracking_uri=tracking_uri)
        else:
            loaded = from_pretrained(m.init_from)
    except (CheckpointError, InputError, OSError, ValueError) as err:
        raise ConfigError(f"{source}: model.init_from={m.init_from!r}: cannot load ({err})") from None
    cfg = loaded.config.replace(**m.overrides) if m.overrides else loaded.config
    return cfg, loaded.state_dict(), f"init_from:{m.init_from}"


def storage_uri(path: str) -> str:
    """A local storage path made absolute (Ray Train needs one); URIs unchanged."""
    return path if "://" in path else str(Path(path).expanduser().resolve())


def environment() -> dict[str, str]:
    """Package versions and hardware, logged as env.* params."""
    import importlib.metadata as md

    import torch

    out = {"env.python": _platform.python_version(), "env.platform": _platform.platform(),
           "env.cpu_count": str(os.cpu_count())}
    for pkg in ("torch", "ray", "mlflow", "numpy", "pyarrow", "hyena-platform"):
        try:
            out[f"env.{pkg}"] = md.version(pkg)
        except md.PackageNotFoundError:
            out[f"env.{pkg}"] = "not installed"
    out["env.cuda"] = torch.version.cuda or "none"
    out["env.gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return out


class _Flag:
    hit = False
    count = 0


@contextlib.contextmanager
def sigint_recorded():
    """Record a SIGINT (Ctrl-C) during the block, then behave as before (KeyboardInterrupt),
    so that the caller knows even when a library caught it and returned normally."""
    flag = _Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def record(signum, frame):
        flag.hit = True
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, record)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def abort_on_sigint(controller, flag: _Flag) -> None:
    """SIGINT during fit: record it and ask Ray Train's controller to abort the run (once; a
    third Ctrl-C gives up waiting)."""
    import ray

    def handler(signum, frame):
        flag.hit = True
        flag.count += 1
        if flag.count >= 3:
            raise KeyboardInterrupt
        if flag.count == 1:
            try:
                ray.get(controller.abort.remote())
            except ray.exceptions.RayActorError:
                pass  # the controller is already gone: fit() returns or raises, we raise after

    signal.signal(signal.SIGINT, handler)


def fit_interruptible(trainer):
    """trainer.fit(), where one Ctrl-C aborts the run and raises KeyboardInterrupt afterwards.

    Ray Train's own Ctrl-C handler aborts the run and then either returns normally (the model
    would be registered) or calls sys.exit inside the handler (exit 1, no message); ours aborts
    it and records the interrupt instead."""
    from ray.train import TrainingFailedError

    with sigint_recorded() as interrupted:
        trainer._register_sigint_handler = lambda controller: abort_on_sigint(controller, interrupted)
        try:
            result = trainer.fit()
        except Exception as err:
            if interrupted.hit:
                raise KeyboardInterrupt from None
            if isinstance(err, TrainingFailedError):
                raise training_failure(err) from None
            raise
    if interrupted.hit:
        raise KeyboardInterrupt
    return result


def training_failure(err: BaseException) -> HyenaPlatformError:
    """Ray Train's WorkerGroupError / ControllerError (a multi-line message and a traceback) as
    one line naming what failed and why: a user error of ours raised in a worker comes back as
    itself; running out of memory says what to lower."""
    from hyena_platform.errors import find_user_error

    failure = getattr(err, "controller_failure", None)
    if getattr(failure, "worker_failures", None):
        return training_failure(failure)  # a worker group error the controller passed on
    failures = getattr(err, "worker_failures", None)
    rank, cause = min(failures.items()) if failures else (None, failure or err)
    where = "the training controller" if rank is None else f"training worker {rank}"
    # A failed health check keeps the worker's death, a RayTaskError the worker's own exception.
    cause = getattr(cause, "health_check_failure", None) or getattr(cause, "cause", None) or cause
    user = find_user_error(cause) or find_user_error(err)
    if user is not None:
        return type(user)(str(user).split("\n")[0])
    text = " ".join((str(cause).strip().splitlines() or [""])[0].split())[:300]
    reason = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    memory = isinstance(cause, MemoryError) or "OutOfMemory" in type(cause).__name__ or any(
        words in str(cause).lower() for words in ("out of memory", "low on memory"))
    advice = ("out of memory: lower train.micro_batch (pretraining) or train.batch_size (fine-tuning), or "
              "free memory; then rerun the same command to resume") if memory else \
        "rerun the same command to resume from the last checkpoint"
    return TrainingRunError(f"{where} failed ({reason}); {advice}")


def check_resources(sc) -> None:
    """ConfigError naming what is missing when the workers cannot all be placed on the Ray
    cluster as it is (each worker's CPUs and GPUs on one node, some CPU left for Ray Data), or
    Ray Train would wait for them forever. A remote cluster counts with the node types its
    autoscaler may add (hyena_platform.cluster_capacity); when it does not report them, it may
    grow to anything: not checked."""
    import ray

    if on_cluster(sc.address):
        from hyena_platform.cluster_capacity import check_remote

        check_remote(workers=sc.num_workers, cpu=sc.cpus_per_worker,
                     gpu=sc.gpus_per_worker if sc.use_gpu else 0.0, what="scaling: Ray Train workers",
                     fix="lower scaling.cpus_per_worker, gpus_per_worker or num_workers, or add a node type "
                         "that large to the cluster")
        return
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    gpu = sc.gpus_per_worker if sc.use_gpu else 0.0
    need_cpu, need_gpu = sc.num_workers * sc.cpus_per_worker, sc.num_workers * gpu
    biggest_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    problems = []
    if need_cpu >= cpus or sc.cpus_per_worker > biggest_cpu:
        problems.append(f"{sc.num_workers} worker(s) x {sc.cpus_per_worker:g} CPU = {need_cpu:g} CPUs, but the "
                        f"Ray cluster has {cpus:g} (and Ray Data needs some for the input pipeline)")
    if need_gpu > gpus + 1e-9:
        problems.append(f"{sc.num_workers} worker(s) x {gpu:g} GPU = {need_gpu:g} GPUs, but the Ray cluster has {gpus:g}")
    if problems:
        raise ConfigError("scaling: " + "; ".join(problems) + "; lower scaling.num_workers, cpus_per_worker or "
                          "gpus_per_worker, or set scaling.address to a larger cluster")


def deterministic_ingest():
    """Ray Train's dataset config with a reproducible feed: blocks keep their order through the
    pipeline (windows, seeded sort-shuffle, limit) and are split among the workers in that
    order, not by whichever worker or node asks first. With train.seed fixed, a CPU run then sees
    the same batches and reports the same losses every time (docs/training.md, Reproducibility)."""
    import ray.train
    from ray.data import DataContext, ExecutionOptions

    # Ray Train's DataConfig.default_ingest_options() copies the deprecated exclude_resources
    # (a RayDeprecationWarning on every run); these are its other defaults, order preserved.
    current = DataContext.get_current().execution_options
    options = ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True,
                               verbose_progress=current.verbose_progress)
    return ray.train.DataConfig(execution_options=options, enable_shard_locality=False)


def _resume_differences(job_params: dict[str, str], logged: dict[str, str], strict: tuple[str, ...]) -> list[str]:
    keys = {k for k in set(job_params) | set(logged) if k.startswith(strict)}
    return sorted(k for k in keys if job_params.get(k) != logged.get(k))


class Reporter:
    """Hands the controller's progress events (a JSON-lines file the ReportCallback appends to)
    to `fn`, from a background thread, while the trainer runs: ``with Reporter(path, fn): ...``."""

    def __init__(self, path: str, fn: ProgressFn | None):
        self.path, self.fn = path, fn
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._tail, daemon=True, name="hyena-progress")

    def __enter__(self) -> "Reporter":
        if self.fn is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fn is not None:
            self.stopping.set()
            self.thread.join(timeout=5)

    def _tail(self) -> None:
        assert self.fn is not None
        offset = 0
        while True:
            stop = self.stopping.is_set()
            try:
                with open(self.path) as f:
                    f.seek(offset)
                    for line in f:
                        if line.endswith("\n"):
                            offset += len(line.encode())
                            self.fn(json.loads(line))
            except FileNotFoundError:
                pass
            if stop:
                return
            self.stopping.wait(0.2)


class Stopwatch:
    """Seconds per phase of the driver, in order (logged in summary.json)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round(now - self._last, 3)
        self._last = now


# ------------------------------------------------------------------------------ the steps


@dataclass(frozen=True)
class RunPlan:
    """Everything resolved before any work: the model, the stages, where the run lives.

    The shared steps read `job` (scaling, checkpoint), `source`, `tracking`, `model_desc`,
    `name`, `storage`, `params`, `run_key`, `total_steps`, `resume_strict` and `reused(run)`:
    a fine-tuning plan has the same."""

    job: PretrainJob
    source: str
    tracking: tracking.TrackingConfig
    model_config: HyenaConfig
    init_state: dict | None
    model_desc: str
    stages: tuple[Stage, ...]
    name: str  # the Ray Train run name
    storage: str  # absolute storage path (or URI)
    params: dict[str, str]  # MLflow params: the job, the resolved model and stages, the environment

    @property
    def run_key(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def total_steps(self) -> int:
        return self.stages[-1].end_step

    @property
    def baseline_orders(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.job.train.baseline_orders)))

    @property
    def resume_strict(self) -> tuple[str, ...]:
        return RESUME_STRICT_SECTIONS

    def reused(self, run) -> PretrainResult:
        """The result of this run when it had already finished."""
        return reused_result(self.tracking, run, self.stages, self.baseline_orders, self.name, self.run_key)


def plan_run(job: PretrainJob, source: str) -> RunPlan:
    """Resolve the model (variant, fields or init_from) and the warm-up stages; ConfigError on problems."""
    tcfg = job.tracking.resolved()
    model_cfg, init_state, model_desc = resolve_model(job, tcfg.uri, source=source)
    stages = check_job(job, source=source, l_max=model_cfg.l_max)
    assert stages is not None
    params = {**tracking.flatten(to_dict(job)),
              **{f"resolved.model.{k}": str(v) for k, v in model_cfg.to_dict().items()},
              "resolved.stages": json.dumps([dataclasses.asdict(s) for s in stages]),
              "resolved.parameters": str(_count_parameters(model_cfg)),
              **environment()}
    return RunPlan(job, source, tcfg, model_cfg, init_state, model_desc, stages, job.run_name(source),
                   storage_uri(job.checkpoint.storage_path), params)


def open_or_resume_run(plan: RunPlan, *, fresh: bool = False) -> Any:
    """The MLflow run id (str) of this Ray Train run (started, or reopened to resume), or
    `plan.reused(run)`, the result of a run that already finished. `fresh` detaches the old run
    (its checkpoints were deleted with the run directory)."""
    tcfg, job = plan.tracking, plan.job
    existing = tracking.find_run(tcfg, plan.run_key)
    if fresh and existing is not None:  # its checkpoints were deleted with the run directory
        tracking.detach_run(tcfg, existing.info.run_id)
        existing = None
    if existing is None:
        run_id = tracking.start_run(tcfg, run_key=plan.run_key, run_name=plan.name, tags={
            "hyena.job": plan.source, "hyena.storage": plan.run_key, "hyena.model": plan.model_desc})
        tracking.log_params(tcfg, run_id, plan.params)
        tracking.log_text(tcfg, run_id, yaml.safe_dump(to_dict(job), sort_keys=False), "config.yaml")
        return run_id
    differences = _resume_differences(plan.params, existing.data.params, plan.resume_strict)
    if differences:
        k = differences[0]
        raise ConfigError(
            f"{plan.source}: run {plan.name!r} in {plan.storage} was started with a different configuration "
            f"({k}: {existing.data.params.get(k)!r} then, {plan.params.get(k)!r} now"
            + (f", and {len(differences) - 1} more" if len(differences) > 1 else "")
            + "); rerun with --fresh to start over, or set checkpoint.name to start a new run"
        )
    if existing.info.status == "FINISHED" and existing.data.tags.get(MODEL_VERSION_TAG):
        return plan.reused(existing)
    tracking.reopen_run(tcfg, existing.info.run_id)
    return existing.info.run_id


@dataclass(frozen=True)
class TrainingData:
    chunks: Any  # GenomeChunks
    data_hash: str
    val: dict[int, tuple[Any, Any]]  # length -> (input_ids, labels) held-out windows
    datasets: dict[str, Any]  # "train_<stage>" -> Ray Dataset of that stage's windows


def build_datasets(plan: RunPlan, run_id: str, clock: Stopwatch | None = None) -> TrainingData:
    """Load the genome chunks once; the content hash, held-out windows per length, stage windows."""
    from hyena_platform.data.pipeline import load_chunks

    clock = clock or Stopwatch()
    job, tcfg = plan.job, plan.tracking
    chunks = load_chunks(job.data)
    clock.lap("load_chunks")
    data_hash = content_hash(chunks, job.data)
    tracking.set_tags(tcfg, run_id, {"hyena.data_hash": data_hash})
    tracking.log_params(tcfg, run_id, {"resolved.data_hash": data_hash})
    lengths = sorted({s.length for s in plan.stages})
    val = {L: validation_windows(chunks, L, job.train.val_windows, data=job.data) for L in lengths}
    clock.lap("validation_windows")
    datasets = {f"train_{s.index}": stage_dataset(chunks, s, data=job.data, global_batch=job.train.global_batch)
                for s in plan.stages}
    return TrainingData(chunks, data_hash, val, datasets)


def log_baselines(plan: RunPlan, run_id: str, data: TrainingData) -> None:
    """Order-k Markov baselines fitted on the training split, evaluated on each stage's held-out
    windows (once per run: a resumed run already has them)."""
    tcfg, orders = plan.tracking, plan.baseline_orders
    if not orders or tracking.metric_history(tcfg, run_id, f"baseline/order_{orders[0]}/bits_per_base"):
        return
    markov = fit_baselines(data.chunks, max(orders))
    rows = []
    for s in plan.stages:
        ids, labels = data.val[s.length]
        for k in orders:
            bpb = markov.bits_per_base(ids, labels, k)
            rows += [(f"baseline/order_{k}/bits_per_base", bpb, s.end_step),
                     (f"baseline/order_{k}/perplexity", 2 ** bpb, s.end_step)]
    tracking.log_metrics(tcfg, run_id, rows)
    tracking.log_params(tcfg, run_id, {"baseline.train_bases": markov.n_train_bases})


def build_trainer(plan: RunPlan, run_id: str, data: TrainingData | None, progress_path: str,
                  train_fn: Callable[[dict], dict] | None = None, worker_config: Any = None, callback: Any = None):
    """The TorchTrainer: scaling and checkpoint sections, the ReportCallback (the single MLflow
    writer, also appending progress events to `progress_path`), the stage datasets.

    `train_fn` / `worker_config` / `callback` default to pretraining's loop, its WorkerConfig
    and ReportCallback; `data` None: no Ray Datasets (fine-tuning ships its examples in the
    worker config).
    """
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from hyena_platform.train.callback import ReportCallback
    from hyena_platform.train.loop import WorkerConfig, train_loop_per_worker

    job, sc = plan.job, plan.job.scaling
    if worker_config is None:
        assert data is not None
        worker_config = WorkerConfig(
            train=job.train, stages=plan.stages, model_config=plan.model_config.to_dict(),
            checkpoint_every=job.checkpoint.every_steps, torch_threads=sc.torch_threads,
            init_weights=ray.put(plan.init_state) if plan.init_state is not None else None,
            val_sets={L: ray.put(v) for L, v in data.val.items()},
        )
    resources = {"CPU": sc.cpus_per_worker, **({"GPU": sc.gpus_per_worker} if sc.use_gpu else {})}
    callback = callback or ReportCallback(plan.tracking, run_id, total_steps=plan.total_steps,
                                          n_stages=len(plan.stages), progress_path=progress_path)
    return TorchTrainer(
        train_fn or train_loop_per_worker, train_loop_config={"worker": worker_config},
        torch_config=TorchConfig(backend=sc.torch_backend),
        scaling_config=ray.train.ScalingConfig(num_workers=sc.num_workers, use_gpu=sc.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=plan.name, storage_path=plan.storage,
            failure_config=ray.train.FailureConfig(max_failures=job.checkpoint.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.checkpoint.keep),
            callbacks=[callback],
        ),
        datasets=data.datasets if data is not None else None,
        dataset_config=deterministic_ingest(),
    )


def check_outcome(plan: RunPlan, run_id: str, result: Any) -> None:
    """A clean stop (non-finite loss) becomes TrainingDivergedError; a missing or short final
    checkpoint is a bug."""
    outcome = result.return_value or {}
    if outcome.get("status") == "stopped":
        where = result.checkpoint.path if result.checkpoint else "none (no checkpoint was written)"
        message = f"{outcome.get('message')}; the last good checkpoint is {where}"
        tracking.set_tags(plan.tracking, run_id, {"hyena.stopped": message})
        tracking.end_run(plan.tracking, run_id, "FAILED")
        raise TrainingDivergedError(
            f"training stopped: {message}. Lower train.lr, check the data, or resume with another config "
            "(--fresh)"
        )
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")  # the loop always saves the last step


def register(plan: RunPlan, run_id: str, result: Any, data: TrainingData) -> tuple[str, list[StageSummary]]:
    """Register the final checkpoint's model directory as a new version (tags, alias, model
    card); returns (version, per-stage summaries)."""
    tcfg, total, data_hash = plan.tracking, plan.total_steps, data.data_hash
    with result.checkpoint.as_directory() as directory:
        meta = json.loads((Path(directory) / "meta.json").read_text())
        if meta["step"] != total:
            raise RuntimeError(f"the last checkpoint is at step {meta['step']}, expected {total}")
        summaries = stage_summaries(tcfg, run_id, plan.stages, plan.baseline_orders)
        final = summaries[-1]
        measured = final.val_loss is not None
        tags = {
            "run_id": run_id, "variant": plan.model_desc, "data_hash": data_hash, "steps": total,
            "seq_len": final.length, "parameters": plan.params["resolved.parameters"],
            "val_perplexity": f"{final.val_perplexity:.6g}" if measured else "nan",
            "val_bits_per_base": f"{final.val_bits_per_base:.6g}" if measured else "nan",
        }
        card = pretrain_card(
            title=f"HyenaDNA {plan.model_desc}, pretrained {total} steps (run {plan.name})",
            model_config=plan.model_config.to_dict(), parameters=int(plan.params["resolved.parameters"]),
            data=plan.job.data, data_hash=data_hash, split_bases=data.chunks.layout.split_bases(),
            stages=summaries,
            lineage={"base model": tracking.lineage_uri(plan.job.model.init_from, tcfg.uri), "MLflow run": run_id,
                     "Ray Train run": plan.run_key, "job": plan.source})
        version = tracking.register_model_dir(
            tcfg, run_id, Path(directory) / "model", tags=tags,
            description=f"HyenaDNA {plan.model_desc}, {total} steps, run {plan.name}", card=card,
        )
    return version, summaries


def finish_run(plan: RunPlan, run_id: str, version: int | str, summary: dict[str, Any]) -> None:
    """summary.json (the model URI and version first), the model-version tag, and the run
    marked FINISHED: a rerun of the job now reuses it."""
    tcfg = plan.tracking
    summary = {"model_uri": f"models:/{tcfg.register_as}@{tcfg.alias}", "version": version, "run_name": plan.name,
               **summary}
    tracking.log_text(tcfg, run_id, json.dumps(summary, indent=2, default=str), "summary.json")
    tracking.set_tags(tcfg, run_id, {MODEL_VERSION_TAG: version})
    tracking.end_run(tcfg, run_id, "FINISHED")


@contextlib.contextmanager
def ending_run(tcfg: tracking.TrackingConfig, run_id: str):
    """The MLflow run of an attempt ends KILLED on Ctrl-C (its checkpoints stay: a rerun
    resumes; nothing is registered) and FAILED on any other error; a diverged run was already
    ended by `check_outcome`."""
    try:
        yield
    except TrainingDivergedError:
        raise
    except KeyboardInterrupt:
        tracking.end_run(tcfg, run_id, "KILLED")
        raise
    except BaseException:
        tracking.end_run(tcfg, run_id, "FAILED")
        raise


@contextlib.contextmanager
def owned_run_directory(storage: str, name: str, *, fresh: bool, job: str):
    """The run directory (storage/name), locked for the block and claimed as ours; `fresh`
    deletes only what Ray Train and this job wrote there (hyena_platform.train.rundir)."""
    from hyena_platform.train.rundir import run_directory

    run_dir = run_directory(storage, name)
    with run_dir.lock(job=job):
        if fresh:
            run_dir.clear(what="--fresh")  # refused, deleting nothing, unless every file is ours
        run_dir.claim(job=job)
        yield run_dir


# -------------------------------------------------------------------------------------- main


def run_pretrain(job: PretrainJob, *, source: str = "<job>", fresh: bool = False,
                 progress: ProgressFn | None = None, ray_logs: bool = False) -> PretrainResult:
    """Run (or resume, or reuse) the job; see the module docstring.

    `progress` receives one event dict per report (stage, step, loss, tokens/s, ETA, held-out
    metrics). `ray_logs=True` forwards Ray's worker logs to this terminal when Ray is started here.
    The run directory (checkpoint.storage_path/name) is locked while the job runs; `fresh`
    deletes only the files Ray Train and this job wrote there (hyena_platform.train.rundir).
    """
    with owned_run_directory(storage_uri(job.checkpoint.storage_path), job.run_name(source), fresh=fresh,
                             job=f"hyena pretrain {source}"):
        return _run_pretrain(job, source=source, fresh=fresh, progress=progress, ray_logs=ray_logs)


def _run_pretrain(job: PretrainJob, *, source: str, fresh: bool, progress: ProgressFn | None,
                  ray_logs: bool) -> PretrainResult:
    """`run_pretrain` inside the run directory's lock: the steps of the module docstring."""
    clock = Stopwatch()
    plan = plan_run(job, source)
    run = open_or_resume_run(plan, fresh=fresh)
    if isinstance(run, PretrainResult):
        return run
    run_id = run
    clock.lap("tracking_setup")
    with ending_run(plan.tracking, run_id):
        start_ray(job.scaling.address, worker_logs=ray_logs)
        check_resources(job.scaling)  # a request the cluster cannot meet would wait forever, silently
        clock.lap("ray_init")
        data = build_datasets(plan, run_id, clock)
        log_baselines(plan, run_id, data)
        clock.lap("baselines")
        progress_path = os.path.join(tempfile.mkdtemp(prefix="hyena-progress-"), "progress.jsonl")
        trainer = build_trainer(plan, run_id, data, progress_path)
        with Reporter(progress_path, progress):
            result = fit_interruptible(trainer)
        clock.lap("fit")
        check_outcome(plan, run_id, result)
        version, summaries = register(plan, run_id, result, data)
        clock.lap("register")
        finish_run(plan, run_id, version, {
            "checkpoint": result.checkpoint.path, "data_hash": data.data_hash,
            "stages": [{**dataclasses.asdict(s), "val_perplexity": s.val_perplexity,
                        "val_bits_per_base": s.val_bits_per_base} for s in summaries],
            "timings_s": clock.timings})
    tcfg = plan.tracking
    return PretrainResult(
        run_id=run_id, run_name=plan.name, tracking_uri=tcfg.uri, experiment=tcfg.experiment,
        model_name=tcfg.register_as, model_version=version, alias=tcfg.alias,
        checkpoint_path=result.checkpoint.path, storage_path=plan.run_key, data_hash=data.data_hash,
        stages=summaries, steps=plan.total_steps, tokens_per_s=median_tokens_per_s(tcfg, run_id),
        timings=clock.timings,
    )


def _count_parameters(cfg: HyenaConfig) -> int:
    """Unique parameters of the model, built on the meta device (no memory, no init cost)."""
    import torch

    from hyena import HyenaDNAForCausalLM

    with torch.device("meta"):
        return HyenaDNAForCausalLM(cfg).num_parameters()
