"""Shared fixtures: one real local Ray for the whole session, and the bundled genome.

Integration tests take `ray_cluster` (mark them ``@pytest.mark.integration``); Ray starts once,
on first use, with 2 CPUs and no dashboard, and stops at the end of the session. Functions sent
to Ray tasks must live in an importable module (hyena / hyena_platform), not in a test file:
Ray workers cannot import test modules.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest


def pytest_configure(config):
    """Run the suite as a terminal's foreground job runs, with SIGINT handled: a shell starts
    background jobs (`./dev test &`, some CI runners) with SIGINT ignored, and every process the
    tests start (the local Ray's raylet and workers, `hyena` subprocesses) would inherit that.
    The Ctrl-C tests would then send a SIGINT nobody receives, and Ray's workers, cancelled with
    SIGINT when a driver stops, fail inside Ray on the ignored handler. A handler does not survive
    exec, so the children start with SIGINT at its default action."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def bundled_genome() -> Path:
    """The bundled V. cholerae N16961 genome: bgzip FASTA with .fai and .gzi (chrI, chrII)."""
    from hyena_platform.genome_assets import BUNDLED_GENOME

    assert BUNDLED_GENOME.exists(), BUNDLED_GENOME
    return BUNDLED_GENOME


@pytest.fixture(scope="session")
def bundled_bases(bundled_genome) -> dict[str, bytes]:
    """Raw bases of the bundled genome per chromosome, parsed without pyfaidx (an independent reference)."""
    import gzip

    out, name, parts = {}, None, []
    with gzip.open(bundled_genome, "rb") as f:
        for line in f.read().split(b"\n"):
            if line.startswith(b">"):
                if name:
                    out[name] = b"".join(parts)
                name, parts = line[1:].split()[0].decode(), []
            else:
                parts.append(line.strip())
    out[name] = b"".join(parts)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random HyenaDNA checkpoint (d_model 16, 2 layers, l_max 258), one per test module."""
    import torch

    import hyena

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2, l_max=258)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one torch thread, and other test runs share these cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray (2 CPUs, 1 GiB object store), shared by every test of the session."""
    import ray
    import ray.data

    from hyena_platform.local_ray import STARTUP_CONCURRENCY
    from hyena_platform.ray_setup import JOB_ENV_VARS

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=1 << 30,
            log_to_driver=False,
            logging_level="WARNING",
            runtime_env={"env_vars": dict(JOB_ENV_VARS)},  # as hyena_platform.ray_setup.start_ray
            # as hyena_platform.local_ray: the raylet's "N worker processes ... 4x the maximum
            # expected startup concurrency" notice only past 4 x STARTUP_CONCURRENCY workers
            _system_config={"worker_maximum_startup_concurrency": STARTUP_CONCURRENCY},
        )
        started = True
    else:
        started = False
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def bundled_chunks(ray_cluster):
    """The bundled genome as a materialised chunk Dataset (`load_chunks(DataConfig())`)."""
    from hyena_platform.data.config import DataConfig
    from hyena_platform.data.pipeline import load_chunks

    return load_chunks(DataConfig())


@pytest.fixture(scope="session")
def reference_pretrain(ray_cluster, tmp_path_factory):
    """The train/loss history, (step, loss) in logging order, of one uninterrupted run of
    tests/_pretrain_run.py's job. Run once per session: the reproducibility test compares one more
    run of the same seed with it, the resume tests a killed and restarted one."""
    import _pretrain_run

    root = tmp_path_factory.mktemp("pretrain-ref")
    return _pretrain_run.history(root, "whole", _pretrain_run.run_in_process(root, "whole").run_id)
