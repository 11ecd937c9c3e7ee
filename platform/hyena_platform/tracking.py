"""MLflow: runs, metrics, the model registry and ``models:/`` URIs. The only module importing mlflow.

Embedded default: a SQLite store in the working directory (``sqlite:///mlflow.db``) with
artifacts in ``mlartifacts/`` beside it; a cluster points ``tracking.uri`` at a tracking server.
mlflow is imported inside the functions that use it, so importing this module (for
TrackingConfig) costs nothing.

A registered version is an MLflow Model with the ``python_function`` flavor: the loader module
``hyena.pyfunc`` over our checkpoint format (``config.json`` + ``model.safetensors``) kept as the
model's data, never a pickled module or ``mlflow.pytorch``'s torch.export (which binds the
sequence length). ``hyena`` stays MLflow-free: `load_model` downloads, then calls
``hyena.from_pretrained``. A tracking server that does not answer fails at once, naming its URI
(MLflow itself would retry for minutes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import yaml
from pydantic import Field

from hyena_platform.config import section
from hyena_platform.errors import ConfigError, InputError
from hyena_platform.log_levels import logger_level

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

    from hyena_platform.model_card import ModelCard

DEFAULT_URI = "sqlite:///mlflow.db"
RUN_KEY_TAG = "hyena.run_key"  # identifies the Ray Train run (storage + name) an MLflow run belongs to
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")


@section
class TrackingConfig:
    """The ``tracking:`` section."""

    uri: str = Field(DEFAULT_URI, description=(
        "sqlite:///relative/or/absolute.db, or http(s):// for a tracking server"))
    experiment: str = Field("hyena-pretrain", description="MLflow experiment of the training runs")
    artifact_location: str | None = Field(None, description=(
        "null: mlartifacts/ beside a SQLite store; the server's default otherwise"))
    register_as: str = Field("hyenadna", description="registered model name; each finished run adds a version")
    alias: str = Field("candidate", description="alias moved to the new version")

    def validate(self) -> None:
        if not self.uri:
            raise ValueError("tracking.uri must not be empty (default: sqlite:///mlflow.db)")
        check_uri_scheme(self.uri)
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


# The store schemes MLflow's tracking and registry clients accept (anything else is a traceback).
URI_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")


def check_uri_scheme(uri: str, key: str = "tracking.uri") -> None:
    """ValueError (one line, the valid forms) for a tracking URI MLflow cannot use."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme and scheme not in URI_SCHEMES:
        raise ValueError(f"{key}={uri!r}: unsupported scheme {scheme!r}; use sqlite:///path.db, "
                         "http(s)://server:port (an MLflow server), a directory, or one of "
                         + ", ".join(f"{s}://" for s in URI_SCHEMES[3:]))


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

    if _QUIET_LOGS_REQUESTED:  # the first use of MLflow by a `hyena` command (terminal.quiet_libraries)
        quiet_logs()
    if uri.startswith(("http://", "https://")) and uri not in _REACHABLE:
        check_server(uri)
        _REACHABLE.add(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


_REACHABLE: set[str] = set()  # tracking servers that answered once in this process


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """One GET of the server's /health; InputError naming `uri` if nothing answers or it fails (5xx)."""
    import ssl
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code  # 401/403/404 still mean a server answered (one behind auth, say)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, ssl.SSLError) or isinstance(err, ssl.SSLError):
            return  # TLS set up for MLflow's client (a private CA, MLFLOW_TRACKING_INSECURE_TLS): let it judge
        raise InputError(f"MLflow tracking server {uri} is not reachable ({reason}); start it, or point "
                         "tracking.uri / MLFLOW_TRACKING_URI at a running server or a sqlite:/// file") from None
    if status >= 500:  # what MLflow's client would retry with backoff
        raise InputError(f"MLflow tracking server {uri} answered HTTP {status} on /health; check that it is "
                         "an MLflow server and that it is healthy")


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
    """The highest step `key` was logged at; -1 when never (a fine-tuning probe logs at step 0)."""
    history = client(cfg.uri).get_metric_history(run_id, key)
    return max((m.step for m in history), default=-1)


def log_text(cfg: TrackingConfig, run_id: str, text: str, artifact_file: str) -> None:
    client(cfg.uri).log_text(run_id, text, artifact_file)


def log_artifact(cfg: TrackingConfig, run_id: str, local_file: str | Path, artifact_path: str | None = None) -> None:
    client(cfg.uri).log_artifact(run_id, str(local_file), artifact_path)


def download_artifact(cfg: TrackingConfig, run_id: str, path: str, dst: str | Path) -> Path | None:
    """A run's artifact file copied under `dst` (None if the run has none at `path`)."""
    c = client(cfg.uri)
    folder = path.rpartition("/")[0] or None
    if path not in {f.path for f in c.list_artifacts(run_id, folder)}:
        return None
    return Path(c.download_artifacts(run_id, path, str(dst)))


# ----------------------------------------------------------------------------------- registry
# A registered version is an MLflow Model: the python_function flavor through the loader module
# hyena.pyfunc (no pickled module, no torch.export), our checkpoint directory as its data/, the
# hyena package as its code/, a signature with params, an input example, pinned requirements and
# a README.md model card. Versions registered before this layout hold the checkpoint files at
# their root ("legacy"): load_model still reads them; upgrade_model_version re-registers one.

MLMODEL_FILE = "MLmodel"
CHECKPOINT_DIR = "checkpoint"  # the model's data/ subdirectory holding our checkpoint
CHECKPOINT_FILES = ("config.json", "model.safetensors")
# A real 60-base input example when the card gives none: V. cholerae N16961 chrI:1-60 (the
# bundled genome, platform/hyena_platform/assets/genomes).
EXAMPLE_SEQUENCE = "AGGGTCATTAAATATATATAAAGATCTATATAGAGATCTTTTTATTAGATCTACTATTAA"


def register_model_dir(
    cfg: TrackingConfig,
    run_id: str,
    model_dir: str | Path,
    *,
    tags: Mapping[str, Any] = (),
    description: str | None = None,
    artifact_path: str = "model",
    card: "ModelCard | None" = None,
) -> int:
    """Log `model_dir` (our checkpoint format) as the MLflow Model `artifact_path` of run
    `run_id`, register it as a new version of ``cfg.register_as`` with `tags` and a description
    (`description`, then the card's summary), and point ``cfg.alias`` at it. Returns the version.

    Pretraining and fine-tuning call this with their final checkpoint and a `ModelCard`."""
    model_dir = Path(model_dir)
    c = client(cfg.uri)
    with tempfile.TemporaryDirectory(prefix="hyena-mlmodel-") as tmp:
        local = Path(tmp) / artifact_path
        outputs, card = save_mlflow_model(model_dir, local, card=card, tags=dict(tags), description=description,
                                          model_uri=f"models:/{cfg.register_as}@{cfg.alias}")
        c.log_artifacts(run_id, str(local), artifact_path)
    source = c.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + artifact_path
    summary = card.summary(outputs)
    _ensure_registered_model(c, cfg.register_as)
    version = c.create_model_version(
        cfg.register_as, source=source, run_id=run_id,
        tags={k: str(v) for k, v in dict(tags).items()},
        description="\n\n".join(p for p in (description, summary) if p) or None,
    )
    c.set_registered_model_alias(cfg.register_as, cfg.alias, version.version)
    return int(version.version)


def set_alias(cfg: TrackingConfig, name: str, alias: str, version: int) -> None:
    """Point `alias` of registered model `name` at `version` (moved if it pointed elsewhere)."""
    client(cfg.uri).set_registered_model_alias(name, alias, str(version))


def save_mlflow_model(checkpoint: str | Path, dst: str | Path, *, card: "ModelCard | None" = None,
                      model_uri: str = "models:/NAME@ALIAS", tags: Mapping[str, Any] = (),
                      description: str | None = None) -> tuple[str, "ModelCard"]:
    """Write the MLflow Model of a checkpoint directory to `dst` (which must not exist). Without a
    `card`, one is built from the model, `tags` and `description`. Returns the pyfunc outputs the
    model answers (the default first) and the card."""
    import mlflow.pyfunc
    import pandas as pd

    import hyena.pyfunc

    checkpoint, dst = Path(checkpoint), Path(dst)
    served = hyena.pyfunc.HyenaPyfunc(_load_checkpoint(checkpoint), source=str(checkpoint))
    if card is None:
        from hyena_platform.model_card import card_from_tags

        card = card_from_tags(served.model, tags, description)
    l_max = served.model.config.l_max
    example = pd.DataFrame({"sequence": [(card.example_sequence or EXAMPLE_SEQUENCE)[:l_max]]})
    served.predict(example)  # a model that cannot answer its own input example is not registered
    with tempfile.TemporaryDirectory(prefix="hyena-stage-") as stage:
        data = Path(stage) / CHECKPOINT_DIR  # MLflow copies data_path to data/<its name>
        data.symlink_to(checkpoint.resolve(), target_is_directory=True)
        with quiet_mlflow():
            mlflow.pyfunc.save_model(
                str(dst), loader_module="hyena.pyfunc", data_path=str(data),
                code_paths=[str(Path(hyena.pyfunc.__file__).parent)],  # the hyena package, no __pycache__
                signature=_signature(served.default_params), input_example=example,
                pip_requirements=_requirements(), metadata=_metadata(served, card),
            )
    (dst / "README.md").write_text(card.readme(served.outputs, model_uri=model_uri))
    return served.outputs, card


# MLflow logs "Creating initial MLflow database tables..." and "Updating database tables" at INFO
# on every new SQLite store, alembic its schema migrations.
LIBRARY_LOG_LEVELS = {"mlflow": logging.WARNING, "alembic": logging.WARNING}


_QUIET_LOGS_REQUESTED = False


def request_quiet_logs() -> None:
    """quiet_logs() when this process first opens an MLflow store (tracking.client), not now:
    a command that stops on a config error never imports MLflow."""
    global _QUIET_LOGS_REQUESTED
    _QUIET_LOGS_REQUESTED = True


def quiet_logs() -> None:
    """MLflow's and alembic's loggers at WARNING for the rest of the process (the `hyena`
    command's terminal shows our lines). MLflow sets its logger to INFO when it is imported
    (mlflow.utils.logging_utils), so it is imported here first and the levels set after."""
    import mlflow  # noqa: F401 - imported for its logger set-up, which must come first

    for name, level in LIBRARY_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)


