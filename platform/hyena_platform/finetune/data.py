"""Labelled sequences for fine-tuning: tables and the GenomicBenchmarks layout -> `TaskData`.

Pure functions (pyarrow for Parquet/CSV/TSV, numpy); no Ray. Every bad input raises InputError
naming the file, the row (1-based data row, after the header) and the fix. Token-level tasks
from a FASTA and a BED are in `genome_labels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hyena.tokenizer import TokenizerError, as_bytes_array, encode_bytes
from hyena_platform.errors import InputError
from hyena_platform.finetune.data_config import FinetuneDataConfig
from hyena_platform.finetune.examples import SPLIT_NAMES, Split, TaskData, ensure_valid, hash_files



# --------------------------------------------------------------------------------------------
# Entry point


def load_task_data(cfg: FinetuneDataConfig, *, task: str, problem_type: str, base: Path | None = None) -> TaskData:
    """Read, check and split the labelled data named by the job's `data:` section."""
    if cfg.format == "fasta_bed":
        from hyena_platform.finetune.genome_labels import load_fasta_bed

        if task != "token":
            raise InputError("data.format fasta_bed gives per-base labels: set task.type: token")
        return load_fasta_bed(cfg, problem_type=problem_type)
    if task == "token":
        raise InputError(f"data.format {cfg.format} gives one label per sequence: set task.type: sequence "
                         "(per-base labels come from data.format: fasta_bed)")
    if cfg.format == "genomic_benchmarks":
        raw, sources = read_genomic_benchmarks(Path(cfg.path))
        columns = ("label",)
    else:
        raw, sources = read_tables(cfg)
        columns = tuple(cfg.label_columns)
    names, labelled = encode_labels(raw, columns, problem_type, cfg.label_names)
    splits = {s: Split([r.tokens for r in rows], labels, [r.where for r in rows])
              for s, (rows, labels) in labelled.items()}
    splits = ensure_valid(splits, cfg.valid_fraction, cfg.seed)
    for s in SPLIT_NAMES:
        if not len(splits.get(s, Split([], [], []))):
            raise InputError(f"{', '.join(sources)}: the {s} split is empty; give it rows "
                             f"(split column value '{s}') or a data.{s} file")
    return TaskData("sequence", problem_type, names, splits, hash_files(sources), tuple(sources))


# --------------------------------------------------------------------------------------------
# Reading rows


@dataclass
class Row:
    tokens: np.ndarray
    labels: tuple[Any, ...]
    split: str
    where: str  # file:row N, for errors and prediction output


def read_tables(cfg: FinetuneDataConfig) -> tuple[list[Row], list[str]]:
    if cfg.path is not None:
        return read_table(cfg.path, cfg, split=None), [cfg.path]
    rows, sources = [], []
    for split in SPLIT_NAMES:
        path = getattr(cfg, split)
        if path is not None:
            rows += read_table(path, cfg, split=split)
            sources.append(path)
    return rows, sources


def read_table(path: str, cfg: FinetuneDataConfig, *, split: str | None) -> list[Row]:
    """Rows of one Parquet/CSV/TSV file; `split` None means the file has a split column."""
    table = _read_arrow(Path(path))
    columns = table.column_names
    wanted = [cfg.sequence_column, *cfg.label_columns] + ([cfg.split_column] if split is None else [])
    for name in wanted:
        if name not in columns:
            key = ("data.sequence_column" if name == cfg.sequence_column else
                   "data.split_column (or give data.train/valid/test files)" if name == cfg.split_column else
                   "data.label_columns")
            raise InputError(f"{path}: no column {name!r}; columns are {', '.join(columns)}; set {key}")
    if table.num_rows == 0:
        raise InputError(f"{path}: the table has no rows")
    seqs = table.column(cfg.sequence_column).to_pylist()
    labels = [table.column(c).to_pylist() for c in cfg.label_columns]
    splits = table.column(cfg.split_column).to_pylist() if split is None else [split] * len(seqs)
    rows = []
    for i, seq in enumerate(seqs):
        where = f"{path}: row {i + 1}"
        if not isinstance(seq, str) or not seq:
            raise InputError(f"{where}: empty or missing sequence in column {cfg.sequence_column!r}")
        s = _split_name(splits[i], where)
        rows.append(Row(tokenize(seq, where), tuple(col[i] for col in labels), s, where))
    return rows


