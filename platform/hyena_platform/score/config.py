"""The scoring job (`hyena score JOB.yaml`): one YAML file -> a tree of frozen job sections.

Sections: ``model`` (ModelSection), ``data`` (hyena_platform.data.config.GenomeSection: which FASTA
and which records), ``target`` (TargetSection: regions), ``window`` (WindowSection), ``compute``
(ComputeSection: the actor pool), ``output`` (OutputSection), ``baseline`` (BaselineSection: the
optional bits-saved-over-k-mers column), ``tracking`` (TrackingSection)
and ``submission`` (read by `hyena submit` only).
Each component receives only its own section. Checks that need the model (the window against
its l_max) or the genome (regions against chromosome lengths) run in `plan_job`, still before
any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from hyena_platform.config import from_mapping, kind_field, load_config, section, to_dict
from hyena_platform.data.config import GenomeSection
from hyena_platform.submission import SubmissionSection, submission_field
from hyena_platform.tracking import DEFAULT_URI, TrackingConfig


@section
class ModelSection:
    """The model to score with."""

    uri: str = Field(description=(
        "models:/NAME@ALIAS, models:/NAME/VERSION (looked up in tracking.uri), a checkpoint directory of ours, or "
        "any layout hyena.from_pretrained reads (official, HF port, MultiMolecule)."))

    def validate(self) -> None:
        if not self.uri.strip():
            raise ValueError("model.uri is empty; give models:/NAME@ALIAS, models:/NAME/VERSION or "
                             "a checkpoint directory")


@section
class TargetSection:
    """What to score. Both empty: every record that data.include/exclude/min_length select."""

    regions: list[str] = Field(default_factory=list, description=(
        '"chrII" or "chrII:100000-200000" (0-based, end-exclusive)'))
    bed: str | None = Field(None, description="BED file: chrom, start, end per line (extra columns ignored)")

    def validate(self) -> None:
        if self.regions and self.bed is not None:
            raise ValueError("set target.regions or target.bed, not both")


@section
class WindowSection:
    """Window W and stride S (see hyena_platform.score.tiling for the exact definition)."""

    size: int | None = Field(None, description="W, tokens per model call; null: the model's l_max - 2")
    stride: int | None = Field(None, description=(
        "S, bases scored per window; null: W // 2. Context >= W - S upstream; a both-strands "
        "token model: >= (W - S) / 2 on each side"))
    reverse_strand: bool = Field(False, description="also score the reverse complement; adds *_rc and *_mean columns")
    probabilities: bool = Field(False, description="add p_a, p_c, p_g, p_t columns")

    def validate(self) -> None:
        if self.size is not None and self.size < 1:
            raise ValueError(f"window.size must be >= 1, got {self.size}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"window.stride must be >= 1, got {self.stride}")
        if self.size is not None and self.stride is not None and self.stride > self.size:
            raise ValueError(
                f"window.stride={self.stride} is larger than window.size={self.size}: bases between "
                f"windows would never be scored; use a stride of at most {self.size}"
            )

    def resolve(self, l_max: int) -> tuple[int, int]:
        """(W, S) for a model of maximum length `l_max`; ValueError if W does not fit."""
        limit = l_max - 2
        size = self.size if self.size is not None else limit
        if size > limit:
            raise ValueError(
                f"window.size={size:,} is larger than this model's l_max - 2 = {limit:,} "
                f"(l_max {l_max:,} minus 2 special tokens); use window.size <= {limit:,} or a "
                f"longer-context model"
            )
        if size < 1:
            raise ValueError(f"this model's l_max {l_max} leaves no room for a window")
        stride = self.stride if self.stride is not None else max(1, size // 2)
        if stride > size:
            raise ValueError(f"window.stride={stride:,} is larger than the window ({size:,} "
                             f"bases, from the model's l_max); use a stride of at most {size:,}")
        return size, stride


@section
class ReplicaPoolSection:
    """A pool of model replicas (Ray actors), each running batches through its copy of the model."""

    replicas: int = Field(1, description="model replicas (actors)")
    batch_size: int = Field(16, description="windows (or sequences) per model call")
    cpus_per_replica: float = Field(1.0, description="CPUs reserved per replica; fractional values are fine")
    threads_per_replica: int | None = Field(None, description="torch threads; null = max(1, int(cpus_per_replica))")

    def validate(self) -> None:
        for key in ("replicas", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"compute.{key} must be >= 1, got {getattr(self, key)}")
        if self.threads_per_replica is not None and self.threads_per_replica < 1:
            raise ValueError(f"compute.threads_per_replica must be >= 1, got {self.threads_per_replica}")

    @property
    def torch_threads(self) -> int:
        return self.threads_per_replica or max(1, int(self.cpus_per_replica))


@section
class ComputeSection(ReplicaPoolSection):
    """The actor pools of a batch job (hyena_platform.batch): model replicas, then Parquet writers."""

    gpus_per_replica: float = Field(0.0, description="> 0: replicas run on CUDA; 0.25 = four replicas per GPU")
    writers: int = Field(1, description="Parquet-writing actors (replicas read their own FASTA spans)")
    cpus_per_writer: float = Field(0.25, description="CPUs reserved per writer actor")
    precision: Literal["fp32", "bf16"] = Field("fp32", description=(
        "bf16: bfloat16 matmuls (GPU, or CPU with AVX512-BF16/AMX), FFT and scores float32"))

    def validate(self) -> None:
        super().validate()
        if self.writers < 1:
            raise ValueError(f"compute.writers must be >= 1, got {self.writers}")
        if self.cpus_per_replica <= 0 and self.gpus_per_replica <= 0:
            raise ValueError("compute.cpus_per_replica must be > 0 (or give gpus_per_replica)")
        if self.cpus_per_replica < 0 or self.gpus_per_replica < 0 or self.cpus_per_writer < 0:
            raise ValueError("compute CPU and GPU amounts must be >= 0")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_replica > 0 else "cpu"


@section
class ResultOutputSection:
    """Where a batch job's results go (score, vep, embed: hyena_platform.result_set): a directory
    on a filesystem every Ray node can reach (NFS, EFS, ...), one Parquet file per chunk."""

    path: str = Field(description="the output directory")
    overwrite: bool = Field(False, description="replace results of a different model or config (else refused)")
    chunk_size: int = Field(1024, description="rows per Parquet file; the unit of resuming")

    def validate(self) -> None:
        if not self.path:
            raise ValueError("output.path is empty")
        if self.chunk_size < 1:
            raise ValueError(f"output.chunk_size must be >= 1, got {self.chunk_size}")


@section
class OutputSection(ResultOutputSection):
    """Where results go. A directory on a filesystem every Ray node can reach (NFS, EFS, ...)."""

    path: str = Field(description="the output directory (scores/, bins.parquet, the track, _manifest.json)")
    chunk_size: int = Field(1 << 20, description=(
        "bases per Parquet file; the unit of resuming. A multiple of the stride."))
    track: str | None = Field("log_prob", description="column exported as a genome-browser track; null: none")
    extra_tracks: list[str] = Field(default_factory=list, description=(
        "more columns exported as tracks, e.g. [p_CDS-] beside track p_CDS+"))
    track_format: Literal["bigwig", "bedgraph"] = Field("bigwig", description="bigWig (pyBigWig) or bedGraph text")
    bin_size: int = Field(10_000, description="per-bin summaries in bins.parquet; 0: none")

    def validate(self) -> None:
        super().validate()
        if self.bin_size < 0:
            raise ValueError(f"output.bin_size must be >= 0, got {self.bin_size}")


MAX_KMER_ORDER = 8  # order-8 counts: 5**9 entries (2 M)


@section
class BaselineSection:
    """The per-base ``bits_saved`` column: log2 P_model(base) - log2 P_kmer(base), the bits the
    model saves over the best order-k Markov (k-mer) chain (hyena_platform.score.kmer). Positive:
    the model knows more there than k-mer statistics do."""

    bits_saved: bool = Field(False, description="add the bits_saved column (forward strand) and its track")
    order: int | None = Field(None, description=(
        "the chain's order k; null: of `orders`, the lowest held-out perplexity"))
    orders: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8],
                              description="candidates when order is null")
    fit_on: list[str] = Field(default_factory=list, description=(
        "records the chain is counted on; empty: every selected record not scored"))
    heldout_fraction: float = Field(0.1, description=(
        "the last part of each fit_on record chooses the order (then counted too)"))
    track: bool = Field(True, description="also write bits_saved.bw (or .bedGraph, output.track_format)")

    def validate(self) -> None:
        for k in ([self.order] if self.order is not None else []) + list(self.orders):
            if not 0 <= k <= MAX_KMER_ORDER:
                raise ValueError(f"baseline: order {k} is outside 0..{MAX_KMER_ORDER}")
        if self.order is None and not self.orders:
            raise ValueError("baseline.orders is empty; give candidate orders or a fixed baseline.order")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"baseline.heldout_fraction must be between 0 and 1, got {self.heldout_fraction}")


@section
class TrackingSection:
    """MLflow: the scoring run (linked to the model version) and the registry for models:/ URIs."""

    uri: str = Field(DEFAULT_URI, description=(
        "MLflow tracking URI, also the registry that models:/ URIs are read from"))
    experiment: str = Field("hyena-score", description="MLflow experiment of the scoring runs")
    log_run: bool = Field(True, description="false: no MLflow run (models:/ URIs still resolve against uri)")

    def validate(self) -> None:
        from hyena_platform.tracking import check_uri_scheme

        check_uri_scheme(self.uri)

    def config(self) -> TrackingConfig:
        return TrackingConfig(uri=self.uri, experiment=self.experiment).resolved()


@section
class ScoreJob:
    model: ModelSection
    output: OutputSection
    data: GenomeSection
    target: TargetSection
    window: WindowSection
    compute: ComputeSection
    baseline: BaselineSection
    tracking: TrackingSection
    address: str | None = Field(None, description="Ray cluster; null: $RAY_ADDRESS, else a local Ray")
    kind: Literal["score"] = kind_field("score")
    submission: SubmissionSection = submission_field("hyena score")

    def validate(self) -> None:
        from hyena_platform.local_ray import check_address

        check_address(self.address)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> ScoreJob:
    """Read, override and validate a scoring job file; ConfigError on any problem."""
    return load_config(ScoreJob, path, overrides)


def job_from_mapping(data: dict[str, Any], *, source: str = "<job>") -> ScoreJob:
    return from_mapping(ScoreJob, data, source=source)