def quiet_mlflow() -> contextlib.AbstractContextManager:
    """MLflow's INFO lines off the terminal for the duration (the platform prints its own)."""
    return logger_level("mlflow", logging.WARNING)


def _load_checkpoint(checkpoint: Path):
    import hyena.pyfunc
    from hyena import CheckpointError

    for required in CHECKPOINT_FILES:
        if not (checkpoint / required).is_file():
            raise InputError(f"{checkpoint}: not a model checkpoint directory (missing {required})")
    try:
        return hyena.pyfunc.load_checkpoint(checkpoint)
    except CheckpointError as err:
        raise InputError(str(err)) from None


def _signature(defaults: Mapping[str, Any]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    kinds = {str: "string", int: "long", float: "double", bool: "boolean"}
    return ModelSignature(
        inputs=Schema([ColSpec("string", "sequence")]),
        params=ParamSchema([ParamSpec(k, kinds[type(v)], v) for k, v in defaults.items()]),
    )


def _requirements() -> list[str]:
    """What the served model imports (hyena itself travels as code/): exact versions, torch
    without its local build tag (+cpu) so that an index can resolve it."""
    import importlib.metadata as md

    return [f"{pkg}=={md.version(pkg).split('+')[0]}" for pkg in ("torch", "numpy", "safetensors", "pandas")]


def _metadata(served, card) -> dict[str, Any]:
    cfg = served.model.config
    meta = {"hyena_format": "hyena-platform checkpoint in data/" + CHECKPOINT_DIR, "outputs": list(served.outputs),
            "l_max": cfg.l_max, "d_model": cfg.d_model, "n_layer": cfg.n_layer,
            "parameters": sum(p.numel() for p in served.model.parameters())}
    meta.update({"title": card.title, "task": card.task, "data_hash": card.data_hash,
                 "lineage": {k: str(v) for k, v in card.lineage.items()}})
    return meta


_OLD_MODEL_DESCRIPTION = "HyenaDNA causal language models (hyena-platform)"  # before MLflow Models


def _ensure_registered_model(c: "MlflowClient", name: str) -> None:
    """Create the registered model with its description; a model created before MLflow Models
    (empty or the old one-line description) gets the new one."""
    from mlflow.exceptions import MlflowException

    description = (
        "HyenaDNA models registered by hyena-platform. Each version is an MLflow Model (python_function "
        "flavor over a safetensors checkpoint) with a README.md model card; load it with "
        f"`mlflow.pyfunc.load_model(\"models:/{name}@ALIAS\")` or serve it with `mlflow models serve`.")
    try:
        c.create_registered_model(name, description=description)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
        if (c.get_registered_model(name).description or _OLD_MODEL_DESCRIPTION) == _OLD_MODEL_DESCRIPTION:
            c.update_registered_model(name, description=description)


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    source: str
    run_id: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...]
    description: str = ""


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
    """Look up a models:/ URI in the registry; a miss names what exists instead."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(uri)
    store = _tracking_uri(tracking_uri)
    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).is_file():
        raise InputError(f"{uri}: no MLflow store at {store} (the file does not exist); set tracking.uri "
                         "or MLFLOW_TRACKING_URI to the store a pretraining job registered in")
    c = client(store)
    try:
        mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, str(version))
    except MlflowException:
        raise InputError(f"{uri}: not found in the model registry at {store}; {_what_exists(c, name)}") from None
    return ModelVersionInfo(
        name=mv.name, version=int(mv.version), source=mv.source, run_id=mv.run_id,
        tags=dict(mv.tags or {}), aliases=tuple(getattr(mv, "aliases", ()) or ()), description=mv.description or "",
    )


def _what_exists(c: "MlflowClient", name: str) -> str:
    """'registered versions of NAME: 1, 2 (aliases candidate -> 2)', or the registered names."""
    from mlflow.exceptions import MlflowException

    try:
        model = c.get_registered_model(name)
    except MlflowException:
        names = sorted(m.name for m in c.search_registered_models(max_results=100))
        return (f"no registered model {name!r}; registered models: {', '.join(names)}" if names
                else "the registry has no models yet (pretraining registers one)")
    versions = sorted(int(v.version) for v in c.search_model_versions(f"name = '{_quote(name)}'", max_results=1000))
    aliases = ", ".join(f"@{a} -> {v}" for a, v in sorted((model.aliases or {}).items())) or "none"
    return f"versions of {name}: {', '.join(map(str, versions)) or 'none'}; aliases: {aliases}"


def lineage_uri(source: str | None, tracking_uri: str | None = None) -> str:
    """How a model card names a base model: models:/NAME/VERSION (an alias pinned to the version
    it pointed at), a checkpoint path, or 'random initialisation'."""
    if not source:
        return "random initialisation"
    if not source.startswith("models:/"):
        return source
    info = model_version(source, tracking_uri=tracking_uri)
    pinned = f"models:/{info.name}/{info.version}"
    return pinned if pinned == source else f"{pinned} ({source} at registration)"


def download_model(uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Download the checkpoint directory behind a models:/ URI into `dst`; returns its path
    (the MLflow Model's data/checkpoint, or the version's root for a legacy version)."""
    root = download_version(uri, dst, tracking_uri=tracking_uri)
    return checkpoint_dir(root, uri)


