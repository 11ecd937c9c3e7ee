"""The embedding job (`hyena embed JOB.yaml`): one YAML file -> a tree of frozen dataclasses.

Sections: ``model`` and ``compute`` (the scoring job's: a model URI, an actor pool of replicas),
``input`` (InputSection), ``embedding`` (EmbeddingSection), ``output`` (OutputSection),
``tracking`` (MLflow; experiment ``hyena-embed``) and ``submission`` (read by `hyena submit`).
Checks that need the model (lengths against l_max) or the inputs (ids, sequences) run in
`hyena_platform.embed.inputs.plan_inputs`, still before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from hyena_platform.config import load_config, to_dict
from hyena_platform.score.config import ComputeSection, ModelSection, TrackingSection
from hyena_platform.submission import SubmissionSection
from hyena_platform.tracking import DEFAULT_URI


@dataclass(frozen=True)
class InputSection:
    """What to embed: FASTA records, BED regions of a FASTA, or a table of sequences."""

    # FASTA files (plain or bgzip) whose records, or BED regions, are embedded. Empty and no
    # table: the bundled V. cholerae genome.
    fasta: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # record names or fnmatch patterns; empty: all
    bed: str | None = None  # BED regions of the FASTA: chrom, start, end (0-based, end-exclusive)[, name = id]
    table: str | None = None  # Parquet, CSV or TSV file with a sequence column and an id column
    sequence_column: str = "sequence"  # table input: the DNA sequence column
    id_column: str = "id"  # table input: the unique id column
    index_cache: str | None = None  # where FASTA indexes are built if the FASTA's directory is read-only

    def validate(self) -> None:
        if self.table is not None and (self.fasta or self.bed is not None or self.records):
            raise ValueError("input.table embeds the table's sequences; remove input.fasta, "
                             "input.records and input.bed (or drop input.table)")
        if self.bed is not None and self.records:
            raise ValueError("input.bed selects regions; input.records selects whole records: set one")


@dataclass(frozen=True)
class EmbeddingSection:
    """How hidden states become embeddings (hyena.embed)."""

    pooling: Literal["mean", "last", "none"] = "mean"  # none: one row per base
    layers: list[int] = field(default_factory=lambda: [-1])  # hidden states, concatenated; -1 = final LayerNorm
    reverse_complement: bool = False  # average with the reverse complement (per-base rows flipped back)
    dtype: Literal["float32", "float16"] = "float32"  # of the stored embedding values
    long_sequences: Literal["windows", "error"] = "windows"  # longer than the window: split, or refuse
    # Bases per model call for long sequences; null: the model's l_max. Windows tile a sequence
    # without overlap from its start; mean = mean over every base (each seen with its own
    # window's context), last = last base of the last window, none = rows of every window.
    window: int | None = None

    def validate(self) -> None:
        if not self.layers:
            raise ValueError("embedding.layers must name at least one hidden state (e.g. [-1])")
        if self.window is not None and self.window < 1:
            raise ValueError(f"embedding.window must be >= 1, got {self.window}")


@dataclass(frozen=True)
class OutputSection:
    """Where embeddings go: OUT/embeddings/part-NNNNNN.parquet and OUT/_manifest.json."""

    path: str  # the output directory (on a filesystem every Ray node can reach)
    overwrite: bool = False  # replace embeddings of a different model or config (else refused)
    chunk_size: int = 256  # sequences per Parquet file; the unit of resuming

    def validate(self) -> None:
        if not self.path:
            raise ValueError("output.path is empty")
        if self.chunk_size < 1:
            raise ValueError(f"output.chunk_size must be >= 1, got {self.chunk_size}")


@dataclass(frozen=True)
class EmbedTrackingSection(TrackingSection):
    """MLflow: the embedding run (linked to the model version) and the registry for models:/ URIs."""

    uri: str = DEFAULT_URI  # MLflow tracking URI, also the registry that models:/ URIs are read from
    experiment: str = "hyena-embed"  # MLflow experiment of the embedding runs
    log_run: bool = True  # false: no MLflow run (models:/ URIs still resolve against uri)


@dataclass(frozen=True)
class EmbedJob:
    model: ModelSection
    output: OutputSection
    kind: Literal["embed"] = "embed"  # what this file is; `hyena run FILE` runs it as `hyena embed`
    input: InputSection = field(default_factory=InputSection)
    embedding: EmbeddingSection = field(default_factory=EmbeddingSection)
    compute: ComputeSection = field(default_factory=ComputeSection)
    tracking: EmbedTrackingSection = field(default_factory=EmbedTrackingSection)
    address: str | None = None  # Ray cluster; null: $RAY_ADDRESS, else a local Ray
    # `hyena submit` settings (runtime_env, entrypoint resources, id, metadata); ignored by `hyena embed`.
    submission: SubmissionSection = field(default_factory=SubmissionSection)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> EmbedJob:
    """Read, override and validate an embedding job file; ConfigError on any problem."""
    return load_config(EmbedJob, path, overrides)
