"""MLflow: runs, metrics, the model registry and ``models:/`` URIs. The only module importing mlflow.

Embedded default: a SQLite store in the working directory (``sqlite:///mlflow.db``) with
artifacts in ``mlartifacts/`` beside it; a cluster points ``tracking.uri`` at a tracking server.
mlflow is imported inside the functions that use it, so importing this module (for
TrackingConfig) costs nothing.

Models are logged in our own checkpoint format (``config.json`` + ``model.safetensors``, what
``HyenaDNAForCausalLM.save_pretrained`` writes) as a run artifact and registered as a model
version; not through ``mlflow.pytorch.log_model`` (torch.export binds the sequence length).
``hyena.from_pretrained`` stays MLflow-free: `load_model` downloads, then calls it.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from hyena_platform.errors import ConfigError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

DEFAULT_URI = "sqlite:///mlflow.db"
RUN_KEY_TAG = "hyena.run_key"  # identifies the Ray Train run (storage + name) an MLflow run belongs to
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")


@dataclass(frozen=True)
class TrackingConfig:
    """The ``tracking:`` section."""

    uri: str = DEFAULT_URI  # sqlite:///relative/or/absolute.db, or http(s):// for a tracking server
    experiment: str = "hyena-pretrain"  # MLflow experiment of the training runs
    artifact_location: str | None = None  # null: mlartifacts/ beside a SQLite store; the server's default otherwise
    register_as: str = "hyenadna"  # registered model name; each finished run adds a version
    alias: str = "candidate"  # alias moved to the new version

    def validate(self) -> None:
        if not self.uri:
            raise ValueError("tracking.uri must not be empty (default: sqlite:///mlflow.db)")
        for key in ("experiment", "register_as", "alias"):
            if not getattr(self, key):
                raise ValueError(f"tracking.{key} must not be empty")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", self.alias) or self.alias.lower() == "latest":
            raise ValueError(
                f"tracking.alias={self.alias!r}: an alias is letters, digits, '_' and '-', not starting with a "
                "digit, and not 'latest'"
            )
        if "/" in self.register_as or "@" in self.register_as:
            raise ValueError(f"tracking.register_as={self.register_as!r} must not contain '/' or '@'")

    def resolved(self, base: str | Path | None = None) -> "TrackingConfig":
        """Relative SQLite paths made absolute against `base` (default: the working directory), so
        every process (driver, Ray Train controller) writes to the same file."""
        uri = resolve_uri(self.uri, base)
        artifacts = self.artifact_location or default_artifact_location(uri)
        return TrackingConfig(uri, self.experiment, artifacts, self.register_as, self.alias)


def resolve_uri(uri: str, base: str | Path | None = None) -> str:
    base = Path(base or os.getcwd())
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base / uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:  # a plain directory: MLflow's file store
        return str((base / uri).resolve())
    return uri


def default_artifact_location(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return None


def client(uri: str) -> "MlflowClient":
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# --------------------------------------------------------------------------------------- runs


def experiment_id(cfg: TrackingConfig) -> str:
    c = client(cfg.uri)
    exp = c.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        return exp.experiment_id
    from mlflow.exceptions import MlflowException

    try:
        return c.create_experiment(cfg.experiment, artifact_location=cfg.artifact_location)
    except MlflowException:  # created concurrently by another process
        exp = c.get_experiment_by_name(cfg.experiment)
        if exp is None:
            raise
        return exp.experiment_id


def find_run(cfg: TrackingConfig, run_key: str) -> Any | None:
    """The most recent MLflow run tagged with `run_key` (a Ray Train run), or None."""
    runs = client(cfg.uri).search_runs(
        [experiment_id(cfg)], filter_string=f"tags.`{RUN_KEY_TAG}` = '{_quote(run_key)}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    return runs[0] if runs else None


def start_run(cfg: TrackingConfig, *, run_key: str, run_name: str, tags: Mapping[str, str] = ()) -> str:
    run = client(cfg.uri).create_run(
        experiment_id(cfg), run_name=run_name, tags={RUN_KEY_TAG: run_key, **dict(tags)}
    )
    return run.info.run_id


def reopen_run(cfg: TrackingConfig, run_id: str) -> None:
    client(cfg.uri).update_run(run_id, status="RUNNING")


def detach_run(cfg: TrackingConfig, run_id: str) -> None:
    """Forget a run's Ray Train key (``--fresh``): a later job with the same name starts anew."""
    c = client(cfg.uri)
    c.set_tag(run_id, RUN_KEY_TAG, c.get_run(run_id).data.tags.get(RUN_KEY_TAG, "") + f"#superseded-{int(time.time())}")