def download_version(uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Download every artifact of the version behind a models:/ URI into `dst`."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    info = model_version(uri, tracking_uri=tracking_uri)
    Path(dst).mkdir(parents=True, exist_ok=True)
    try:
        with quiet_mlflow():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=info.source, dst_path=str(dst), tracking_uri=_tracking_uri(tracking_uri))
    except (MlflowException, OSError) as err:
        raise InputError(f"{uri}: cannot download its artifacts from {info.source} ({_first_line(err)})") from None
    return Path(local)


def checkpoint_dir(root: Path, uri: str = "") -> Path:
    """Where the checkpoint files are in a downloaded version: data/<name> named by the MLmodel's
    python_function flavor, or the root of a legacy version. Missing files are InputErrors."""
    where = f"{uri} ({root})" if uri else str(root)
    if (root / MLMODEL_FILE).is_file():
        try:
            flavor = yaml.safe_load((root / MLMODEL_FILE).read_text())["flavors"]["python_function"]
            directory = root / flavor["data"]
        except (yaml.YAMLError, KeyError, TypeError) as err:
            raise InputError(f"{where}: MLmodel has no python_function flavor with a data path ({err!r})") from None
    else:
        directory = root
    missing = [f for f in CHECKPOINT_FILES if not (directory / f).is_file()]
    if missing:
        raise InputError(f"{where}: the model artifact is missing {', '.join(missing)} in "
                         f"{directory.relative_to(root) if directory != root else 'its root'}; re-register the model")
    return directory


