"""Can the Ray cluster ever place a job's workers? Checked before the job starts, because Ray
Train and Ray Data wait forever, silently, for a request no node can meet.

A worker (a Ray Train worker, a scoring replica) needs its CPUs and GPUs on ONE node. The nodes
that can exist are the live nodes plus, when the cluster autoscales, every node type the
autoscaler may add (`available_node_types` of a launcher YAML, the worker groups of a
RayCluster), each up to its max count. A request that no node shape can hold, or more workers
than all of them together, is a ConfigError naming what is missing; when the autoscaler's node
types are unknown (a remote cluster whose autoscaler does not report them), only what is
certain is checked: nothing.

Node types come from Ray's own record of the autoscaler's configuration in the GCS
(`ray._private.state.state.get_cluster_config()`, also what Ray Data reads to decide whether a
cluster autoscales), or from a launcher YAML (cluster/*.yaml) with `shapes_from_launcher_config`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hyena_platform.errors import ConfigError


@dataclass(frozen=True)
class NodeShape:
    """One node, or one node type of the autoscaler."""

    name: str
    cpu: float
    gpu: float
    count: int | None = 1  # how many such nodes can exist; None: no limit

    def holds(self, cpu: float, gpu: float) -> int | None:
        """How many (cpu, gpu) bundles fit on all nodes of this shape (None: unlimited)."""
        per_node = min(math.floor(self.cpu / cpu + 1e-9) if cpu > 0 else math.inf,
                       math.floor(self.gpu / gpu + 1e-9) if gpu > 0 else math.inf)
        if per_node == 0:
            return 0
        if self.count is None or per_node == math.inf:
            return None
        return int(per_node) * self.count

    def describe(self) -> str:
        what = f"{self.cpu:g} CPU" + (f", {self.gpu:g} GPU" if self.gpu else "")
        many = "" if self.count == 1 and self.name.startswith("node ") else \
            f" x {'any number' if self.count is None else self.count}"
        return f"{self.name} ({what}){many}"


def live_shapes() -> list[NodeShape]:
    """The cluster's alive nodes (the connected Ray)."""
    import ray

    return [NodeShape(f"node {n.get('NodeManagerAddress', '?')}", float(n["Resources"].get("CPU", 0.0)),
                      float(n["Resources"].get("GPU", 0.0)))
            for n in ray.nodes() if n.get("Alive")]


# Where `ray up` puts the launcher config on the head node, where `ray job submit` runs drivers.
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def autoscaler_shapes() -> list[NodeShape] | None:
    """The autoscaler's node types: as the GCS records them (autoscaler v2, KubeRay), else from
    the launcher config on the head node (the v1 autoscaler of `ray up` clusters records none);
    None when neither is there."""
    from ray._private.state import state  # Ray Data reads the autoscaler's config the same way

    try:
        config = state.get_cluster_config()
    except (AttributeError, RuntimeError, ConnectionError):  # a private API: absent or not connected
        config = None
    if config is None or not config.node_group_configs:
        return _bootstrap_shapes()
    return [NodeShape(g.name, float(g.resources.get("CPU", 0)), float(g.resources.get("GPU", 0)),
                      None if g.max_count < 0 else int(g.max_count))
            for g in config.node_group_configs]


def _bootstrap_shapes() -> list[NodeShape] | None:
    import yaml

    path = Path(BOOTSTRAP_CONFIG).expanduser()
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict) or not config.get("available_node_types"):
        return None
    return shapes_from_launcher_config(config)


def shapes_from_launcher_config(config: dict[str, Any]) -> list[NodeShape]:
    """The node types of a Ray cluster launcher YAML (`available_node_types`): the head once,
    each worker type up to its max_workers (capped by the cluster's max_workers)."""
    types = config.get("available_node_types") or {}
    cap = config.get("max_workers")
    shapes = []
    for name, spec in types.items():
        res = spec.get("resources") or {}
        count = 1 if name == config.get("head_node_type") else int(spec.get("max_workers", cap or 0))
        if cap is not None and name != config.get("head_node_type"):
            count = min(count, int(cap))
        shapes.append(NodeShape(name, float(res.get("CPU", 0)), float(res.get("GPU", 0)), count))
    return shapes


def check_fits(shapes: Sequence[NodeShape], *, workers: int, cpu: float, gpu: float, what: str, fix: str) -> None:
    """ConfigError unless `workers` bundles of (cpu, gpu), each on one node, fit `shapes`."""
    ask = f"{cpu:g} CPU" + (f" + {gpu:g} GPU" if gpu else "")
    fits = [s for s in shapes if s.holds(cpu, gpu) != 0 and s.count != 0]
    seen = "; ".join(s.describe() for s in shapes) or "none"
    if not fits:
        raise ConfigError(f"{what}: each of the {workers} asks for {ask} on one node, more than any node or "
                          f"node type offers ({seen}); {fix}")
    room = [s.holds(cpu, gpu) for s in fits]
    if None not in room and sum(room) < workers:
        raise ConfigError(f"{what}: {workers} x ({ask}) do not fit: the nodes and node types ({seen}) hold "
                          f"{sum(room)} at most; {fix}")


def check_remote(*, workers: int, cpu: float, gpu: float, what: str, fix: str) -> None:
    """A remote cluster: its live nodes plus its autoscaler's node types must hold the request;
    when the autoscaler does not report its node types it may add any node: not checked."""
    types = autoscaler_shapes()
    if types is not None:
        check_fits(live_shapes() + types, workers=workers, cpu=cpu, gpu=gpu, what=what, fix=fix)
