"""The genome layout: which records, split how, cut into which chunks. Pure functions, no Ray.

`plan_layout(cfg)` makes every check that needs no bases (files, indexes, names, selection,
splits, BED) and returns a `GenomeLayout`; its `chunk_specs()` are then read and tokenised by
`read_chunk` / `chunks_table` (`hyena_platform.data.chunks`), where a
character that is not a nucleotide is an error naming the file, the record and the position.

Coordinates are 0-based, end-exclusive (BED style) everywhere.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

from hyena_platform.data.config import SPLITS, DataConfig
from hyena_platform.data.fasta import open_fasta
from hyena_platform.errors import InputError, few
from hyena_platform.genome_assets import BUNDLED_GENOME
from hyena_platform.span import Span


def bundled_genome_path() -> Path:
    """The V. cholerae O1 N16961 genome shipped in the package (bgzip, with .fai and .gzi)."""
    return BUNDLED_GENOME


# --------------------------------------------------------------------------------------------
# Layout: what will be read, in which split


@dataclass(frozen=True)
class Record:
    """One selected FASTA record."""

    name: str
    length: int
    source: str  # the FASTA path


@dataclass(frozen=True)
class Segment(Span):
    """A contiguous interval of one split; windows never cross a segment boundary."""

    chrom: str
    start: int
    end: int
    split: str


@dataclass(frozen=True)
class ChunkSpec(Span):
    """One chunk to read: [start, end) of `chrom` in `source`, inside the segment at `segment_start`."""

    source: str
    chrom: str
    start: int
    end: int
    split: str
    segment_start: int


@dataclass(frozen=True)
class GenomeLayout:
    """Selected records and split segments; the same for a FASTA and the shards made from it."""

    records: tuple[Record, ...]
    segments: tuple[Segment, ...]
    chunk_size: int
    keep_soft_mask: bool

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.source for r in self.records))

    def split_bases(self) -> dict[str, int]:
        """Bases per split, for every split that has any."""
        out: dict[str, int] = {}
        for seg in self.segments:
            out[seg.split] = out.get(seg.split, 0) + seg.bases
        return {s: out[s] for s in SPLITS if s in out}

    def chrom_splits(self) -> dict[str, dict[str, int]]:
        """Per chromosome: bases in each split."""
        out: dict[str, dict[str, int]] = {r.name: {} for r in self.records}
        for seg in self.segments:
            per = out[seg.chrom]
            per[seg.split] = per.get(seg.split, 0) + seg.bases
        return out

    def chunk_specs(self) -> list[ChunkSpec]:
        source = {r.name: r.source for r in self.records}
        specs = []
        for seg in self.segments:
            for start in range(seg.start, seg.end, self.chunk_size):
                end = min(start + self.chunk_size, seg.end)
                specs.append(ChunkSpec(source[seg.chrom], seg.chrom, start, end, seg.split, seg.start))
        return specs

    def check_window(self, length: int, split: str) -> None:
        """Raise InputError unless `split` exists and a window of `length` + 1 tokens fits in it."""
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        segs = [s for s in self.segments if s.split == split]
        if not segs:
            have = ", ".join(f"{k} ({v:,} bp)" for k, v in self.split_bases().items())
            raise InputError(f"split {split!r} is empty in this genome layout (splits: {have}); "
                             "set valid_chroms/test_chroms or the BED split column")
        if length < 1:
            raise InputError(f"window length must be >= 1, got {length}")
        longest = max(segs, key=lambda s: s.bases)
        if length + 1 > longest.bases:
            raise InputError(
                f"window length {length:,} (+1 token for the shifted labels) is longer than every "
                f"{split} sequence: the longest is {longest.chrom}:{longest.start}-{longest.end} "
                f"({longest.bases:,} bp); use a shorter stage length"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_size": self.chunk_size,
            "keep_soft_mask": self.keep_soft_mask,
            "records": [asdict(r) for r in self.records],
            "segments": [asdict(s) for s in self.segments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenomeLayout":
        return cls(
            records=tuple(Record(**r) for r in data["records"]),
            segments=tuple(Segment(**s) for s in data["segments"]),
            chunk_size=int(data["chunk_size"]),
            keep_soft_mask=bool(data["keep_soft_mask"]),
        )


def plan_layout(cfg: DataConfig) -> GenomeLayout:
    """Every check that needs no bases: files, indexes, names, selection, splits, BED."""
    if cfg.shards is not None:
        raise ValueError("plan_layout reads FASTA; a shard directory's layout is in its manifest")
    # Absolute paths: Ray workers may not share the driver's working directory.
    paths = [str(bundled_genome_path())] if cfg.uses_bundled_genome else [os.path.abspath(p) for p in cfg.fasta]
    records = read_records(paths, index_cache=cfg.index_cache)
    selected = select_records(records, include=cfg.include, exclude=cfg.exclude, min_length=cfg.min_length)
    if cfg.bed is not None:
        segments = read_bed(cfg.bed, all_records=records, selected=selected)
    else:
        segments = chromosome_splits(records, selected, valid=cfg.valid_chroms or [], test=cfg.test_chroms)
    return GenomeLayout(tuple(selected), tuple(segments), cfg.chunk_size, cfg.keep_soft_mask)


# --------------------------------------------------------------------------------------------
# Records


def read_records(paths: Sequence[str], *, index_cache: str | None = None) -> list[Record]:
    """Records of every FASTA, in file order. Names must be unique across all files."""
    if not paths:
        raise InputError("no FASTA file given")
    records: list[Record] = []
    seen: dict[str, str] = {}
    for path in paths:
        fa = open_fasta(path, index_cache=index_cache)
        names = list(fa.keys())
        if not names:
            raise InputError(f"{path}: empty FASTA: no record found")
        for name in names:
            if name in seen:
                raise InputError(f"duplicate sequence name {name!r} in {seen[name]} and {path}; "
                                 "every record needs a unique name across all FASTA files")
            seen[name] = path
            records.append(Record(name, int(fa.faidx.index[name].rlen), path))
    if not any(r.length for r in records):
        raise InputError(f"{', '.join(paths)}: every record is empty (0 bases)")
    return records


# --------------------------------------------------------------------------------------------
# Selection and splits


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def select_records(records: Sequence[Record], *, include: Sequence[str], exclude: Sequence[str],
                   min_length: int) -> list[Record]:
    """Apply include/exclude (names or fnmatch patterns) and min_length; records of 0 bases go."""
    names = [r.name for r in records]
    for pattern in include:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise InputError(f"include entry {pattern!r} matches no FASTA record; records: {few_names(names)}")
    selected = [
        r for r in records
        if (not include or _matches(r.name, include)) and not _matches(r.name, exclude)
        and r.length >= max(min_length, 1)
    ]
    if not selected:
        raise InputError(f"no record left after include={list(include)} exclude={list(exclude)} "
                         f"min_length={min_length}; records: {few_names(names, records)}")
    return selected


def few_names(names: Sequence[str], records: Sequence[Record] | None = None, limit: int = 8) -> str:
    """The first `limit` names (of `records` with their lengths, if given) for an error message."""
    if records is not None:
        names = [f"{r.name} ({r.length:,} bp)" for r in records]
    return few(names, limit)


def first_overlap(intervals: list[tuple], records: Sequence[Record]) -> tuple[tuple, tuple] | None:
    """Sort (chrom, start, end, ...) tuples in record order, in place; the first overlapping pair."""
    order = {r.name: i for i, r in enumerate(records)}
    intervals.sort(key=lambda r: (order[r[0]], r[1]))
    for prev, cur in zip(intervals, intervals[1:]):
        if prev[0] == cur[0] and cur[1] < prev[2]:
            return prev, cur
    return None


def chromosome_splits(records: Sequence[Record], selected: Sequence[Record], *,
                      valid: Sequence[str], test: Sequence[str]) -> list[Segment]:
    """Whole chromosomes as segments: valid/test by name or pattern, the rest train."""
    chosen = {r.name for r in selected}
    for key, patterns in (("valid_chroms", valid), ("test_chroms", test)):
        for pattern in patterns:
            hits = [r.name for r in records if fnmatch.fnmatchcase(r.name, pattern)]
            if not hits:
                raise InputError(f"{key} entry {pattern!r} matches no FASTA record; records: "
                                 f"{few_names([r.name for r in records])}")
            if not any(h in chosen for h in hits):
                raise InputError(
                    f"{key} entry {pattern!r} names {', '.join(hits)}, removed by include/exclude/"
                    f"min_length, so that split ends up empty"
                )
    segments = []
    for r in selected:
        split = "valid" if _matches(r.name, valid) else "test" if _matches(r.name, test) else "train"
        segments.append(Segment(r.name, 0, r.length, split))
    if not any(s.split == "train" for s in segments):
        raise InputError(f"the train split ends up empty: every selected record "
                         f"({few_names([r.name for r in selected])}) is in valid_chroms or test_chroms")
    return segments


def bed_lines(path: Path) -> Iterator[tuple[int, list[str], str]]:
    """(1-based line number, columns, text) of each data line of a BED file: blank, comment,
    `track` and `browser` lines skipped; tab-separated, or whitespace when a line has no tab."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#") or text.split(maxsplit=1)[0] in ("track", "browser"):
                continue
            yield lineno, (text.split("\t") if "\t" in text else text.split()), text


