"""A local Ray that listens on 127.0.0.1 only (issue 11: never listen on the network by default).

On Linux, Ray gives a local node its network address (resolving even an explicit
``_node_ip_address="127.0.0.1"`` to it: ray._private.services.resolve_ip_for_localhost, which also
rewrites a 127.0.0.1 address a driver connects to), so its GCS, node manager, workers and agents
listen on every interface. Ray binds everything to loopback when it takes the node's address to
be 127.0.0.1, which it does where multi-node clusters are switched off: its public switch
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (`CLUSTER_SWITCH`; off by default on macOS and Windows,
ray-project/ray#18730), read once when Ray is imported. (Another loopback address such as
127.0.0.2 is not rewritten, but then Ray's gRPC servers listen on every interface.)

So the switch belongs in the environment a process starts with, never in a running process's
os.environ or Ray's config: the `hyena` program starts with it (hyena_platform.cli.console, on
Linux, when no RAY_ADDRESS names a cluster), and a local start here asks for 127.0.0.1; Ray's
processes then all listen on 127.0.0.1 (tests/test_network.py lists their sockets). Another
Python program that calls the platform's jobs gets the same by starting with the switch in its
environment, or by calling ray.init itself. There is no dashboard.

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

import logging
import re
from typing import Any

from hyena_platform.errors import ConfigError
from hyena_platform.log_levels import logger_level

LOOPBACK = "127.0.0.1"
# Ray's public switch: no multi-node cluster, so this node's address is 127.0.0.1 (see above).
CLUSTER_SWITCH = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
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


def init(address: str | None, **options: Any) -> None:
    """ray.init: connect to `address` when given, else start a local Ray bound to 127.0.0.1."""
    import ray

    if address:
        check_address(address)
        ray.init(address=address, **options)
        return
    with logger_level(_TOKEN_NOTICE_LOGGER, logging.ERROR):  # "Token authentication is enabled" (it is)
        system = {"worker_maximum_startup_concurrency": STARTUP_CONCURRENCY, **options.pop("_system_config", {})}
        ray.init(address="local", include_dashboard=False, _node_ip_address=LOOPBACK, _system_config=system,
                 **options)
