"""A request no node can hold fails up front in one line instead of waiting forever (issue 11):
against the local Ray's explicit small resources, against the node types of the cluster YAMLs
we ship (cluster/aws.yaml, gcp.yaml), and against a remote cluster whose autoscaler reports its
node types to the GCS (the report is mocked: it holds cluster/aws.yaml's node types, as the
autoscaler would send them; no cloud API can be reached here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hyena_platform import cluster_capacity as cap
from hyena_platform.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def launcher(name: str) -> dict:
    return yaml.safe_load((REPO / "cluster" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["aws", "gcp"])
def test_the_shipped_cluster_job_fits_the_node_types_and_a_larger_one_is_one_line(name):
    shapes = cap.shapes_from_launcher_config(launcher(name))
    assert {s.name: (s.cpu, s.gpu, s.count) for s in shapes}["gpu"] == (8.0, 1.0, 8)
    job = yaml.safe_load((REPO / "jobs" / "pretrain.yaml").read_text())["scaling"]
    gpu = job.get("gpus_per_worker", 1) if job.get("use_gpu") else 0
    cap.check_fits(shapes, workers=job["num_workers"], cpu=job["cpus_per_worker"], gpu=gpu, what="scaling", fix="fix")
    with pytest.raises(ConfigError) as err:
        cap.check_fits(shapes, workers=2, cpu=4, gpu=2, what="scaling", fix="lower gpus_per_worker")
    text = str(err.value)
    assert "\n" not in text and text.startswith("scaling: each of the 2 asks for 4 CPU + 2 GPU on one node")
    assert "gpu (8 CPU, 1 GPU) x 8" in text and text.endswith("; lower gpus_per_worker")
    with pytest.raises(ConfigError, match=r"9 x \(4 CPU \+ 1 GPU\) do not fit: .* hold 8 at most"):
        cap.check_fits(shapes, workers=9, cpu=4, gpu=1, what="scaling", fix="fix")
    with pytest.raises(ConfigError, match=r"asks for 17 CPU on one node"):  # the largest CPU node has 16
        cap.check_fits(shapes, workers=1, cpu=17, gpu=0, what="scaling", fix="fix")


def reported(config: dict):
    """The ClusterConfig an autoscaler reports to the GCS for a launcher config's node types."""
    from ray.core.generated import autoscaler_pb2

    out = autoscaler_pb2.ClusterConfig()
    for name, spec in config["available_node_types"].items():
        group = out.node_group_configs.add(name=name, max_count=int(spec.get("max_workers", 1)))
        for key, value in (spec.get("resources") or {}).items():
            if key in ("CPU", "GPU"):
                group.resources[key] = int(value)
    return out


def test_a_remote_cluster_is_checked_against_its_autoscalers_node_types(monkeypatch):
    from ray._private import state

    from hyena_platform.train.config import ScalingSection
    from hyena_platform.train.launch import check_resources

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setattr(cap, "live_shapes", lambda: [cap.NodeShape("node 10.0.0.5", 0.0, 0.0)])  # the head only
    monkeypatch.setattr(state.state, "get_cluster_config", lambda: reported(launcher("aws")))
    check_resources(ScalingSection(num_workers=8, cpus_per_worker=7, use_gpu=True))  # fits the gpu type
    with pytest.raises(ConfigError) as err:
        check_resources(ScalingSection(num_workers=2, cpus_per_worker=4, use_gpu=True, gpus_per_worker=2))
    assert str(err.value).startswith("scaling: Ray Train workers: each of the 2 asks for 4 CPU + 2 GPU on one node, "
                                     "more than any node or node type offers (node 10.0.0.5 (0 CPU); head (0 CPU)")
    monkeypatch.setattr(state.state, "get_cluster_config", lambda: None)  # node types unknown: may grow
    check_resources(ScalingSection(num_workers=2, cpus_per_worker=4, use_gpu=True, gpus_per_worker=2))


def test_a_ray_up_cluster_is_checked_against_the_launcher_config_on_its_head(monkeypatch, tmp_path):
    """`ray up` (autoscaler v1) records no node types in the GCS; the driver, on the head, reads
    the launcher config `ray up` put there. A score job's replicas asking 2 GPUs each."""
    from ray._private import state

    from hyena_platform.batch import check_resources
    from hyena_platform.score.config import ComputeSection

    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    bootstrap.write_text((REPO / "cluster" / "gcp.yaml").read_text())
    monkeypatch.setattr(cap, "BOOTSTRAP_CONFIG", str(bootstrap))
    monkeypatch.setattr(cap, "live_shapes", lambda: [cap.NodeShape("node 10.0.0.5", 0.0, 0.0)])
    monkeypatch.setattr(state.state, "get_cluster_config", lambda: None)
    check_resources(ComputeSection(replicas=8, cpus_per_replica=4, gpus_per_replica=1), "10.0.0.5:6379")
    with pytest.raises(ConfigError, match=r"^compute: model replicas: each of the 1 asks for 4 CPU \+ 2 GPU on one "
                                          r"node, .*gpu \(8 CPU, 1 GPU\) x 8"):
        check_resources(ComputeSection(replicas=1, cpus_per_replica=4, gpus_per_replica=2), "10.0.0.5:6379")
    bootstrap.unlink()  # a driver off the head: nothing known, nothing refused
    check_resources(ComputeSection(replicas=1, cpus_per_replica=4, gpus_per_replica=2), "10.0.0.5:6379")


@pytest.mark.integration
def test_the_local_rays_nodes_are_what_a_worker_must_fit(ray_cluster):
    shapes = cap.live_shapes()  # the session's Ray: one node, 2 CPUs, no GPU
    assert [(s.cpu, s.gpu) for s in shapes] == [(2.0, 0.0)]
    cap.check_fits(shapes, workers=2, cpu=1, gpu=0, what="scaling", fix="fix")
    with pytest.raises(ConfigError, match=r"each of the 1 asks for 3 CPU on one node, more than any node .*\(2 CPU\)"):
        cap.check_fits(shapes, workers=1, cpu=3, gpu=0, what="scaling", fix="fix")
    with pytest.raises(ConfigError, match=r"3 x \(1 CPU\) do not fit: .* hold 2 at most"):
        cap.check_fits(shapes, workers=3, cpu=1, gpu=0, what="scaling", fix="fix")
    with pytest.raises(ConfigError, match=r"asks for 1 CPU \+ 1 GPU"):
        cap.check_fits(shapes, workers=1, cpu=1, gpu=1, what="scaling", fix="fix")
