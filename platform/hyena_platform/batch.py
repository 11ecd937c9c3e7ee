"""Shared machinery of the Ray batch jobs (scoring, variant effects, ...): the same shape for each.

    work items (one row per chunk) --map_batches(replica class: actor pool of model replicas,
    CPU or GPU, weights from the object store once per replica)--> one packed result row per
    chunk --map_batches(writer class: small actor pool; write, fsync, rename)--> one status row
    per chunk --> the driver (progress, timings)

A job supplies its replica and writer classes and their constructor arguments; this module
starts Ray, checks that the pools fit the cluster, runs the pipeline, and turns a user error
raised inside a task back into itself (one line, no traceback). Ray is imported only when called.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from hyena_platform.errors import ConfigError, user_errors_from_ray
from hyena_platform.outputs import now
from hyena_platform.ray_setup import on_cluster, start_ray


def init_ray(address: str | None, ray_logs: bool = False, ray_progress: bool | None = None) -> None:
    """Connect to `address` (or $RAY_ADDRESS), else start a local Ray (hyena_platform.ray_setup)."""
    start_ray(address, worker_logs=ray_logs, progress_bars=bool(ray_progress))


def check_resources(compute: Any, address: str | None) -> None:
    """The actor pools of `compute` (score.config.ComputeSection) must fit a fixed local cluster,
    or Ray Data would wait forever; on a remote cluster each replica must fit a live node or a
    node type its autoscaler may add (when it reports them: hyena_platform.cluster_capacity)."""
    import ray

    if on_cluster(address):
        from hyena_platform.cluster_capacity import check_remote

        check_remote(workers=compute.replicas, cpu=compute.cpus_per_replica, gpu=compute.gpus_per_replica,
                     what="compute: model replicas", fix="lower compute.cpus_per_replica, gpus_per_replica or "
                     "replicas, or add a node type that large to the cluster")
        return
    c = compute
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    need = c.replicas * c.cpus_per_replica + c.writers * c.cpus_per_writer
    if need > cpus + 1e-9:
        raise ConfigError(
            f"compute: {c.replicas} replica(s) x {c.cpus_per_replica:g} CPU + {c.writers} writer(s) x "
            f"{c.cpus_per_writer:g} CPU = {need:g} CPUs, but the Ray cluster has {cpus:g}; lower "
            "compute.replicas or compute.cpus_per_replica"
        )
    if c.replicas * c.gpus_per_replica > gpus + 1e-9:
        raise ConfigError(f"compute: {c.replicas} replica(s) x {c.gpus_per_replica:g} GPU, but the Ray "
                          f"cluster has {gpus:g} GPU(s); lower compute.replicas or gpus_per_replica")


def run_pool(items: list[dict[str, Any]], *, compute: Any, replica: type, replica_kwargs: dict[str, Any],
             writer: type, writer_kwargs: dict[str, Any], address: str | None) -> Iterator[dict[str, Any]]:
    """Run `items` through the replica pool, then the writer pool; yield the writers' rows as
    they finish. `replica_kwargs["payload"]` is a model payload (score.scorer.model_payload),
    put in the object store once. `address`: the job's cluster (restarts: ray_setup.actor_pool_options)."""
    import ray
    import ray.data

    from hyena_platform.ray_setup import actor_pool_options, pool_options_accepted

    options = actor_pool_options(address)
    payload = ray.put(replica_kwargs["payload"])
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    with pool_options_accepted():
        ds = ds.map_batches(
            replica, batch_size=1, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(compute.replicas, len(items))),
            num_cpus=compute.cpus_per_replica, num_gpus=compute.gpus_per_replica or None,
            # The weights' ref is wrapped in a list so that Ray passes it through instead of
            # inlining the weights into each actor's constructor arguments (score.scorer.load_payload).
            fn_constructor_kwargs={**replica_kwargs, "payload": [payload]}, **options)
        ds = ds.map_batches(writer, batch_size=1, batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=compute.writers), num_cpus=compute.cpus_per_writer,
                            fn_constructor_kwargs=writer_kwargs, **options)
    # A user error raised in an actor (a bad FASTA character) reaches the driver as itself
    # (RayTaskError(InputError), .cause), not as a UserCodeException that lost its cause.
    ds.context.raise_original_map_exception = True
    try:
        with user_errors_from_ray():
            yield from ds.iter_rows()
    finally:
        del payload


def end_run_quietly(run: tuple[Any, str], status: str) -> None:
    """Mark an MLflow run ended without hiding the error that ended it."""
    from hyena_platform import tracking

    try:
        tracking.end_run(run[0], run[1], status)
    except Exception as err:  # noqa: BLE001 - the original error is the one to report
        logging.getLogger(__name__).warning("could not mark MLflow run %s %s: %s", run[1], status, err)


def record_failure(err: BaseException, attempt: dict[str, Any], manifest: dict[str, Any],
                   save: Callable[[], Any], run: tuple[Any, str] | None, finished: str) -> None:
    """A batch job stopped by `err`: its attempt and manifest say so (a rerun resumes from the
    chunks already written) and its MLflow run ends KILLED (Ctrl-C) or FAILED. The caller re-raises."""
    status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
    attempt.update(status=status, finished=finished, error=" ".join(str(err).split())[:500])
    manifest["status"] = status
    save()
    if run is not None:
        end_run_quietly(run, "KILLED" if status == "interrupted" else "FAILED")


_Plan = TypeVar("_Plan")
_Result = TypeVar("_Result")


def run_locked(output_path: str, *, job: str, plan: Callable[[], _Plan], output: Callable[[Path], Any],
               body: Callable[[_Plan, Any, Path, float], _Result]) -> _Result:
    """The frame of every batch job: `plan()` makes every input check before anything is written,
    then `body(plan, out, root, t_start)` runs with the output directory `output(root)` locked,
    so that two jobs never write one directory (`job` names the holder in the lock)."""
    t_start = time.perf_counter()
    planned = plan()
    root = Path(output_path).expanduser().resolve()
    out = output(root)
    with out.lock(job=job):
        return body(planned, out, root, t_start)


def run_attempt(manifest: dict[str, Any], save: Callable[[], Any], run: tuple[Any, str] | None,
                body: Callable[[dict[str, Any]], _Result],
                finish_run: Callable[[tuple[Any, str], _Result], None]) -> _Result:
    """One attempt of a batch job, recorded in its manifest (`save` writes it): started, then
    whatever `body(attempt)` records, or failed / interrupted (record_failure) if it raises. The
    MLflow run is finished only after the results are complete, whatever happens to it then."""
    attempt: dict[str, Any] = {"started": now(), "status": "running"}
    manifest["attempts"].append(attempt)
    save()
    try:
        result = body(attempt)
    except BaseException as err:
        record_failure(err, attempt, manifest, save, run, finished=now())
        raise
    if run is not None:
        finish_run(run, result)
    return result


def max_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Progress = Callable[[dict[str, Any]], None]


def table_to_bytes(table) -> bytes:
    """Arrow IPC stream bytes: a chunk's table travels between driver, replica and writer as one value."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_bytes(blob: Any):
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()
