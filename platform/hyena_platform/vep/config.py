"""The variant effect job (`hyena vep JOB.yaml`): one YAML file -> a tree of frozen dataclasses.

Sections: ``model`` and ``compute`` and ``address`` as for scoring (hyena_platform.score.config),
``data`` (the reference FASTA: hyena_platform.data.config.DataConfig), ``vcf`` (VcfSection),
``window`` (VepWindowSection), ``output`` (VepOutputSection), ``tracking`` (an MLflow run in
experiment ``hyena-vep`` by default) and ``submission`` (read by `hyena submit` only). Checks
that need the model (the window against its l_max), the FASTA or the VCF run in
`hyena_platform.vep.plan`, still before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from hyena_platform.config import apply_overrides, from_mapping, load_yaml_mapping, to_dict
from hyena_platform.data.config import DataConfig
from hyena_platform.score.config import ComputeSection, ModelSection, TrackingSection, check_reference_data
from hyena_platform.submission import SubmissionSection


@dataclass(frozen=True)
class VcfSection:
    """The variants: a VCF (plain, bgzip or BCF) whose records are scored in file order."""

    path: str  # the VCF: plain text, bgzip-compressed (.vcf.gz) or BCF
    # Contig names: "exact" (VCF names must be FASTA names), "add" ("20" -> "chr20") or "strip"
    # ("chr20" -> "20"); `rename` maps single names first ({"MT": "chrM"}).
    chr_prefix: Literal["exact", "add", "strip"] = "exact"
    rename: dict[str, str] = field(default_factory=dict)
    info_fields: list[str] = field(default_factory=list)  # INFO fields copied into the Parquet output
    on_ref_mismatch: Literal["flag", "fail"] = "flag"  # flag: reason=ref_mismatch, no score; fail: stop
    # Wrong-assembly guard: REF of the first `ref_check_sample` records is checked before work
    # starts; more than `max_ref_mismatch` of them differing from the FASTA stops the job.
    ref_check_sample: int = 1000
    max_ref_mismatch: float = 0.1

    def validate(self) -> None:
        if not self.path.strip():
            raise ValueError("vcf.path is empty; give a VCF file (plain, .vcf.gz or .bcf)")
        if self.ref_check_sample < 1:
            raise ValueError(f"vcf.ref_check_sample must be >= 1, got {self.ref_check_sample}")
        if not 0.0 <= self.max_ref_mismatch <= 1.0:
            raise ValueError(f"vcf.max_ref_mismatch must be in [0, 1], got {self.max_ref_mismatch}")


@dataclass(frozen=True)
class VepWindowSection:
    """The window around each variant (see hyena_platform.vep.haplotypes for the exact rule)."""

    flank: int | None = None  # F, reference bases each side of the edit; null: the most that fit
    max_allele: int = 64  # longest edit (bases) scored; longer ones: reason allele_too_long

    def validate(self) -> None:
        if self.flank is not None and self.flank < 1:
            raise ValueError(f"window.flank must be >= 1, got {self.flank}")
        if self.max_allele < 1:
            raise ValueError(f"window.max_allele must be >= 1, got {self.max_allele}")

    def resolve(self, l_max: int) -> int:
        """F for a model of maximum length `l_max`: ``2F + max_allele <= l_max - 2``."""
        room = l_max - 2 - self.max_allele
        flank = self.flank if self.flank is not None else room // 2
        if flank < 1 or 2 * flank > room:
            longest = 2 * flank + self.max_allele
            best = max(room // 2, 0)
            raise ValueError(
                f"window: 2 x flank {flank:,} + max_allele {self.max_allele:,} = {longest:,} bases, more "
                f"than this model's l_max - 2 = {l_max - 2:,}; use window.flank <= {best:,} or a smaller "
                "window.max_allele, or a longer-context model"
            )
        return flank


@dataclass(frozen=True)
class VepOutputSection:
    """Where results go: a directory every Ray node can reach."""

    path: str  # variants/ (Parquet), variants.vcf.gz (+ .tbi), _manifest.json
    overwrite: bool = False  # replace results of a different model, VCF or config (else refused)
    chunk_size: int = 4096  # VCF records per Parquet file; the unit of resuming
    vcf: bool = True  # also write the input VCF with the scores as INFO fields (bgzip + tabix)

    def validate(self) -> None:
        if not self.path:
            raise ValueError("output.path is empty")
        if self.chunk_size < 1:
            raise ValueError(f"output.chunk_size must be >= 1, got {self.chunk_size}")


@dataclass(frozen=True)
class VepTrackingSection(TrackingSection):
    experiment: str = "hyena-vep"  # MLflow experiment of the variant effect runs


@dataclass(frozen=True)
class VepJob:
    model: ModelSection
    vcf: VcfSection
    output: VepOutputSection
    data: DataConfig = field(default_factory=DataConfig)
    window: VepWindowSection = field(default_factory=VepWindowSection)
    compute: ComputeSection = field(default_factory=ComputeSection)  # batch_size: sequences per call, 4 per variant
    tracking: VepTrackingSection = field(default_factory=VepTrackingSection)
    address: str | None = None  # Ray cluster; null: $RAY_ADDRESS, else a local Ray
    kind: Literal["vep"] = "vep"  # what this file is; `hyena run FILE` runs it as `hyena vep`
    # `hyena submit` settings (runtime_env, entrypoint resources, id, metadata); ignored by `hyena vep`.
    submission: SubmissionSection = field(default_factory=SubmissionSection)

    def validate(self) -> None:
        check_reference_data(self.data, "variant effects")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> VepJob:
    """Read, override and validate a variant effect job file; ConfigError on any problem."""
    source = str(path)
    data = load_yaml_mapping(path)
    apply_overrides(data, overrides, source=source)
    return job_from_mapping(data, source=source)


def job_from_mapping(data: dict[str, Any], *, source: str = "<job>") -> VepJob:
    return from_mapping(VepJob, data, source=source)
