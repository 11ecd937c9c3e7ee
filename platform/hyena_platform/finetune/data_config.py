"""The `data:` section of a fine-tuning job: where labelled sequences come from.

Three formats:

- ``table``: Parquet, CSV or TSV with a sequence column and one or more label columns; one file
  with a split column (train/valid/test) or separate ``train``/``valid``/``test`` files;
- ``genomic_benchmarks``: the GenomicBenchmarks folder layout ``ROOT/{train,test}/<class>/*.txt``
  (one sequence per file, the folder names the class);
- ``fasta_bed``: per-base labels for token tasks, from a FASTA and a BED of labelled intervals
  ``chrom start end name [score strand]``, cut into windows of ``window`` bases; splits by
  chromosome.

A missing valid split is carved from train (``valid_fraction``, seeded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Crop = Literal["none", "keep_start", "keep_end", "keep_center"]


@dataclass(frozen=True)
class FinetuneDataConfig:
    format: Literal["table", "genomic_benchmarks", "fasta_bed"] = "table"
    path: str | None = None  # table with a split column, or the GenomicBenchmarks root
    train: str | None = None  # separate table files instead of `path`
    valid: str | None = None
    test: str | None = None
    sequence_column: str = "sequence"
    label_columns: tuple[str, ...] = ("label",)  # several: multi-label or multi-target
    split_column: str = "split"
    label_names: tuple[str, ...] | None = None  # class order; null = sorted train labels
    valid_fraction: float = 0.1  # of train, when there is no valid split
    crop: Crop = "none"  # sequences longer than the model: error, or keep which part
    # fasta_bed
    fasta: str | None = None
    bed: str | None = None
    window: int = 1024  # bases per window (the last window of a chromosome may be shorter)
    train_chroms: tuple[str, ...] = ()
    valid_chroms: tuple[str, ...] = ()
    test_chroms: tuple[str, ...] = ()
    background_label: str = "background"  # the class of bases outside every interval
    strand_labels: bool = False  # class = name + strand ("CDS+", "CDS-")
    seed: int = 0

    def validate(self) -> None:
        if self.format == "table":
            if (self.path is None) == (self.train is None):
                raise ValueError("table data needs data.path (one file with a split column) or data.train "
                                 "(+ data.valid, data.test), not both")
            if self.path is None and self.test is None:
                raise ValueError("data.test is required with separate files (the test split is reported)")
            if not self.label_columns:
                raise ValueError("data.label_columns must name at least one column")
        elif self.format == "genomic_benchmarks":
            if self.path is None:
                raise ValueError("genomic_benchmarks data needs data.path (the folder holding train/ and test/)")
        else:
            if not self.fasta or not self.bed:
                raise ValueError("fasta_bed data needs data.fasta and data.bed")
            if not self.train_chroms or not self.test_chroms:
                raise ValueError("fasta_bed data needs data.train_chroms and data.test_chroms")
            if self.window < 2:
                raise ValueError(f"data.window must be >= 2, got {self.window}")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"data.valid_fraction must be in (0, 1), got {self.valid_fraction}")