class BedInterval(NamedTuple):
    where: str  # "path:line", for errors about the line
    line: int
    chrom: str
    start: int
    end: int
    cols: list[str]  # every column; the caller reads its own beyond the first three


def bed_intervals(path: str | Path, *, columns: str, need: int = 3, lengths: Mapping[str, int] | None = None,
                  noun: str = "interval", label: str = "") -> list[BedInterval]:
    """The data lines of a BED file as intervals, each checked, for every reader of BED files.

    `columns` names the expected columns in errors ("chrom, start, end, split"), `need` is how many
    a line must have; start and end must be integers; with `lengths` (record -> length) the
    chromosome must be a FASTA record and 0 <= start < end <= its length. Errors name the line
    (path:line) and the fix; a missing file, or one without a data line, is an error too
    (`label`, e.g. "target.bed ", names the key that gave the path)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{label}{path}: BED file not found")
    out = []
    for lineno, cols, text in bed_lines(p):
        where = f"{path}:{lineno}"
        if len(cols) < need:
            raise InputError(f"{where}: expected {need} columns {columns}; got {len(cols)}: {text[:80]!r}")
        chrom, start_s, end_s = (c.strip() for c in cols[:3])
        try:
            start, end = int(start_s), int(end_s)
        except ValueError:  # only track/browser/# lines are headers (skipped by bed_lines)
            raise InputError(f"{where}: start and end must be integers, got {start_s!r} {end_s!r}") from None
        if lengths is not None:
            if chrom not in lengths:
                raise InputError(f"{where}: chromosome {chrom!r} is not in the FASTA; records: "
                                 f"{few_names(list(lengths))}")
            if not 0 <= start < end <= lengths[chrom]:
                raise InputError(f"{where}: {noun} {chrom}:{start}-{end} is outside {chrom} or empty; give "
                                 f"0 <= start < end <= {lengths[chrom]:,} (BED is 0-based, end-exclusive)")
        out.append(BedInterval(where, lineno, chrom, start, end, cols))
    if not out:
        raise InputError(f"{label}{path}: BED file has no {noun}")
    return out


def read_bed(path: str, *, all_records: Sequence[Record], selected: Sequence[Record]) -> list[Segment]:
    """Intervals `chrom start end split` (tab or space separated, extra columns ignored).

    Only lines starting with '#', 'track' or 'browser' are headers; any other line that does not
    parse is an error naming it (a typo on line 1 is not silently taken for a header). Intervals
    on records removed by include/exclude/min_length are dropped; a split that had intervals and
    loses all of them that way is an error.
    """
    chosen = {r.name for r in selected}
    rows: list[tuple[str, int, int, str, int]] = []
    for iv in bed_intervals(path, columns="chrom, start, end, split", need=4,
                            lengths={r.name: r.length for r in all_records}):
        split = iv.cols[3].strip()
        if split not in SPLITS:
            raise InputError(f"{iv.where}: split {split!r} must be one of {', '.join(SPLITS)}")
        rows.append((iv.chrom, iv.start, iv.end, split, iv.line))
    overlap = first_overlap(rows, all_records)
    if overlap:
        prev, cur = overlap
        raise InputError(f"{path}:{cur[4]}: interval {cur[0]}:{cur[1]}-{cur[2]} overlaps "
                         f"line {prev[4]} ({prev[0]}:{prev[1]}-{prev[2]})")
    kept = [Segment(c, s, e, sp) for c, s, e, sp, _ in rows if c in chosen]
    for split in SPLITS:
        had = [r[0] for r in rows if r[3] == split]
        if had and not any(s.split == split for s in kept):
            raise InputError(f"{path}: split {split!r} ends up empty: its intervals are on "
                             f"{', '.join(sorted(set(had)))}, removed by include/exclude/min_length")
    return kept
