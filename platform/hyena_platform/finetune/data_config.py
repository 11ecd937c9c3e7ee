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
    """Labelled data: a table (``path`` or ``train``/``valid``/``test``), a GenomicBenchmarks folder
    (``path``) or, for token tasks, ``fasta`` + ``bed`` cut into windows."""

    format: Literal["table", "genomic_benchmarks", "fasta_bed"] = "table"  # where labelled sequences come from
    path: str | None = None  # table with a split column, or the GenomicBenchmarks root
    train: str | None = None  # separate table files instead of `path`
    valid: str | None = None  # optional: null = carve valid_fraction of train
    test: str | None = None  # required with separate files
    sequence_column: str = "sequence"  # the DNA (A C G T N, IUPAC codes; case-insensitive)
    label_columns: tuple[str, ...] = ("label",)  # several: multi-label or multi-target
    split_column: str = "split"  # values train, valid, test (with data.path)
    label_names: tuple[str, ...] | None = None  # class order; null = sorted train labels
    valid_fraction: float = 0.1  # of train, when there is no valid split
    crop: Crop = "none"  # sequences longer than the model: error, or keep which part
    fasta: str | None = None  # fasta_bed: the genome (plain or bgzip)
    bed: str | None = None  # fasta_bed: labelled intervals chrom start end name [score strand]
    window: int = 1024  # fasta_bed: bases per window (the last window of a chromosome may be shorter)
    train_chroms: tuple[str, ...] = ()  # fasta_bed: chromosomes of each split
    valid_chroms: tuple[str, ...] = ()  # fasta_bed: empty = carve valid_fraction of train windows
    test_chroms: tuple[str, ...] = ()  # fasta_bed: the held-out chromosomes
    background_label: str = "background"  # fasta_bed: the class of bases outside every interval
    strand_labels: bool = False  # fasta_bed: class = name + strand ("CDS+", "CDS-")
    seed: int = 0  # the carved valid split

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
