"""A local Ray that listens on 127.0.0.1 only (issue 11: never listen on the network by default).

On Linux, Ray gives a local node its network address (resolving even an explicit
``_node_ip_address="127.0.0.1"`` to it), so its head, node manager, workers, dashboard agent
and runtime-env agent listen on every interface. Ray binds everything to loopback when it takes
the node's address to be 127.0.0.1, which it does where clusters are not supported (its
``ENABLE_RAY_CLUSTER`` switch, off on macOS and Windows). A local start here turns that switch
off in this process for the duration of ``ray.init`` only (no environment variable is set, no
child process inherits anything) and asks for 127.0.0.1 explicitly; Ray's processes then all
listen on 127.0.0.1 (tests/test_network.py lists their sockets). There is no dashboard.

Two of Ray's notices are about the cluster it starts, and are kept off the terminal of a local
start only: the token-authentication notice (Ray turns token authentication on for a new local
cluster and says so at WARNING; it stays on, the notice is not shown), and the raylet's "N
PYTHON worker processes have been started ... 4x the maximum expected startup concurrency"
(the expected concurrency defaults to the CPU count, 2 on a laptop, while a training job with
its Ray Data feed, or two actor pools, legitimately runs 8 or more workers: the expectation is
raised to `STARTUP_CONCURRENCY` through Ray's own ``worker_maximum_startup_concurrency`` knob).

Connecting to a cluster (an address, or $RAY_ADDRESS) changes nothing: Ray's defaults plus its
token authentication (cluster/*.yaml, README "Cluster workflow"), and its notices as they are.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Iterator

from hyena_platform.errors import ConfigError

LOOPBACK = "127.0.0.1"
# Worker processes the raylet may start at once; it warns when 4x this many are alive.
STARTUP_CONCURRENCY = 8
_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
# ray.init's address forms: "auto", "local", "host:port" (GCS), "ray://host:port" (Ray Client).
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/:]+(:\d+)?|[A-Za-z0-9.\-\[\]:]+:\d+)$")


def check_address(address: str | None, *, key: str = "address") -> None:
    """One-line ConfigError for a Ray address ray.init would reject with a traceback."""
    if address is None or _ADDRESS.match(address.strip()):
        return
    raise ConfigError(f"{key}={address!r} is not a Ray address; use host:port (the head's GCS, e.g. "
                      "10.0.0.5:6379), ray://host:10001, auto, or leave it unset for a local Ray")


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Ray's private ENABLE_RAY_CLUSTER off for one ray.init, then restored (test_local_ray.py).

    Why a private flag: ray.init(_node_ip_address="127.0.0.1") goes through
    ray._private.services.resolve_ip_for_localhost, which maps a loopback address to
    get_node_ip_address(), and that returns 127.0.0.1 only when ray_constants.ENABLE_RAY_CLUSTER is
    false (ray-project/ray#18730, the macOS/Windows firewall fix); otherwise the outgoing
    interface's address. Ray's only public switch for it is RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, an
    environment variable read once when Ray is imported, which library code may not set (and
    which every child process would inherit). The flag is read in this process only, during
    ray.init; the test checks that it and os.environ are as before, even when ray.init fails."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False  # Ray then takes this node's address to be 127.0.0.1
    notice = logging.getLogger(_TOKEN_NOTICE_LOGGER)
    level = notice.level
    notice.setLevel(logging.ERROR)  # "Token authentication is enabled for this Ray cluster" (it is)
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        notice.setLevel(level)


def init(address: str | None, **options: Any) -> None:
    """ray.init: connect to `address` when given, else start a local Ray bound to 127.0.0.1."""
    import ray

    if address:
        check_address(address)
        ray.init(address=address, **options)
        return
    with _loopback_node():
        system = {"worker_maximum_startup_concurrency": STARTUP_CONCURRENCY, **options.pop("_system_config", {})}
        ray.init(address="local", include_dashboard=False, _node_ip_address=LOOPBACK, _system_config=system,
                 **options)
