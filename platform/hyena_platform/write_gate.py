"""The gate between a batch job's driver and its writer actors: when the job stops, no part file
is half-written and none is started afterwards.

Ray ends a job's actors when its driver stops (Ctrl-C, an error), without running their
`finally` blocks: a writer killed in the middle of a part leaves its temporary file, and one still
running may begin another part after the driver released the output's lock. So while a pool runs
(`writers_allowed`, in the driver) a gate file exists in the output directory; a writer holds a
shared flock on it for each part it writes (`write_permit`) and refuses to begin once it is gone.
When the pool stops, the driver takes the exclusive lock, which waits for the parts being written
(the kernel releases a killed writer's lock), removes the gate, then the temporary files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from hyena_platform.errors import HyenaPlatformError
from hyena_platform.outputs import TEMP_TAG

GATE_NAME = f".writers{TEMP_TAG}gate"  # a temporary name: always owned by the job, never left


class WritersStopped(HyenaPlatformError):
    """A writer was asked to write after its job's driver stopped the pool."""


@contextlib.contextmanager
def writers_allowed(root: Path, *, wait_s: float = 60.0) -> Iterator[None]:
    """Driver: writers may write parts under `root` inside the block. Leaving it (finished,
    failed or interrupted) waits up to `wait_s` for the parts being written, stops later ones
    and removes temporary files that killed writers left."""
    root.mkdir(parents=True, exist_ok=True)
    gate = root / GATE_NAME
    gate.touch()
    try:
        yield
    finally:
        _close(gate, wait_s)
        _remove_temporaries(root)


@contextlib.contextmanager
def write_permit(root: str | Path) -> Iterator[None]:
    """Writer: hold this while writing one part under `root` (a job's output directory)."""
    gate = Path(root) / GATE_NAME
    try:
        fd = os.open(gate, os.O_RDONLY)
    except FileNotFoundError:
        raise _stopped(gate) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink == 0:  # removed while we waited for the lock
            raise _stopped(gate)
        yield
    finally:
        os.close(fd)  # releases the lock


def _stopped(gate: Path) -> WritersStopped:
    return WritersStopped(f"{gate.parent}: the job writing here has stopped ({gate.name} is gone); "
                          f"run the job again to resume it")


def _close(gate: Path, wait_s: float) -> None:
    try:
        fd = os.open(gate, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:  # not a blocking flock: a writer stuck on a dead disk must not hang Ctrl-C
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break  # what it leaves half-written, a rerun removes (result_set.finished_parts)
                time.sleep(0.01)
        gate.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _remove_temporaries(root: Path) -> None:
    for path in root.rglob("*"):
        if TEMP_TAG in path.name and path.is_file():  # every temporary name (outputs.temp_name)
            path.unlink(missing_ok=True)
