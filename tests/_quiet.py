"""What a library printed on our terminal (issue 16): used by the tests of quiet commands."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from typing import Iterator

# A line a library printed: MLflow's "2026/11/29 23:22:28 INFO mlflow.store.db.utils: ...", Ray's
# "2026-11-29 23:22:34,465 WARNING file.py:85 -- ...", "(raylet) WARNING: ...", Python warnings,
# Ray's core worker (C++: "[... W ...] core_worker.cc:N: ... max_restarts > 0 ...").
LIBRARY_NOISE = re.compile(r"\b(INFO|WARNING)\b.*(mlflow|alembic|\.py:\d+ --)|\(raylet\)|DeprecationWarning|"
                           r"core_worker\.cc|\.cc:\d+\]?:|max_restarts|\bINFO\b")


def library_noise(output: str) -> list[str]:
    return [line for line in output.splitlines() if LIBRARY_NOISE.search(line)]


@contextlib.contextmanager
def fd2_captured() -> Iterator[list[str]]:
    """What is written to file descriptor 2 inside the block (Ray's C++ core worker of this
    process logs there, past Python's sys.stderr and pytest's capture); the list is filled at exit."""
    out: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))