def end_run(cfg: TrackingConfig, run_id: str, status: str = "FINISHED") -> None:
    client(cfg.uri).set_terminated(run_id, status=status)


def get_run(cfg: TrackingConfig, run_id: str) -> Any:
    return client(cfg.uri).get_run(run_id)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'train': {'lr': 1e-3}} -> {'train.lr': '0.001'} (lists as JSON)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple, Mapping)):
            out[name] = json.dumps(value)
        else:
            out[name] = str(value)
    return out


def log_params(cfg: TrackingConfig, run_id: str, params: Mapping[str, Any]) -> None:
    """Log flat params; values already logged with the same value are skipped (a resumed run)."""
    from mlflow.entities import Param

    c = client(cfg.uri)
    existing = c.get_run(run_id).data.params
    items = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i:i + 100], synchronous=True)


def set_tags(cfg: TrackingConfig, run_id: str, tags: Mapping[str, Any]) -> None:
    from mlflow.entities import RunTag

    items = [RunTag(k, str(v)) for k, v in tags.items()]
    if items:
        client(cfg.uri).log_batch(run_id, tags=items, synchronous=True)


def log_metrics(cfg: TrackingConfig, run_id: str, rows: Iterable[tuple[str, float, int]]) -> int:
    """Log (key, value, step) rows in batches; non-finite values are skipped. Returns the count."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(s)) for k, v, s in rows if v is not None and math.isfinite(float(v))]
    c = client(cfg.uri)
    for i in range(0, len(metrics), 1000):
        c.log_batch(run_id, metrics=metrics[i:i + 1000], synchronous=True)
    return len(metrics)


def metric_history(cfg: TrackingConfig, run_id: str, key: str) -> list[tuple[int, float]]:
    """[(step, value)] of a metric, sorted by step."""
    return sorted((m.step, m.value) for m in client(cfg.uri).get_metric_history(run_id, key))


def last_logged_step(cfg: TrackingConfig, run_id: str, key: str) -> int:
    history = client(cfg.uri).get_metric_history(run_id, key)
    return max((m.step for m in history), default=0)


def log_text(cfg: TrackingConfig, run_id: str, text: str, artifact_file: str) -> None:
    client(cfg.uri).log_text(run_id, text, artifact_file)


def log_artifacts(cfg: TrackingConfig, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> None:
    client(cfg.uri).log_artifacts(run_id, str(local_dir), artifact_path)


def log_artifact(cfg: TrackingConfig, run_id: str, local_file: str | Path, artifact_path: str | None = None) -> None:
    client(cfg.uri).log_artifact(run_id, str(local_file), artifact_path)


# ----------------------------------------------------------------------------------- registry


def register_model_dir(
    cfg: TrackingConfig,
    run_id: str,
    model_dir: str | Path,
    *,
    tags: Mapping[str, Any] = (),
    description: str | None = None,
    artifact_path: str = "model",
) -> int:
    """Log `model_dir` (our checkpoint format) as run artifact `artifact_path`, register it as a new
    version of ``cfg.register_as`` with `tags`, and point ``cfg.alias`` at it. Returns the version."""
    from mlflow.exceptions import MlflowException

    model_dir = Path(model_dir)
    for required in ("config.json", "model.safetensors"):
        if not (model_dir / required).is_file():
            raise InputError(f"{model_dir}: not a model checkpoint directory (missing {required})")
    c = client(cfg.uri)
    c.log_artifacts(run_id, str(model_dir), artifact_path)
    source = c.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + artifact_path
    try:
        c.create_registered_model(cfg.register_as, description="HyenaDNA causal language models (hyena-platform)")
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    version = c.create_model_version(
        cfg.register_as, source=source, run_id=run_id,
        tags={k: str(v) for k, v in dict(tags).items()}, description=description,
    )
    c.set_registered_model_alias(cfg.register_as, cfg.alias, version.version)
    return int(version.version)


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    source: str
    run_id: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...]


def parse_model_uri(uri: str) -> tuple[str, str | None, int | None]:
    """models:/NAME@ALIAS -> (NAME, ALIAS, None); models:/NAME/VERSION -> (NAME, None, VERSION)."""
    m = _MODEL_URI.fullmatch(uri.strip())
    if not m:
        raise ConfigError(
            f"{uri!r} is not a registered-model URI; use models:/NAME@ALIAS (e.g. models:/hyenadna@candidate) "
            "or models:/NAME/VERSION (e.g. models:/hyenadna/3)"
        )
    version = m.group("version")
    return m.group("name"), m.group("alias"), int(version) if version else None


def model_version(uri: str, *, tracking_uri: str | None = None) -> ModelVersionInfo:
    """Look up a models:/ URI in the registry."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(uri)
    c = client(_tracking_uri(tracking_uri))
    try:
        mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, str(version))
    except MlflowException as err:
        raise InputError(f"{uri}: not found in the model registry at {_tracking_uri(tracking_uri)} ({err.message})") from None
    return ModelVersionInfo(
        name=mv.name, version=int(mv.version), source=mv.source, run_id=mv.run_id,
        tags=dict(mv.tags or {}), aliases=tuple(getattr(mv, "aliases", ()) or ()),
    )


