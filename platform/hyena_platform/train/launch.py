"""Launch a pretraining job on Ray Train and leave a tracked MLflow run and a registered model.

    result = run_pretrain(load_job("jobs/pretrain_local.yaml"), source="jobs/pretrain_local.yaml")
    result.model_uri  # models:/hyenadna@candidate

Order of work (the driver): resolve the model (variant, fields or init_from) and the warm-up
stages; find or open the MLflow run of this Ray Train run (same storage path + name = the same
run: a rerun after a killed driver resumes, a finished run is reused unless ``fresh``); load the
genome chunks; build each stage's training windows and a fixed set of held-out windows per
stage length; fit the k-mer baselines on the training split and evaluate them on those windows;
run the TorchTrainer (the controller-side ReportCallback logs metrics); register the final
checkpoint's model directory as a new model version with tags and the alias.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform as _platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from hyena import HyenaConfig
from hyena_platform import tracking
from hyena_platform.config import to_dict
from hyena_platform.errors import ConfigError, HyenaPlatformError, InputError
from hyena_platform.train.config import PretrainJob, check_job
from hyena_platform.train.result import (  # noqa: F401 - re-exported: PretrainResult, StageSummary
    MODEL_VERSION_TAG,
    PretrainResult,
    StageSummary,
    median_tokens_per_s,
    pretrain_card,
    reused_result,
    stage_summaries,
)

ProgressFn = Callable[[dict[str, Any]], None]
# Sections whose change makes a resumed run a different experiment (scaling, checkpoint and
# tracking may change between attempts: more workers, another alias, ...).
RESUME_STRICT_SECTIONS = ("model.", "data.", "train.")


class TrainingDivergedError(HyenaPlatformError):
    """The loss or gradient norm became non-finite; the run stopped at the last good checkpoint."""


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


def ensure_ray(job: PretrainJob, *, log_to_driver: bool = True) -> None:
    """Connect to scaling.address or RAY_ADDRESS, else start a local Ray; no-op if connected."""
    import ray

    if ray.is_initialized():
        return
    from hyena_platform import local_ray

    local_ray.init(job.scaling.address or os.environ.get("RAY_ADDRESS"), logging_level="WARNING",
                   log_to_driver=log_to_driver)


def _resume_differences(job_params: dict[str, str], logged: dict[str, str]) -> list[str]:
    keys = {k for k in set(job_params) | set(logged) if k.startswith(RESUME_STRICT_SECTIONS)}
    return sorted(k for k in keys if job_params.get(k) != logged.get(k))


class _ProgressTail(threading.Thread):
    """Tails the controller's JSON-lines progress file and hands each event to `fn`."""

    def __init__(self, path: str, fn: ProgressFn):
        super().__init__(daemon=True, name="hyena-progress")
        self.path, self.fn = path, fn
        self.stopping = threading.Event()

    def run(self) -> None:
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


# -------------------------------------------------------------------------------------- main


def run_pretrain(job: PretrainJob, *, source: str = "<job>", fresh: bool = False,
                 progress: ProgressFn | None = None, ray_logs: bool = True) -> PretrainResult:
    """Run (or resume, or reuse) the job; see the module docstring.

    `progress` receives one event dict per report (stage, step, loss, tokens/s, ETA, held-out
    metrics). `ray_logs=False` keeps Ray's worker logs off this terminal when Ray is started here.
    The run directory (checkpoint.storage_path/name) is locked while the job runs; `fresh`
    deletes only the files Ray Train and this job wrote there (hyena_platform.train.rundir).
    """
    from hyena_platform.train.rundir import run_directory

    run_dir = run_directory(storage_uri(job.checkpoint.storage_path), job.run_name(source))
    with run_dir.lock(job=f"hyena pretrain {source}"):
        if fresh:
            run_dir.clear(what="--fresh")  # refused, deleting nothing, unless every file is ours
        run_dir.claim(job=f"hyena pretrain {source}")
        return _run_pretrain(job, source=source, fresh=fresh, progress=progress, ray_logs=ray_logs)


