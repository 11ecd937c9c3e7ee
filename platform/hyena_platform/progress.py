"""How progress reads on the terminal: shared formatting for every command's progress lines."""

from __future__ import annotations

import math


def format_duration(seconds: float | None) -> str:
    """H:MM:SS for progress lines; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
