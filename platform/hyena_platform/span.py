"""`Span`: what every interval type of the platform shares, 0-based end-exclusive coordinates.

A genome segment (data.genome.Segment), a chunk to read (data.genome.ChunkSpec), a region or
chunk to score (score.tiling.Region, Chunk) and the reference bases a variant replaces
(vep.alleles.Edit) all hold ``[start, end)``; their size is computed here once.
"""

from __future__ import annotations


class Span:
    """Mixin of a dataclass with ``start`` and ``end`` fields, the interval ``[start, end)``."""

    start: int
    end: int

    @property
    def bases(self) -> int:
        """How many bases ``[start, end)`` holds."""
        return self.end - self.start
