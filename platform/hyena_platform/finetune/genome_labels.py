"""Per-base labels over a genome: FASTA + a BED of labelled intervals -> windows for token tasks.

BED columns: ``chrom start end name [score strand]`` (0-based, half-open; blank, comment,
`track` and `browser` lines skipped by the data layer's `bed_intervals`). Every base outside all
intervals has the background class; a base inside an interval takes the interval's class (the
name, or name + strand with ``strand_labels``); where intervals overlap, the later BED line wins.
Chromosomes are tiled into windows of ``window`` bases (the last one of a chromosome shorter);
splits are by chromosome, and a missing valid split is carved from train windows.
"""

from __future__ import annotations

import numpy as np

from hyena_platform.data.fasta import fasta_reader
from hyena_platform.data.genome import Record, bed_intervals, read_records
from hyena_platform.errors import InputError
from hyena_platform.finetune.examples import Split, TaskData, ensure_valid, hash_files
from hyena_platform.finetune.data_config import FinetuneDataConfig



def load_fasta_bed(cfg: FinetuneDataConfig, *, problem_type: str) -> TaskData:
    if problem_type != "single_label_classification":
        raise InputError("BED labels are classes: set task.problem_type: single_label_classification")
    records = {r.name: r for r in read_records([cfg.fasta])}
    intervals = read_label_bed(cfg.bed, records, strand_labels=cfg.strand_labels)
    names = class_names(intervals, cfg.background_label)
    index = {n: i for i, n in enumerate(names)}
    splits: dict[str, Split] = {}
    for split, chroms in (("train", cfg.train_chroms), ("valid", cfg.valid_chroms), ("test", cfg.test_chroms)):
        for chrom in chroms:
            if chrom not in records:
                raise InputError(f"data.{split}_chroms: {chrom!r} is not in {cfg.fasta}; records: {', '.join(records)}")
        windows = [w for c in chroms for w in chromosome_windows(records[c], intervals.get(c, []), index, cfg.window)]
        splits[split] = Split([w[0] for w in windows], [w[1] for w in windows], [w[2] for w in windows])
    overlap = set(cfg.train_chroms) & (set(cfg.valid_chroms) | set(cfg.test_chroms))
    if overlap or set(cfg.valid_chroms) & set(cfg.test_chroms):
        raise InputError(f"data: chromosome {sorted(overlap or set(cfg.valid_chroms) & set(cfg.test_chroms))[0]!r} "
                         "is in two splits; each chromosome belongs to one of train_chroms, valid_chroms, test_chroms")
    splits = ensure_valid(splits, cfg.valid_fraction, cfg.seed)
    return TaskData("token", problem_type, names, splits, hash_files([cfg.fasta, cfg.bed]), (cfg.fasta, cfg.bed))


def read_label_bed(path: str, records: dict[str, Record], *, strand_labels: bool) -> dict[str, list[tuple[int, int, str]]]:
    """chrom -> [(start, end, class name)] in file order; errors name the line and the fix."""
    columns = "chrom, start, end, name, score, strand" if strand_labels else "chrom, start, end, name"
    out: dict[str, list[tuple[int, int, str]]] = {}
    for iv in bed_intervals(path, columns=columns, need=6 if strand_labels else 4,
                            lengths={name: r.length for name, r in records.items()}):
        name = iv.cols[3].strip()
        if strand_labels:
            strand = iv.cols[5].strip()
            if strand not in ("+", "-"):
                raise InputError(f"{iv.where}: strand {strand!r} must be + or - (data.strand_labels is on)")
            name += strand
        out.setdefault(iv.chrom, []).append((iv.start, iv.end, name))
    return out


def class_names(intervals: dict[str, list[tuple[int, int, str]]], background: str) -> tuple[str, ...]:
    names = sorted({n for rows in intervals.values() for _, _, n in rows})
    if background in names:
        raise InputError(f"BED name {background!r} equals data.background_label; rename one")
    return (background, *names)


def base_labels(length: int, intervals: list[tuple[int, int, str]], index: dict[str, int]) -> np.ndarray:
    """(length,) int8 class per base; later intervals overwrite earlier ones."""
    labels = np.zeros(length, dtype=np.int8)
    for start, end, name in intervals:
        labels[start:end] = index[name]
    return labels


def chromosome_windows(record: Record, intervals: list[tuple[int, int, str]], index: dict[str, int],
                       window: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(tokens uint8, labels int8, 'chrom:start-end') per window tiling the chromosome."""
    from hyena_platform.data.fasta import tokenize_codes

    raw = fasta_reader(record.source).raw(record.name, 0, record.length).translate(None, b"\r\n")
    tokens = tokenize_codes(np.frombuffer(raw, dtype=np.uint8), source=record.source, chrom=record.name, start=0)
    labels = base_labels(record.length, intervals, index)
    return [(tokens[s:s + window], labels[s:s + window], f"{record.name}:{s}-{min(s + window, record.length)}")
            for s in range(0, record.length, window)]
