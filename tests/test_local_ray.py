"""hyena_platform.local_ray: the private Ray switch it needs is scoped to one ray.init.

The effect (every socket of a local run on 127.0.0.1) is tests/test_network.py; this checks the
isolation the guide asks of library code: nothing of Ray's or of os.environ is left changed."""

from __future__ import annotations

import logging
import os

import pytest

from hyena_platform import local_ray


def test_the_loopback_switch_is_restored_even_when_init_fails():
    import ray
    from ray._private import ray_constants, services

    notice = logging.getLogger(local_ray._TOKEN_NOTICE_LOGGER)
    before = (ray_constants.ENABLE_RAY_CLUSTER, notice.level, dict(os.environ))
    assert ray_constants.ENABLE_RAY_CLUSTER is True  # Linux: why the switch is needed at all
    with pytest.raises(RuntimeError, match="ray.init failed"):
        with local_ray._loopback_node():
            # What ray.init does with _node_ip_address="127.0.0.1" while the switch is off (a
            # process already connected answers with its node's address instead).
            if not ray.is_initialized():
                assert services.resolve_ip_for_localhost(local_ray.LOOPBACK) == local_ray.LOOPBACK
            assert notice.level == logging.ERROR
            raise RuntimeError("ray.init failed")
    assert (ray_constants.ENABLE_RAY_CLUSTER, notice.level, dict(os.environ)) == before
