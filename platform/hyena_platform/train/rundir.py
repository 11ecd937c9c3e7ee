"""The Ray Train run directory (checkpoint.storage_path / run name) as an owned output.

Ray Train writes ``checkpoint_*/`` directories, ``checkpoint_manager_snapshot.json`` and
``.validate_storage_marker`` there; this job adds its ownership marker and lock
(hyena_platform.outputs). ``--fresh`` deletes exactly those files and refuses, deleting
nothing, when the directory holds anything else (e.g. `storage_path` + `name` pointing at a
user's directory).
"""

from __future__ import annotations

from hyena_platform.outputs import OutputDir

KIND = "hyena-train-run"
RAY_TRAIN_FILES = ("checkpoint_*/**", "checkpoint_manager_snapshot.json", ".validate_storage_marker")


def run_directory(storage: str, name: str) -> OutputDir:
    """The OutputDir of run `name` under `storage` (a local path or a pyarrow URI)."""
    return OutputDir(f"{storage.rstrip('/')}/{name}", kind=KIND, owned=RAY_TRAIN_FILES,
                     legacy_marker=_written_by_ray_train)


def _written_by_ray_train(out: OutputDir) -> bool:
    """A run directory from before markers existed: Ray Train's storage marker is there and
    every file is one Ray Train writes."""
    entries = out.entries()
    return ".validate_storage_marker" in entries and not out.foreign()
