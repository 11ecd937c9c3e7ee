"""The cluster files in cluster/, validated offline.

Launcher YAMLs (aws, gcp, local fake multi-node) go through what `ray up` does before it talks to
a cloud: `prepare_config` (merge the provider's defaults), Ray's JSON schema (ray-schema.json,
every violation listed, not only the first) and `validate_config` (Ray's own cross-field checks);
then this project's rules: explicit resources per node type, GPU workers from 0, a CPU worker
type, an idle timeout, setup commands that install this package with the Ray version we test,
MLflow and the dashboard on 127.0.0.1, token auth, no credentials. KubeRay manifests are checked
structurally (there is no CRD schema offline).
"""

from __future__ import annotations

import contextlib
import copy
import re
from unittest import mock
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
LAUNCHER = {"aws": CLUSTER / "aws.yaml", "gcp": CLUSTER / "gcp.yaml",
            "local-fake-multinode": CLUSTER / "local-fake-multinode.yaml"}
CLOUD = ("aws", "gcp")
# The only placeholders a user fills in (nothing else in cluster/ may look like one).
PLACEHOLDERS = {"ami-YOUR-DLAMI-ID", "YOUR-ACCOUNT", "YOUR-BUCKET", "YOUR-PROJECT", "YOUR-REGISTRY"}
CREDENTIAL_PATTERNS = [
    r"AKIA[0-9A-Z]{16}",                       # AWS access key id
    r"(?i)aws_secret_access_key|secret_access_key\s*[:=]",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?i)\bpassword\s*[:=]\s*\S",
    r"(?i)RAY_AUTH_TOKEN\s*[:=]\s*[\w+/=-]{16,}",  # a token value (RAY_AUTH_TOKEN_PATH / secretKeyRef are fine)
    r"(?i)\"private_key\"\s*:",                 # a GCP service-account key file
    r"ghp_[A-Za-z0-9]{30,}|xox[bp]-[A-Za-z0-9-]+",
    r"://[^/\s:@]+:[^/\s@]+@",                 # user:password@ in a URI
]


def schema_errors(config: dict) -> list[str]:
    """Every violation of Ray's cluster schema, each with its path in the config."""
    import json

    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
                  for e in validator.iter_errors(config))