def _run_pretrain(job: PretrainJob, *, source: str, fresh: bool, progress: ProgressFn | None,
                  ray_logs: bool) -> PretrainResult:
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from hyena_platform.data.pipeline import layout_of, load_chunks
    from hyena_platform.train.callback import ReportCallback
    from hyena_platform.train.data import content_hash, fit_baselines, stage_dataset, validation_windows
    from hyena_platform.train.loop import train_loop_per_worker

    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        timings[phase] = round(now - clock[0], 3)
        clock[0] = now

    tcfg = job.tracking.resolved()
    model_cfg, init_state, model_desc = resolve_model(job, tcfg.uri, source=source)
    stages = check_job(job, source=source, l_max=model_cfg.l_max)
    assert stages is not None
    total = stages[-1].end_step
    name = job.run_name(source)
    storage = storage_uri(job.checkpoint.storage_path)
    run_key = f"{storage.rstrip('/')}/{name}"

    # ---- MLflow: find the run of this Ray Train run, or start one
    params = {**tracking.flatten(to_dict(job)),
              **{f"resolved.model.{k}": str(v) for k, v in model_cfg.to_dict().items()},
              "resolved.stages": json.dumps([dataclasses.asdict(s) for s in stages]),
              "resolved.parameters": str(_count_parameters(model_cfg)),
              **environment()}
    existing = tracking.find_run(tcfg, run_key)
    if fresh:
        if existing is not None:
            tracking.detach_run(tcfg, existing.info.run_id)
            existing = None
    if existing is not None:
        differences = _resume_differences(params, existing.data.params)
        if differences:
            k = differences[0]
            raise ConfigError(
                f"{source}: run {name!r} in {storage} was started with a different configuration "
                f"({k}: {existing.data.params.get(k)!r} then, {params.get(k)!r} now"
                + (f", and {len(differences) - 1} more" if len(differences) > 1 else "")
                + "); rerun with --fresh to start over, or set checkpoint.name to start a new run"
            )
        run_id = existing.info.run_id
        version = existing.data.tags.get(MODEL_VERSION_TAG)
        if existing.info.status == "FINISHED" and version:
            return reused_result(tcfg, existing, stages, tuple(sorted(set(job.train.baseline_orders))), name,
                                 run_key)
        tracking.reopen_run(tcfg, run_id)
    else:
        run_id = tracking.start_run(tcfg, run_key=run_key, run_name=name, tags={
            "hyena.job": source, "hyena.storage": run_key, "hyena.model": model_desc})
        tracking.log_params(tcfg, run_id, params)
        tracking.log_text(tcfg, run_id, yaml.safe_dump(to_dict(job), sort_keys=False), "config.yaml")
    lap("tracking_setup")

    try:
        ensure_ray(job, log_to_driver=ray_logs)
        if not ray_logs:
            import logging

            import ray.data

            logging.getLogger("ray.data").setLevel(logging.ERROR)
            ray.data.DataContext.get_current().enable_progress_bars = False
        lap("ray_init")
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")  # report() can block up to this long

        # ---- data, held-out windows, baselines
        chunks = load_chunks(job.data)
        lap("load_chunks")
        data_hash = content_hash(chunks, job.data)
        tracking.set_tags(tcfg, run_id, {"hyena.data_hash": data_hash})
        tracking.log_params(tcfg, run_id, {"resolved.data_hash": data_hash})
        lengths = sorted({s.length for s in stages})
        val = {L: validation_windows(chunks, L, job.train.val_windows, data=job.data) for L in lengths}
        lap("validation_windows")
        orders = tuple(sorted(set(job.train.baseline_orders)))
        if orders and not tracking.metric_history(tcfg, run_id, f"baseline/order_{orders[0]}/bits_per_base"):
            markov = fit_baselines(chunks, max(orders))
            rows = []
            for s in stages:
                ids, labels = val[s.length]
                for k in orders:
                    bpb = markov.bits_per_base(ids, labels, k)
                    rows += [(f"baseline/order_{k}/bits_per_base", bpb, s.end_step),
                             (f"baseline/order_{k}/perplexity", 2 ** bpb, s.end_step)]
            tracking.log_metrics(tcfg, run_id, rows)
            tracking.log_params(tcfg, run_id, {"baseline.train_bases": markov.n_train_bases})
        lap("baselines")
        datasets = {f"train_{s.index}": stage_dataset(chunks, s, data=job.data, global_batch=job.train.global_batch)
                    for s in stages}

        # ---- the TorchTrainer
        sc = job.scaling
        resources = {"CPU": sc.cpus_per_worker, **({"GPU": sc.gpus_per_worker} if sc.use_gpu else {})}
        progress_dir = tempfile.mkdtemp(prefix="hyena-progress-")
        progress_path = os.path.join(progress_dir, "progress.jsonl")
        loop_config = {
            "job": job, "stages": stages, "model_config": model_cfg.to_dict(),
            "init_weights": ray.put(init_state) if init_state is not None else None,
            "val_sets": {L: ray.put(v) for L, v in val.items()},
        }
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config=loop_config,
            torch_config=TorchConfig(backend=sc.torch_backend),
            scaling_config=ray.train.ScalingConfig(num_workers=sc.num_workers, use_gpu=sc.use_gpu,
                                                   resources_per_worker=resources),
            run_config=ray.train.RunConfig(
                name=name, storage_path=storage,
                failure_config=ray.train.FailureConfig(max_failures=job.checkpoint.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.checkpoint.keep),
                callbacks=[ReportCallback(tcfg, run_id, total_steps=total, n_stages=len(stages),
                                          progress_path=progress_path)],
            ),
            datasets=datasets,
        )
        tail = _ProgressTail(progress_path, progress) if progress else None
        if tail:
            tail.start()
        try:
            result = trainer.fit()
        finally:
            if tail:
                tail.stopping.set()
                tail.join(timeout=5)
        lap("fit")

        # ---- the outcome
        outcome = result.return_value or {}
        if outcome.get("status") == "stopped":
            where = result.checkpoint.path if result.checkpoint else "none (no checkpoint was written)"
            message = f"{outcome.get('message')}; the last good checkpoint is {where}"
            tracking.set_tags(tcfg, run_id, {"hyena.stopped": message})
            tracking.end_run(tcfg, run_id, "FAILED")
            raise TrainingDivergedError(
                f"training stopped: {message}. Lower train.lr, check the data, or resume with another config "
                "(--fresh)"
            )
        if result.checkpoint is None:
            raise RuntimeError("training finished without a checkpoint")  # the loop always saves the last step
        with result.checkpoint.as_directory() as directory:
            meta = json.loads((Path(directory) / "meta.json").read_text())
            if meta["step"] != total:
                raise RuntimeError(f"the last checkpoint is at step {meta['step']}, expected {total}")
            summaries = stage_summaries(tcfg, run_id, stages, orders)
            final = summaries[-1]
            tags = {
                "run_id": run_id, "variant": model_desc, "data_hash": data_hash, "steps": total,
                "seq_len": final.length, "parameters": params["resolved.parameters"],
                "val_perplexity": f"{final.val_perplexity:.6g}" if final.val_loss is not None else "nan",
                "val_bits_per_base": f"{final.val_bits_per_base:.6g}" if final.val_loss is not None else "nan",
            }
            card = pretrain_card(
                title=f"HyenaDNA {model_desc}, pretrained {total} steps (run {name})",
                model_config=model_cfg.to_dict(), parameters=int(params["resolved.parameters"]), data=job.data,
                data_hash=data_hash, split_bases=layout_of(chunks).split_bases(), stages=summaries,
                lineage={"base model": tracking.lineage_uri(job.model.init_from, tcfg.uri), "MLflow run": run_id,
                         "Ray Train run": run_key, "job": source})
            version = tracking.register_model_dir(
                tcfg, run_id, Path(directory) / "model", tags=tags,
                description=f"HyenaDNA {model_desc}, {total} steps, run {name}", card=card,
            )
        summary = {
            "model_uri": f"models:/{tcfg.register_as}@{tcfg.alias}", "version": version, "run_name": name,
            "checkpoint": result.checkpoint.path, "data_hash": data_hash,
            "stages": [{**dataclasses.asdict(s), "val_perplexity": s.val_perplexity,
                        "val_bits_per_base": s.val_bits_per_base} for s in summaries],
        }
        lap("register")
        summary["timings_s"] = timings
        tracking.log_text(tcfg, run_id, json.dumps(summary, indent=2), "summary.json")
        tracking.set_tags(tcfg, run_id, {MODEL_VERSION_TAG: version})
        tracking.end_run(tcfg, run_id, "FINISHED")
    except TrainingDivergedError:
        raise
    except BaseException:
        tracking.end_run(tcfg, run_id, "FAILED")
        raise
    return PretrainResult(
        run_id=run_id, run_name=name, tracking_uri=tcfg.uri, experiment=tcfg.experiment,
        model_name=tcfg.register_as, model_version=version, alias=tcfg.alias,
        checkpoint_path=result.checkpoint.path, storage_path=run_key, data_hash=data_hash,
        stages=summaries, steps=total, tokens_per_s=median_tokens_per_s(tcfg, run_id), timings=timings,
    )


def _count_parameters(cfg: HyenaConfig) -> int:
    """Unique parameters of the model, built on the meta device (no memory, no init cost)."""
    import torch

    from hyena import HyenaDNAForCausalLM

    with torch.device("meta"):
        return HyenaDNAForCausalLM(cfg).num_parameters()