def is_mlflow_model(uri: str, *, tracking_uri: str | None = None) -> bool:
    """True when the version behind `uri` is an MLflow Model (has an MLmodel file)."""
    import mlflow.artifacts

    info = model_version(uri, tracking_uri=tracking_uri)
    names = {Path(a.path).name for a in mlflow.artifacts.list_artifacts(
        artifact_uri=info.source, tracking_uri=_tracking_uri(tracking_uri))}
    return MLMODEL_FILE in names


def load_model(uri: str | Path, *, tracking_uri: str | None = None, task_head: bool = False, **kwargs: Any):
    """A loaded HyenaDNAForCausalLM from a checkpoint directory, models:/NAME@ALIAS or
    models:/NAME/VERSION (looked up in `tracking_uri`, default MLFLOW_TRACKING_URI or
    sqlite:///mlflow.db in the working directory). `kwargs` go to hyena.from_pretrained.
    Works for MLflow-Model versions and for versions registered before them. With `task_head`,
    a fine-tuned model loads with its head (hyena.heads), a language model as before."""
    from hyena import CheckpointError, from_pretrained

    if task_head:
        from hyena.heads import from_pretrained_any as from_pretrained  # noqa: F811 - same signature

    text = str(uri)
    if not text.startswith("models:/"):
        return from_pretrained(text, **kwargs)
    with tempfile.TemporaryDirectory(prefix="hyena-model-") as tmp:
        directory = download_model(text, tmp, tracking_uri=tracking_uri)
        try:
            return from_pretrained(directory, **kwargs)
        except CheckpointError as err:
            raise InputError(f"{text}: the registered checkpoint cannot be read: {err}") from None