def ray_checks(raw: dict) -> tuple[dict, list[str]]:
    """What `ray up` checks offline: prepare_config, the schema, validate_config. Returns the
    prepared config and ALL problems found (schema violations are all listed)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    problems: list[str] = []
    config = copy.deepcopy(raw)
    if raw.get("provider", {}).get("type") != "fake_multinode":
        # (The wheel lacks the fake provider's defaults file; that config must be complete.)
        try:
            config = prepare_config(config)
        except Exception as err:  # noqa: BLE001 - report, do not stop at the first problem
            problems.append(f"prepare_config: {type(err).__name__}: {err}")
    found = schema_errors(config)
    problems += found
    # validate_config stops at the first schema error (already listed above with all others);
    # with the schema step skipped, its own cross-field checks still run.
    with mock.patch("jsonschema.validate") if found else contextlib.nullcontext():
        try:
            validate_config(config)
        except Exception as err:  # noqa: BLE001
            problems.append(f"validate_config: {type(err).__name__}: {err}")
    return config, problems


def project_checks(name: str, config: dict, text: str) -> list[str]:
    """This project's rules for its launcher configs; every failure listed."""
    import ray

    problems = []
    types = config["available_node_types"]
    head = config["head_node_type"]
    workers = {k: v for k, v in types.items() if k != head}
    for node_type, spec in types.items():
        resources = spec.get("resources")
        if not isinstance(resources, dict) or "CPU" not in resources:
            problems.append(f"{node_type}: explicit resources with CPU are required")
    if types[head].get("resources", {}).get("CPU") != 0:
        problems.append(f"{head}: the head must offer CPU: 0 (job drivers and MLflow only)")
    if not any(spec.get("resources", {}).get("CPU", 0) > 0 and not spec.get("resources", {}).get("GPU")
               for spec in workers.values()):
        problems.append("no CPU worker type for Ray Data")
    for node_type, spec in workers.items():
        if spec.get("min_workers", 0) != 0:
            problems.append(f"{node_type}: min_workers must be 0 (scale from zero)")
        if spec.get("max_workers", 0) < 1:
            problems.append(f"{node_type}: max_workers must be >= 1")
    if "idle_timeout_minutes" not in yaml.safe_load(text):
        problems.append("idle_timeout_minutes must be set explicitly")
    if "0.0.0.0" in text:
        problems.append("something binds 0.0.0.0; dashboard and MLflow must stay on 127.0.0.1")
    if name in CLOUD:
        gpu = [k for k, v in workers.items() if v.get("resources", {}).get("GPU", 0) >= 1]
        if not gpu:
            problems.append("no GPU worker type")
        head_cmds = " ".join(config["head_start_ray_commands"])
        worker_cmds = " ".join(config["worker_start_ray_commands"])
        if "--dashboard-host=127.0.0.1" not in head_cmds:
            problems.append("the head's ray start must pass --dashboard-host=127.0.0.1")
        for role, cmds in (("head", head_cmds), ("worker", worker_cmds)):
            if "RAY_AUTH_MODE=token" not in cmds:
                problems.append(f"{role} start commands must enable token auth (RAY_AUTH_MODE=token)")
        mlflow = re.search(r"nohup mlflow server (.*?)(?:>|$)", head_cmds)
        if not mlflow:
            problems.append("the head must start the MLflow server")
        else:
            args = mlflow.group(1)
            if "--host 127.0.0.1" not in args:
                problems.append("MLflow must bind 127.0.0.1")
            if not re.search(r"--backend-store-uri (sqlite|postgresql|mysql)", args):
                problems.append("MLflow needs a database backend store")
            if not re.search(r"--artifacts-destination (s3|gs)://", args):
                problems.append("MLflow needs an object-store artifact root")
        setup = " ".join(config["setup_commands"])
        if "-e ~/hyena-platform" not in setup:
            problems.append("setup_commands must install this package (-e ~/hyena-platform)")
        pinned = re.search(r"ray\[[^\]]*\]==([0-9.]+)", setup)
        if not pinned or pinned.group(1) != ray.__version__:
            problems.append(f"setup_commands must pin the tested Ray version {ray.__version__}")
        mounts = config.get("file_mounts", {})
        if mounts.get("~/hyena-platform") != "." or "~/.ray/auth_token" not in mounts:
            problems.append("file_mounts must copy this checkout and the Ray token to the nodes")
        if config.get("provider", {}).get("security_group"):
            problems.append("no custom security group: Ray's opens SSH and intra-cluster traffic only")
    return problems


def text_problems(text: str) -> list[str]:
    problems = [f"looks like a credential: /{p}/" for p in CREDENTIAL_PATTERNS if re.search(p, text)]
    unknown = set(re.findall(r"[\w-]*YOUR-[A-Z-]*[A-Z]", text)) - PLACEHOLDERS
    if unknown:
        problems.append(f"unknown placeholders {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}")
    return problems


@pytest.mark.parametrize("name", sorted(LAUNCHER))
def test_launcher_config_passes_rays_checks_and_ours(name):
    text = LAUNCHER[name].read_text()
    config, problems = ray_checks(yaml.safe_load(text))
    if not problems:
        problems = project_checks(name, config, text)
    problems += text_problems(text)
    assert not problems, f"{LAUNCHER[name].name}:\n  " + "\n  ".join(problems)


def test_all_schema_errors_are_reported_not_only_the_first():
    raw = yaml.safe_load(LAUNCHER["aws"].read_text())
    raw["idle_timeout_minutes"] = "ten"
    raw["available_node_types"]["gpu"]["max_worker"] = 3  # a typo
    raw["available_node_types"]["cpu"]["resources"] = "16 CPUs"
    del raw["head_node_type"]
    _, problems = ray_checks(raw)
    text = "\n".join(problems)
    assert len(problems) >= 4, text
    for needle in ("idle_timeout_minutes", "max_worker", "available_node_types.cpu.resources", "head_node_type"):
        assert needle in text, text


def test_project_rules_catch_an_exposed_dashboard_and_a_credential():
    text = LAUNCHER["aws"].read_text()
    bad = text.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0").replace(
        "cache_stopped_nodes: false", "cache_stopped_nodes: false\n  aws_secret_access_key: abc")
    config = copy.deepcopy(yaml.safe_load(bad))
    from ray.autoscaler._private.util import prepare_config

    problems = project_checks("aws", prepare_config(config), bad) + text_problems(bad)
    assert any("0.0.0.0" in p for p in problems) and any("--dashboard-host" in p for p in problems)
    assert any("credential" in p for p in problems)


