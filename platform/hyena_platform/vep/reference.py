"""Reference bases for variant windows: a FASTA read in cached blocks.

Variants of a sorted VCF come in clusters, and each one asks for a few hundred bases (a window,
the REF check, left-alignment); reading aligned 64 Ki-base blocks once and slicing them turns
thousands of small reads of a bgzip FASTA into a few block reads (hyena_platform.data.fasta's
reader: BGZF blocks found with the .gzi).
"""

from __future__ import annotations

from collections import OrderedDict

from hyena_platform.data.fasta import fasta_reader
from hyena_platform.errors import InputError

BLOCK = 1 << 16
_NEWLINES = b"\r\n"


class ReferenceFetcher:
    """``fetch(contig, start, end) -> str``: bases of a record, case kept, by 0-based coordinates."""

    def __init__(self, sources: dict[str, str], lengths: dict[str, int], *, index_cache: str | None = None,
                 max_blocks: int = 256):
        self.sources, self.lengths, self.index_cache = sources, lengths, index_cache
        self.blocks: OrderedDict[tuple[str, int], str] = OrderedDict()
        self.max_blocks = max_blocks

    def __call__(self, contig: str, start: int, end: int) -> str:
        if start >= end:
            return ""
        first, last = start // BLOCK, (end - 1) // BLOCK
        text = "".join(self._block(contig, b) for b in range(first, last + 1))
        return text[start - first * BLOCK: end - first * BLOCK]

    def _block(self, contig: str, index: int) -> str:
        key = (contig, index)
        text = self.blocks.get(key)
        if text is not None:
            self.blocks.move_to_end(key)
            return text
        source, length = self.sources[contig], self.lengths[contig]
        lo, hi = index * BLOCK, min(length, (index + 1) * BLOCK)
        raw = fasta_reader(source, index_cache=self.index_cache).raw(contig, lo, hi)
        text = raw.translate(None, _NEWLINES).decode("latin-1")  # byte for byte; the tokenizer names bad ones
        if len(text) != hi - lo:
            raise InputError(f"{source}, record {contig!r}: read {len(text)} bases at {lo}, expected "
                             f"{hi - lo}; the index looks stale: delete {source}.fai (and .gzi) and retry")
        self.blocks[key] = text
        if len(self.blocks) > self.max_blocks:
            self.blocks.popitem(last=False)
        return text
