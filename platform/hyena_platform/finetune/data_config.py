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

from typing import Literal

from pydantic import Field

from hyena_platform.config import section

Crop = Literal["none", "keep_start", "keep_end", "keep_center"]


@section
class FinetuneDataConfig:
    """Labelled data: a table (``path`` or ``train``/``valid``/``test``), a GenomicBenchmarks folder
    (``path``) or, for token tasks, ``fasta`` + ``bed`` cut into windows."""

    format: Literal["table", "genomic_benchmarks", "fasta_bed"] = Field("table", description=(
        "where labelled sequences come from"))
    path: str | None = Field(None, description="table with a split column, or the GenomicBenchmarks root")
    train: str | None = Field(None, description="separate table files instead of `path`")
    valid: str | None = Field(None, description="optional: null = carve valid_fraction of train")
    test: str | None = Field(None, description="required with separate files")
    sequence_column: str = Field("sequence", description="the DNA (A C G T N, IUPAC codes; case-insensitive)")
    label_columns: tuple[str, ...] = Field(("label",), description="several: multi-label or multi-target")
    split_column: str = Field("split", description="values train, valid, test (with data.path)")
    label_names: tuple[str, ...] | None = Field(None, description="class order; null = sorted train labels")
    valid_fraction: float = Field(0.1, description="of train, when there is no valid split")
    crop: Crop = Field("none", description="sequences longer than the model: error, or keep which part")
    fasta: str | None = Field(None, description="fasta_bed: the genome (plain or bgzip)")
    bed: str | None = Field(None, description="fasta_bed: labelled intervals chrom start end name [score strand]")
    window: int = Field(1024, description=(
        "fasta_bed: bases per window (the last window of a chromosome may be shorter)"))
    train_chroms: tuple[str, ...] = Field((), description="fasta_bed: chromosomes of each split")
    valid_chroms: tuple[str, ...] = Field((), description="fasta_bed: empty = carve valid_fraction of train windows")
    test_chroms: tuple[str, ...] = Field((), description="fasta_bed: the held-out chromosomes")
    background_label: str = Field("background", description="fasta_bed: the class of bases outside every interval")
    strand_labels: bool = Field(False, description='fasta_bed: class = name + strand ("CDS+", "CDS-")')
    seed: int = Field(0, description="the carved valid split")

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
