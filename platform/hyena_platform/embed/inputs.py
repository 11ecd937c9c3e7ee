"""The embedding job's inputs, checked before any work: items (one sequence each) and chunks.

An item is a FASTA record, a BED region of a FASTA (bases read by the replica), or a table row
(its sequence carried inline). Every check that can fail runs here, on the driver, with one line
naming the file and the place: an empty sequence, a duplicate id, a non-DNA character (table
input; FASTA bases are checked as they are read), a region outside its chromosome, a sequence
longer than the window when `long_sequences: error`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from hyena.tokenizer import TokenizerError, as_bytes_array, encode_bytes
from hyena_platform.data.genome import Record, bed_intervals, bundled_genome_path, read_records, select_records
from hyena_platform.embed.config import EmbeddingSection, InputSection
from hyena_platform.errors import ConfigError, InputError


@dataclass(frozen=True)
class Item:
    """One sequence to embed. Genome items have chrom/start/end/source; table items a sequence."""

    id: str
    length: int
    chrom: str | None = None
    start: int | None = None  # 0-based, end-exclusive, on chrom
    end: int | None = None
    source: str | None = None  # the FASTA file
    sequence: str | None = None  # table input

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def windows(length: int, window: int) -> list[tuple[int, int]]:
    """The job's rule for long sequences: tiles [k W, min((k+1) W, length)) from the start."""
    return [(s, min(s + window, length)) for s in range(0, length, window)]


def read_items(section: InputSection) -> tuple[list[Item], str]:
    """All items, in input order, and a one-line description of the input kind."""
    if section.table is not None:
        items = read_table(section)
        kind = f"table {section.table}"
    else:
        paths = list(section.fasta) or [str(bundled_genome_path())]
        records = read_records(paths, index_cache=section.index_cache)
        if section.bed is not None:
            items = read_bed_items(section.bed, records)
            kind = f"BED regions {section.bed} of {', '.join(paths)}"
        else:
            chosen = select_records(records, include=section.records, exclude=[], min_length=0)
            items = [Item(r.name, r.length, r.name, 0, r.length, r.source) for r in chosen]
            kind = f"FASTA records of {', '.join(paths)}"
    if not items:
        raise InputError(f"input: {kind} holds no sequence to embed")
    return items, kind


def check_lengths(items: Iterable[Item], embedding: EmbeddingSection, l_max: int, where: str) -> int:
    """The window (bases per model call); InputError if a sequence is too long and may not be split."""
    window = embedding.window or l_max
    if window > l_max:
        raise ConfigError(f"embedding.window={window:,} is larger than this model's l_max {l_max:,}; "
                          f"use embedding.window <= {l_max:,}")
    if embedding.long_sequences == "error":
        for item in items:
            if item.length > window:
                raise InputError(
                    f"{where}: {item.id} has {item.length:,} bases, more than the window of {window:,} "
                    "(embedding.long_sequences: error); set embedding.long_sequences: windows, or embed "
                    "shorter regions")
    return window


def plan_chunks(items: list[Item], chunk_size: int) -> list[list[int]]:
    """Item indices per output file: consecutive groups of `chunk_size`."""
    return [list(range(s, min(s + chunk_size, len(items)))) for s in range(0, len(items), chunk_size)]


def items_digest(items: Iterable[Item]) -> str:
    """Content identity of the inputs (ids, coordinates, inline sequences)."""
    h = hashlib.sha256()
    for item in items:
        h.update(repr((item.id, item.chrom, item.start, item.end, item.length)).encode())
        if item.sequence is not None:
            h.update(item.sequence.encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------
# BED and tables


def read_bed_items(path: str, records: list[Record]) -> list[Item]:
    """BED regions: chrom, start, end[, name]; the name (or chrom:start-end) is the id."""
    by_name = {r.name: r for r in records}
    items: list[Item] = []
    seen: dict[str, int] = {}
    for iv in bed_intervals(path, columns="chrom, start, end[, name]", noun="region", label="input.bed ",
                            lengths={r.name: r.length for r in records}):
        item_id = iv.cols[3] if len(iv.cols) > 3 and iv.cols[3] else f"{iv.chrom}:{iv.start}-{iv.end}"
        _unique(item_id, seen, iv.where, "name")
        items.append(Item(item_id, iv.end - iv.start, iv.chrom, iv.start, iv.end, by_name[iv.chrom].source))
    return items


def read_table(section: InputSection) -> list[Item]:
    """Rows of a Parquet, CSV or TSV table: id and sequence columns, checked row by row."""
    path = Path(section.table)
    if not path.is_file():
        raise InputError(f"input.table {path}: file not found")
    table = _read_table_file(path)
    for column in (section.id_column, section.sequence_column):
        if column not in table.column_names:
            raise InputError(f"input.table {path}: no column {column!r} (columns: {', '.join(table.column_names)}); "
                             "set input.id_column / input.sequence_column")
    ids = table.column(section.id_column).to_pylist()
    sequences = table.column(section.sequence_column).to_pylist()
    items: list[Item] = []
    seen: dict[str, int] = {}
    for row, (item_id, seq) in enumerate(zip(ids, sequences), start=1):
        where = f"input.table {path} row {row}"
        if item_id is None or str(item_id) == "":
            raise InputError(f"{where}: empty id in column {section.id_column!r}; every row needs a unique id")
        item_id = str(item_id)
        _unique(item_id, seen, where, section.id_column)
        if not seq:
            raise InputError(f"{where} (id {item_id}): empty sequence; remove the row or fill it")
        try:
            encode_bytes(as_bytes_array(str(seq)), where=f"{where} (id {item_id})")
        except TokenizerError as err:
            raise InputError(str(err)) from None
        items.append(Item(item_id, len(seq), sequence=str(seq)))
    return items


def _read_table_file(path: Path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        delimiter = "\t" if path.suffix in (".tsv", ".tab") else ","
        return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                              convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a malformed file
        raise InputError(f"input.table {path}: cannot read it as "
                         f"{'Parquet' if path.suffix == '.parquet' else 'CSV/TSV'} ({' '.join(str(err).split())[:200]})") from None


def _unique(item_id: str, seen: dict[str, int], where: str, what: str) -> None:
    if item_id in seen:
        raise InputError(f"{where}: duplicate {what} {item_id!r} (first at item {seen[item_id] + 1}); "
                         "ids must be unique: rename or drop one")
    seen[item_id] = len(seen)


def chunk_rows(items: list[Item], chunk: list[int], pooling: str) -> int:
    """Rows a chunk's file holds: one per sequence, or one per base."""
    return sum(items[i].length for i in chunk) if pooling == "none" else len(chunk)


def ceil_windows(length: int, window: int) -> int:
    return math.ceil(length / window)
