"""The embedding job (`hyena embed JOB.yaml`): one YAML file -> a tree of frozen job sections.

Sections: ``model`` and ``compute`` (the scoring job's: a model URI, an actor pool of replicas),
``input`` (InputSection), ``embedding`` (EmbeddingSection), ``output`` (OutputSection),
``tracking`` (MLflow; experiment ``hyena-embed``) and ``submission`` (read by `hyena submit`).
Checks that need the model (lengths against l_max) or the inputs (ids, sequences) run in
`hyena_platform.embed.inputs.plan_inputs`, still before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from hyena_platform.config import kind_field, load_config, section, to_dict
from hyena_platform.score.config import ComputeSection, ModelSection, ResultOutputSection, TrackingSection
from hyena_platform.submission import SubmissionSection, submission_field


@section
class InputSection:
    """What to embed: FASTA records, BED regions of a FASTA, or a table of sequences."""

    fasta: list[str] = Field(default_factory=list, description=(
        "FASTA files (plain or bgzip) whose records, or BED regions, are embedded. Empty and no table: the bundled "
        "V. cholerae genome."))
    records: list[str] = Field(default_factory=list, description="record names or fnmatch patterns; empty: all")
    bed: str | None = Field(None, description=(
        "BED regions of the FASTA: chrom, start, end (0-based, end-exclusive)[, name = id]"))
    table: str | None = Field(None, description="Parquet, CSV or TSV file with a sequence column and an id column")
    sequence_column: str = Field("sequence", description="table input: the DNA sequence column")
    id_column: str = Field("id", description="table input: the unique id column")
    index_cache: str | None = Field(None, description=(
        "where FASTA indexes are built if the FASTA's directory is read-only"))

    def validate(self) -> None:
        if self.table is not None and (self.fasta or self.bed is not None or self.records):
            raise ValueError("input.table embeds the table's sequences; remove input.fasta, "
                             "input.records and input.bed (or drop input.table)")
        if self.bed is not None and self.records:
            raise ValueError("input.bed selects regions; input.records selects whole records: set one")


@section
class EmbeddingSection:
    """How hidden states become embeddings (hyena.embed)."""

    pooling: Literal["mean", "last", "none"] = Field("mean", description="none: one row per base")
    layers: list[int] = Field(default_factory=lambda: [-1], description=(
        "hidden states, concatenated; -1 = final LayerNorm"))
    reverse_complement: bool = Field(False, description=(
        "average with the reverse complement (per-base rows flipped back)"))
    dtype: Literal["float32", "float16"] = Field("float32", description="of the stored embedding values")
    long_sequences: Literal["windows", "error"] = Field("windows", description=(
        "longer than the window: split, or refuse"))
    window: int | None = Field(None, description=(
        "Bases per model call for long sequences; null: the model's l_max. Windows tile a sequence without overlap "
        "from its start; mean = mean over every base (each seen with its own window's context), last = last base of "
        "the last window, none = rows of every window."))

    def validate(self) -> None:
        if not self.layers:
            raise ValueError("embedding.layers must name at least one hidden state (e.g. [-1])")
        if self.window is not None and self.window < 1:
            raise ValueError(f"embedding.window must be >= 1, got {self.window}")


@section
class OutputSection(ResultOutputSection):
    """Where embeddings go: OUT/embeddings/part-NNNNNN.parquet and OUT/_manifest.json."""

    path: str = Field(description="the output directory (on a filesystem every Ray node can reach)")
    overwrite: bool = Field(False, description="replace embeddings of a different model or config (else refused)")
    chunk_size: int = Field(256, description="sequences per Parquet file; the unit of resuming")


@section
class EmbedTrackingSection(TrackingSection):
    """MLflow: the embedding run (linked to the model version) and the registry for models:/ URIs."""

    experiment: str = Field("hyena-embed", description="MLflow experiment of the embedding runs")


@section
class EmbedJob:
    model: ModelSection
    output: OutputSection
    kind: Literal["embed"] = kind_field("embed")
    input: InputSection
    embedding: EmbeddingSection
    compute: ComputeSection
    tracking: EmbedTrackingSection
    address: str | None = Field(None, description="Ray cluster; null: $RAY_ADDRESS, else a local Ray")
    submission: SubmissionSection = submission_field("hyena embed")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> EmbedJob:
    """Read, override and validate an embedding job file; ConfigError on any problem."""
    return load_config(EmbedJob, path, overrides)