def _read_arrow(path: Path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(f"{path}: table file not found")
    name = path.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".parquet"):
            return pq.read_table(path)
        if name.endswith((".csv", ".tsv", ".txt")):
            delimiter = "," if name.endswith(".csv") else "\t"
            return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                  convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    except (pa.ArrowInvalid, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot be read as a table ({first})") from None
    raise InputError(f"{path}: unknown table type; use .parquet, .csv or .tsv (optionally .gz)")


def _split_name(value: Any, where: str) -> str:
    if value not in SPLIT_NAMES:
        raise InputError(f"{where}: split {value!r} must be one of {', '.join(SPLIT_NAMES)}")
    return value


def tokenize(seq: str, where: str) -> np.ndarray:
    """Official ids of a sequence; a non-DNA character is an error naming its position."""
    try:
        return encode_bytes(as_bytes_array(seq.strip()), where=where)
    except TokenizerError as err:
        raise InputError(str(err)) from None


def read_genomic_benchmarks(root: Path) -> tuple[list[Row], list[str]]:
    """ROOT/{train,test}/<class>/*.txt, one sequence per file; the folder names the class."""
    if not root.is_dir():
        raise InputError(f"{root}: GenomicBenchmarks folder not found (expected train/<class>/*.txt, test/<class>/*.txt)")
    rows: list[Row] = []
    files: list[str] = []
    for split in ("train", "valid", "test"):
        folder = root / split
        if not folder.is_dir():
            if split == "valid":
                continue
            raise InputError(f"{root}: no {split}/ folder; the GenomicBenchmarks layout is {split}/<class>/*.txt")
        classes = sorted(p for p in folder.iterdir() if p.is_dir())
        if not classes:
            raise InputError(f"{folder}: no class folders; expected {split}/<class>/*.txt")
        for cls in classes:
            for txt in sorted(cls.glob("*.txt")):
                files.append(str(txt))
                rows.append(Row(tokenize(txt.read_text(), str(txt)), (cls.name,), split, str(txt)))
    return rows, files


# --------------------------------------------------------------------------------------------
# Labels


def encode_labels(rows: list[Row], columns: Sequence[str], problem_type: str,
                  label_names: Sequence[str] | None) -> tuple[tuple[str, ...], dict[str, tuple[list[Row], np.ndarray]]]:
    """(label names, split -> (rows, label array)). Class names from the train split (sorted) or
    `label_names`; a class seen only in valid/test is an error naming its row."""
    by_split: dict[str, list[Row]] = {s: [r for r in rows if r.split == s] for s in SPLIT_NAMES}
    for r in rows:
        for col, v in zip(columns, r.labels):
            if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
                raise InputError(f"{r.where}: empty label in column {col!r}; every row needs a label")
    if problem_type == "single_label_classification":
        if len(columns) != 1:
            raise InputError(f"single-label classification takes one label column, got {', '.join(columns)}; "
                             "use task.problem_type: multi_label_classification for several")
        _check_label_kinds(rows, columns[0])
        names = tuple(label_names) if label_names else tuple(sorted({_label_text(r.labels[0]) for r in by_split["train"]},
                                                                    key=_natural))
        index = {n: i for i, n in enumerate(names)}
        if len(names) < 2:
            raise InputError(f"{_first_source(rows)}: the train split has {len(names)} class(es) ({', '.join(names)}); "
                             "classification needs at least two")
        out = {}
        for s, rs in by_split.items():
            for r in rs:
                if _label_text(r.labels[0]) not in index:
                    raise InputError(f"{r.where}: class {_label_text(r.labels[0])!r} is not among the train classes "
                                     f"({', '.join(names)}); fix the label or add train rows of that class")
            out[s] = (rs, np.array([index[_label_text(r.labels[0])] for r in rs], dtype=np.int64))
        return names, out
    names = tuple(label_names) if label_names else tuple(columns)
    if len(names) != len(columns):
        raise InputError(f"data.label_names has {len(names)} names for {len(columns)} label columns")
    out = {s: (rs, np.array([[_number(v, r.where, c, problem_type) for c, v in zip(columns, r.labels)] for r in rs],
                            dtype=np.float32).reshape(len(rs), len(columns))) for s, rs in by_split.items()}
    return names, out


def _label_text(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _natural(name: str) -> tuple:
    """Numbers in numeric order (2 before 10), names alphabetically."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)


def _check_label_kinds(rows: list[Row], column: str) -> None:
    """All class labels numbers, or all names: a mix is a typo or a shifted column."""
    numeric = [r for r in rows if _natural(_label_text(r.labels[0]))[0] == 0]
    if numeric and len(numeric) != len(rows):
        text = next(r for r in rows if _natural(_label_text(r.labels[0]))[0] == 1)
        raise InputError(f"{text.where}: mixed label types in column {column!r}: {_label_text(text.labels[0])!r} is a "
                         f"name but {numeric[0].where} has the number {_label_text(numeric[0].labels[0])!r}; use one kind")


def _number(v: Any, where: str, column: str, problem_type: str) -> float:
    if isinstance(v, bool):
        v = float(v)
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{where}: label {v!r} in column {column!r} is not a number; "
                         f"{problem_type.replace('_', ' ')} needs numeric labels") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: label {v!r} in column {column!r} is not finite")
    if problem_type == "multi_label_classification" and x not in (0.0, 1.0):
        raise InputError(f"{where}: label {v!r} in column {column!r} must be 0 or 1 for multi-label classification")
    return x


def _first_source(rows: list[Row]) -> str:
    return rows[0].where.split(": row")[0] if rows else "data"