def upgrade_model_version(uri: str, *, tracking_uri: str | None = None) -> int:
    """Re-register a version registered before MLflow Models (checkpoint files at its root) as a
    new version that is one, with the same run, tags and description; aliases that pointed at
    the old version move to the new one. Returns the new version (the old one is kept)."""
    store = _tracking_uri(tracking_uri)
    info = model_version(uri, tracking_uri=store)
    if is_mlflow_model(uri, tracking_uri=store):
        raise InputError(f"{uri}: version {info.version} is already an MLflow Model; nothing to upgrade")
    if not info.run_id:
        raise InputError(f"{uri}: version {info.version} has no run to log the MLflow Model to")
    placeholder = f"upgrade-of-{info.version}"  # register_model_dir sets an alias; dropped below if unused
    cfg = TrackingConfig(uri=store, register_as=info.name, alias=(info.aliases or (placeholder,))[0])
    tags = {**{k: v for k, v in info.tags.items() if not k.startswith("hyena.scoring_run.")},
            "hyena.upgraded_from": str(info.version)}
    with tempfile.TemporaryDirectory(prefix="hyena-upgrade-") as tmp:
        directory = download_model(f"models:/{info.name}/{info.version}", tmp, tracking_uri=store)
        version = register_model_dir(cfg, info.run_id, directory, tags=tags, description=info.description or None,
                                     artifact_path=f"model-v{info.version}-mlflow")
    c = client(store)
    for alias in info.aliases[1:]:
        c.set_registered_model_alias(info.name, alias, str(version))
    if not info.aliases:
        c.delete_registered_model_alias(info.name, placeholder)
    return version


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "message", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _tracking_uri(uri: str | None) -> str:
    return resolve_uri(uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# ------------------------------------------------------------------ scoring runs (hyena score)
# Added by the scoring job (hyena_platform.score.pipeline); the rest of the file is unchanged.


def link_scoring_run(cfg: TrackingConfig, run_id: str, name: str, version: int, *, output: str,
                     kind: str = "scoring") -> None:
    """Link a batch run (scoring, vep, ...) and the model version it used, both ways: the run
    carries ``hyena.model_name``/``hyena.model_version`` tags (set by the caller) and the version
    gets a ``hyena.<kind>_run.<run_id>`` tag whose value is the output directory."""
    client(cfg.uri).set_model_version_tag(name, str(version), f"hyena.{kind}_run.{run_id}", output)