def download_model(uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Download the checkpoint directory behind a models:/ URI into `dst`; returns its path."""
    import mlflow.artifacts

    info = model_version(uri, tracking_uri=tracking_uri)
    Path(dst).mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=info.source, dst_path=str(dst), tracking_uri=_tracking_uri(tracking_uri)
    )
    return Path(local)


def load_model(uri: str | Path, *, tracking_uri: str | None = None, **kwargs: Any):
    """A loaded HyenaDNAForCausalLM from a checkpoint directory, models:/NAME@ALIAS or
    models:/NAME/VERSION (looked up in `tracking_uri`, default MLFLOW_TRACKING_URI or
    sqlite:///mlflow.db in the working directory). `kwargs` go to hyena.from_pretrained."""
    from hyena import from_pretrained

    text = str(uri)
    if not text.startswith("models:/"):
        return from_pretrained(text, **kwargs)
    with tempfile.TemporaryDirectory(prefix="hyena-model-") as tmp:
        return from_pretrained(download_model(text, tmp, tracking_uri=tracking_uri), **kwargs)


def _tracking_uri(uri: str | None) -> str:
    return resolve_uri(uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# ------------------------------------------------------------------ scoring runs (hyena score)
# Added by the scoring job (hyena_platform.score.pipeline); the rest of the file is unchanged.


def link_scoring_run(cfg: TrackingConfig, run_id: str, name: str, version: int, *, output: str) -> None:
    """Link a scoring run and the model version it scored with, both ways: the run carries
    ``hyena.model_name``/``hyena.model_version`` tags (set by the caller) and the version gets
    a ``hyena.scoring_run.<run_id>`` tag whose value is the output directory."""
    client(cfg.uri).set_model_version_tag(name, str(version), f"hyena.scoring_run.{run_id}", output)
