"""The one place this platform starts or connects to Ray, and sets how much of Ray's output shows.

Every job calls `start_ray(address, ...)`: connect to `address`, else $RAY_ADDRESS, else start a
local Ray bound to 127.0.0.1 (hyena_platform.local_ray; no dashboard); a no-op when this process
is already connected (a test session, a job
that started Ray itself). The terminal shows our progress lines: Ray's own loggers stay at
WARNING (Ray Data's at CRITICAL: it logs a failing task's whole stack before the driver re-raises
the error, which the CLI prints as one line), Ray Data's progress bars are off unless asked for,
and worker logs reach this terminal only when asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Iterator

# Ray Train's controller polls workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s) and
# each ray.train.report() waits for a poll: 0.1 s keeps frequent reports cheap. Given to the
# job's runtime_env (so every Ray process of the job sees it), never set in this process.
JOB_ENV_VARS = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}
QUIET_LOGGERS = {"ray": logging.WARNING, "ray.train": logging.WARNING, "ray.tune": logging.WARNING,
                 "ray.data": logging.CRITICAL}


def start_ray(address: str | None = None, *, worker_logs: bool = False, progress_bars: bool = False) -> None:
    """Connect to `address` or $RAY_ADDRESS, else start a local Ray; no-op if already connected.

    `worker_logs` forwards the workers' stdout/stderr to this terminal; `progress_bars` shows Ray
    Data's progress bars instead of our progress lines.
    """
    import ray
    import ray.data

    from hyena_platform import local_ray  # a local Ray listens on 127.0.0.1 only

    quiet_ray_logs()
    if not ray.is_initialized():
        local_ray.init(address or os.environ.get("RAY_ADDRESS"), logging_level="WARNING",
                       log_to_driver=worker_logs, runtime_env={"env_vars": dict(JOB_ENV_VARS)})
    set_progress_bars(progress_bars)


def on_cluster(address: str | None) -> bool:
    """True when a job runs on a Ray cluster (`address` or $RAY_ADDRESS), not a local Ray."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def actor_pool_options(address: str | None) -> dict[str, int]:
    """Ray remote options of a batch job's actor pools (map_batches with a class).

    On a cluster, Ray Data's defaults: a replica lost with its node starts again elsewhere and its
    chunk is retried. On a local Ray there is no other node to move to, so no restarts: a replica
    that crashes fails the job with its error (a rerun resumes from the chunks already written).
    This also keeps Ray's core worker from printing, once per actor, that a restartable actor has
    constructor arguments in the object store (Ray Data passes every pool actor its function and
    context as object refs: ray-project/ray#53727)."""
    return {} if on_cluster(address) else {"max_restarts": 0}


@contextlib.contextmanager
def pool_options_accepted() -> Iterator[None]:
    """Around map_batches(..., **actor_pool_options(...)): Ray Data 2.60 takes max_restarts only
    through its extra keyword arguments (its own advice for turning restarts off), which it also
    flags as deprecated for 2.64 with a RayDeprecationWarning; that one notice is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        yield


def quiet_ray_logs() -> None:
    """Ray's and Ray Data's loggers at the levels above (Ray configures them when imported)."""
    import ray.data

    del ray  # imported for its side effect: Ray configures its loggers on import; set the levels after
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def set_progress_bars(enabled: bool) -> None:
    """Ray Data's progress bars on or off (off: also skip its "progress bars disabled" notice)."""
    import ray.data
    from ray.util.debug import log_once

    ray.data.DataContext.get_current().enable_progress_bars = enabled
    if not enabled:
        log_once("ray_data_progress_manager_disabled")
