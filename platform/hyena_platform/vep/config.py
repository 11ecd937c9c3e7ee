"""The variant effect job (`hyena vep JOB.yaml`): one YAML file -> a tree of job sections.

Sections: ``model`` and ``compute`` and ``address`` as for scoring (hyena_platform.score.config),
``data`` (the reference FASTA: hyena_platform.data.config.GenomeSection), ``vcf`` (VcfSection),
``window`` (VepWindowSection), ``output`` (VepOutputSection), ``tracking`` (an MLflow run in
experiment ``hyena-vep`` by default) and ``submission`` (read by `hyena submit` only). Checks
that need the model (the window against its l_max), the FASTA or the VCF run in
`hyena_platform.vep.plan`, still before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from hyena_platform.config import apply_overrides, from_mapping, kind_field, load_yaml_mapping, section, to_dict
from hyena_platform.data.config import GenomeSection
from hyena_platform.score.config import (
    ComputeSection, ModelSection, ResultOutputSection, TrackingSection,
)
from hyena_platform.submission import SubmissionSection, submission_field


@section
class VcfSection:
    """The variants: a VCF (plain, bgzip or BCF) whose records are scored in file order."""

    path: str = Field(description="the VCF: plain text, bgzip-compressed (.vcf.gz) or BCF")
    chr_prefix: Literal["exact", "add", "strip"] = Field("exact", description=(
        'contig names: "exact" (VCF names must be FASTA names), "add" ("20" -> "chr20") or "strip" '
        '("chr20" -> "20"); applied after rename'))
    rename: dict[str, str] = Field(default_factory=dict, description=(
        'single contig names mapped first ({"MT": "chrM"}), before chr_prefix'))
    info_fields: list[str] = Field(default_factory=list, description="INFO fields copied into the Parquet output")
    on_ref_mismatch: Literal["flag", "fail"] = Field("flag", description=(
        "flag: reason=ref_mismatch, no score; fail: stop"))
    ref_check_sample: int = Field(1000, description=(
        "wrong-assembly guard: the REF of this many first records is checked against the FASTA before work starts"))
    max_ref_mismatch: float = Field(0.1, description=(
        "wrong-assembly guard: more than this fraction of the checked REFs differing from the FASTA stops the job"))

    def validate(self) -> None:
        if not self.path.strip():
            raise ValueError("vcf.path is empty; give a VCF file (plain, .vcf.gz or .bcf)")
        if self.ref_check_sample < 1:
            raise ValueError(f"vcf.ref_check_sample must be >= 1, got {self.ref_check_sample}")
        if not 0.0 <= self.max_ref_mismatch <= 1.0:
            raise ValueError(f"vcf.max_ref_mismatch must be in [0, 1], got {self.max_ref_mismatch}")


@section
class VepWindowSection:
    """The window around each variant (see hyena_platform.vep.haplotypes for the exact rule)."""

    flank: int | None = Field(None, description="F, reference bases each side of the edit; null: the most that fit")
    max_allele: int = Field(64, description="longest edit (bases) scored; longer ones: reason allele_too_long")

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


@section
class VepOutputSection(ResultOutputSection):
    """Where results go: a directory every Ray node can reach."""

    path: str = Field(description="variants/ (Parquet), variants.vcf.gz (+ .tbi), _manifest.json")
    overwrite: bool = Field(False, description="replace results of a different model, VCF or config (else refused)")
    chunk_size: int = Field(4096, description="VCF records per Parquet file; the unit of resuming")
    vcf: bool = Field(True, description="also write the input VCF with the scores as INFO fields (bgzip + tabix)")


@section
class VepTrackingSection(TrackingSection):
    experiment: str = Field("hyena-vep", description="MLflow experiment of the variant effect runs")


@section
class VepJob:
    model: ModelSection
    vcf: VcfSection
    output: VepOutputSection
    data: GenomeSection
    window: VepWindowSection
    compute: ComputeSection = Field(default_factory=ComputeSection, description=(
        "batch_size: sequences per call, 4 per variant"))
    tracking: VepTrackingSection
    address: str | None = Field(None, description="Ray cluster; null: $RAY_ADDRESS, else a local Ray")
    kind: Literal["vep"] = kind_field("vep")
    submission: SubmissionSection = submission_field("hyena vep")

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
