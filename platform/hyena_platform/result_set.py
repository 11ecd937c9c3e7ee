"""A batch job's result set: Parquet part files that appear only complete, and ``_manifest.json``.

Shared by every batch job that writes one (score, vep, embed). A part file is written to a hidden
temporary name in its directory, flushed, then renamed; a rerun counts a part as finished when its
file holds the expected rows and removes leftovers. The manifest's ``fingerprint`` hashes the
``identity`` (everything that changes the results: model weights, inputs, settings); a rerun with
another fingerprint is refused unless told to overwrite, so one directory never mixes two models'
results. Ownership and locking of the directory are hyena_platform.outputs'.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hyena_platform.errors import InputError
from hyena_platform.outputs import LOCK_NAME, OutputDir, atomic_path, atomic_write, now

MANIFEST_NAME = "_manifest.json"


def write_parquet_atomic(final: Path, table) -> int:
    """Write `table` to `final` through a hidden temporary name beside it (outputs.atomic_path:
    fsync, rename, one-line OutputError): the file appears only complete. Returns its size."""
    import pyarrow.parquet as pq

    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
    return final.stat().st_size


def finished_parts(parts: Iterable[tuple[int, Path, int]]) -> set[int]:
    """Indices of the parts ``(index, path, expected rows)`` whose file holds the expected rows.

    Leftover temporary files in the parts' directories are removed, and so is a file with other
    rows or none readable (it is written again)."""
    import pyarrow.parquet as pq

    done: set[int] = set()
    swept: set[Path] = set()
    for index, path, expected in parts:
        if path.parent not in swept:
            swept.add(path.parent)
            if path.parent.is_dir():
                for leftover in path.parent.glob(".*.parquet*tmp-*"):  # ours (TEMP_TAG) and older versions'
                    leftover.unlink(missing_ok=True)
        if not path.exists():
            continue
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception:  # noqa: BLE001 - any unreadable file is simply written again
            rows = -1
        if rows == expected:
            done.add(index)
        else:
            path.unlink()
    return done


# ------------------------------------------------------------------------------ the manifest


def fingerprint(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def manifest_header(identity: dict[str, Any], model: Any, previous: dict[str, Any] | None,
                    run: tuple[Any, str] | None, *, config: dict[str, Any], source: str,
                    **body: Any) -> dict[str, Any]:
    """A running job's manifest: the fields every batch job writes around its own `body`.

    `model` is the resolved model (its ``describe()``); `previous` the manifest resumed from,
    whose creation time and attempts carry over; `run` the MLflow (config, run id) or None."""
    return {
        "status": "running",
        "created": (previous or {}).get("created") or now(),
        "fingerprint": fingerprint(identity),
        "identity": identity,
        "model": model.describe(),
        **body,
        "config": config,
        "source": source,
        "mlflow": {"tracking_uri": run[0].uri, "run_id": run[1]} if run else None,
        "attempts": list((previous or {}).get("attempts", [])),
    }


def read_manifest(root: str | Path, fmt: str) -> dict[str, Any] | None:
    """The ``_manifest.json`` of a result directory of format `fmt` (hyena-scores, hyena-vep)."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != fmt:
            raise ValueError(f"format {data.get('format')!r}")
        return data
    except (ValueError, OSError) as err:
        raise InputError(f"{path}: not a {fmt} manifest ({err}); remove it or choose another "
                         "output.path") from None


def try_manifest(root: str | Path, fmt: str) -> dict[str, Any] | None:
    try:
        return read_manifest(root, fmt)
    except InputError:
        return None


def write_manifest(root: str | Path, manifest: dict[str, Any], fmt: str, version: int) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"format": fmt, "version": version, **manifest, "updated": now()}
    return atomic_write(root / MANIFEST_NAME, json.dumps(manifest, indent=1, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def check_output(out: OutputDir, identity: dict[str, Any], *, overwrite: bool, fmt: str, command: str,
                 model_uri: str | None = None) -> dict[str, Any] | None:
    """Before any work: the existing manifest to resume from (same fingerprint), or None for a
    fresh start. Results of another model or config are refused unless `overwrite`, which then
    deletes only the files the job writes (`out` knows them); a directory we did not write is
    never touched."""
    root = Path(out.root)
    if root.exists() and not root.is_dir():
        raise InputError(f"output.path {root} is a file; give a directory")
    if not out.exists():
        out.check_writable()
        return None
    if not out.is_ours():
        others = [e for e in out.top_level() if e != LOCK_NAME]
        if others:
            raise InputError(
                f"output.path {root} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
                f"and was not written by `{command}` (no {MANIFEST_NAME}); nothing was changed. Choose an "
                "empty or new directory"
            )
        return None
    existing = read_manifest(root, fmt) if not overwrite else try_manifest(root, fmt)
    if existing is not None and existing.get("fingerprint") == fingerprint(identity):
        return existing
    if existing is not None and not overwrite:
        old_uri = (existing.get("model") or {}).get("resolved_uri")
        raise InputError(
            f"output.path {root} holds results of a different model or config "
            f"({describe_difference(existing.get('identity', {}), identity, old_uri, model_uri)}); choose another "
            f"output.path, or set output.overwrite: true ({command} --overwrite) to replace them"
        )
    out.clear(first=[MANIFEST_NAME], what="--overwrite/--fresh")  # overwrite, or an attempt of ours killed before its manifest
    return None


def claim_for_run(out: OutputDir, previous: dict[str, Any] | None, *, fresh: bool,
                  job: str) -> dict[str, Any] | None:
    """Claim the output directory for this run; `--fresh` first drops a previous result (manifest
    first, so an interruption never leaves chunks that look finished). Returns what stays."""
    if fresh and previous is not None:
        out.clear(first=[MANIFEST_NAME], what="--fresh")
        previous = None
    out.claim(job=job)
    return previous


def describe_difference(old: dict[str, Any], new: dict[str, Any], old_uri: str | None = None,
                        new_uri: str | None = None) -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key == "model":
            parts.append(f"model: {_model(old.get(key), old_uri)} -> {_model(new.get(key), new_uri)}")
        else:
            parts.append(f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}")
    return "; ".join(parts) or "unknown difference"


def _model(value: Any, uri: str | None) -> str:
    digest = str((value or {}).get("sha256", ""))[:12] if isinstance(value, dict) else ""
    return f"{uri or 'weights'} (sha256 {digest}...)"


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