def test_fake_multinode_head_type_is_the_providers():
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_TYPE

    config = yaml.safe_load(LAUNCHER["local-fake-multinode"].read_text())
    assert config["provider"]["type"] == "fake_multinode"
    assert config["head_node_type"] == FAKE_HEAD_NODE_TYPE
    assert config["idle_timeout_minutes"] > 0


# ------------------------------------------------------------------------------------ KubeRay


def kuberay_docs() -> dict[str, dict]:
    docs = {}
    for path in sorted((CLUSTER / "kuberay").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


def test_kuberay_raycluster_autoscales_with_explicit_resources():
    import ray

    docs = kuberay_docs()
    cluster = docs["RayCluster/hyena"]
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    problems = []
    if spec.get("rayVersion") != ray.__version__:
        problems.append(f"rayVersion {spec.get('rayVersion')} != tested {ray.__version__}")
    if spec.get("enableInTreeAutoscaling") is not True:
        problems.append("enableInTreeAutoscaling must be true")
    if not spec.get("autoscalerOptions", {}).get("idleTimeoutSeconds"):
        problems.append("autoscalerOptions.idleTimeoutSeconds must be set")
    if spec.get("authOptions", {}).get("mode") != "token":
        problems.append("authOptions.mode must be token")
    head = spec["headGroupSpec"]
    if head.get("serviceType", "ClusterIP") != "ClusterIP":
        problems.append("the head Service must be ClusterIP (kubectl port-forward, no public endpoint)")
    groups = [("head", head)] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
    for name, group in groups:
        params = group.get("rayStartParams", {})
        bad = [k for k, v in params.items() if not isinstance(v, str)]
        if bad:
            problems.append(f"{name}: rayStartParams values must be strings ({bad})")
        containers = group["template"]["spec"]["containers"]
        ray_container = containers[0]
        res = ray_container.get("resources", {})
        if not res.get("limits") or res.get("limits") != res.get("requests"):
            problems.append(f"{name}: explicit resources with requests == limits")
        if not ray_container.get("image", "").endswith(":0.1.0"):
            problems.append(f"{name}: image must be the hyena-platform image")
        if name != "head":
            if group.get("minReplicas") != 0 or group.get("replicas") != 0:
                problems.append(f"{name}: scale from 0 (replicas and minReplicas 0)")
            if group.get("maxReplicas", 0) < 1:
                problems.append(f"{name}: maxReplicas >= 1")
    if params_of(head).get("num-cpus") != "0":
        problems.append("the head must have num-cpus 0")
    gpu = [g for g in spec["workerGroupSpecs"]
           if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    if not gpu:
        problems.append("no GPU worker group")
    if not any(g not in gpu for g in spec["workerGroupSpecs"]):
        problems.append("no CPU worker group")
    mlflow = [c for c in head["template"]["spec"]["containers"] if c["name"] == "mlflow"]
    if not mlflow or "127.0.0.1" not in mlflow[0]["command"]:
        problems.append("an MLflow sidecar bound to 127.0.0.1 in the head pod")
    assert not problems, "\n".join(problems)


def params_of(group: dict) -> dict:
    return group.get("rayStartParams", {})


def test_kuberay_rayjob_targets_the_cluster_and_a_valid_job_file():
    from hyena_platform.train.config import load_job

    docs = kuberay_docs()
    job = docs["RayJob/hyena-pretrain"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": "hyena"} and "RayCluster/hyena" in docs
    words = spec["entrypoint"].split()
    assert words[:2] == ["hyena", "pretrain"]
    job_file = words[2].replace("/home/ray/hyena-platform/", "")
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    loaded = load_job(REPO / job_file, overrides)  # the baked-in job file, with the RayJob's overrides
    assert loaded.tracking.uri == "http://127.0.0.1:5000"
    assert loaded.scaling.use_gpu
    yaml.safe_load(spec["runtimeEnvYAML"])


def test_no_credentials_in_any_cluster_file():
    problems = []
    for path in sorted(CLUSTER.rglob("*")):
        if path.is_file():
            problems += [f"{path.relative_to(REPO)}: {p}" for p in text_problems(path.read_text())]
    assert not problems, "\n".join(problems)
