"""What a library printed on our terminal (issue 16): used by the tests of quiet commands."""

from __future__ import annotations

import re

# A line a library printed: MLflow's "2026/11/29 23:22:28 INFO mlflow.store.db.utils: ...", Ray's
# "2026-11-29 23:22:34,465 WARNING file.py:85 -- ...", "(raylet) WARNING: ...", Python warnings.
LIBRARY_NOISE = re.compile(r"\b(INFO|WARNING)\b.*(mlflow|alembic|\.py:\d+ --)|\(raylet\)|DeprecationWarning|"
                           r"core_worker\.cc|\bINFO\b")


def library_noise(output: str) -> list[str]:
    return [line for line in output.splitlines() if LIBRARY_NOISE.search(line)]
