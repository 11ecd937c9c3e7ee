"""Small FASTA files written by tests (wrapped lines, as real FASTA files are)."""

from __future__ import annotations

from pathlib import Path


def write_fasta(path: Path, records: dict[str, str], width: int = 60, description: str = "") -> Path:
    """`records` (name -> bases) as FASTA, `width` bases per line; `description` follows each name."""
    with open(path, "w") as f:
        for name, seq in records.items():
            f.write(f">{name}{' ' + description if description else ''}\n")
            for i in range(0, len(seq), width):
                f.write(seq[i:i + width] + "\n")
    return path
