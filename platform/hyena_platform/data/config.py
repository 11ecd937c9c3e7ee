"""DataConfig: the `data:` section of every job YAML (sharding, training and scoring jobs).

Two kinds of fields:

- genome layout, used when a FASTA is tokenised into chunks: ``fasta``, ``include``,
  ``exclude``, ``min_length``, ``valid_chroms``, ``test_chroms``, ``bed``, ``chunk_size``,
  ``keep_soft_mask``, ``index_cache``. When ``shards`` names a directory written by
  ``hyena shard``, the layout was fixed then (see its ``_manifest.json``) and these must stay
  at their defaults.
- windows, used every epoch: ``max_n_fraction``, ``reverse_complement``, ``seed``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from hyena_platform.config import section

Split = Literal["train", "valid", "test"]
SPLITS: tuple[str, ...] = ("train", "valid", "test")

DEFAULT_CHUNK_SIZE = 1 << 20  # 1,048,576 bases: ~1 MB of uint8 ids per Arrow row
MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 1 << 28  # keeps one block's binary offsets far below 2 GiB
BUNDLED_VALID_CHROMS = ("chrII",)

# Fields that describe how a FASTA becomes chunks; fixed once shards are written.
LAYOUT_FIELDS = ("fasta", "include", "exclude", "min_length", "valid_chroms", "test_chroms",
                 "bed", "chunk_size", "keep_soft_mask", "index_cache")


@section
class DataConfig:
    """Where the genome comes from, how it is split, and how windows are cut from it."""

    fasta: list[str] = Field(default_factory=list, description=(
        "FASTA files (plain, bgzip or plain gzip); neither fasta nor shards: the bundled V. cholerae N16961 genome"))

    shards: str | None = Field(None, description=(
        "a shard directory or URI written by `hyena shard`, instead of fasta"))
    include: list[str] = Field(default_factory=list, description=(
        'record names or fnmatch patterns ("chr*"); empty = all'))
    exclude: list[str] = Field(default_factory=list, description="record names or patterns to leave out")
    min_length: int = Field(0, description="records shorter than this are left out")
    valid_chroms: list[str] | None = Field(None, description=(
        "Held-out chromosomes (names or patterns). null: [chrII] for the bundled genome, none otherwise. Every other"
        " selected chromosome is train."))

    test_chroms: list[str] = Field(default_factory=list, description="test chromosomes (names or patterns)")
    bed: str | None = Field(None, description=(
        "splits by interval instead: BED columns chrom, start, end, split (train/valid/test)"))
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, description=(
        "bases per chunk (an Arrow row); windows longer than this use whole segments"))
    max_n_fraction: float = Field(0.1, description="windows with a larger fraction of N are dropped")
    keep_soft_mask: bool = Field(False, description="keep the lowercase (soft-mask) flags as a column of the chunks")
    reverse_complement: bool = Field(False, description="augmentation of train windows, probability 1/2")
    seed: int = Field(0, description="window offsets, reverse-complement coins and shuffles")
    index_cache: str | None = Field(None, description=(
        "Where FASTA indexes are built when the FASTA's own directory is not writable (on every node that reads it)."
        " None: $HYENA_CACHE_DIR/fasta-index, else ~/.cache/hyena/fasta-index."))

    def __post_init__(self) -> None:
        for name in ("fasta", "include", "exclude", "test_chroms"):
            object.__setattr__(self, name, _str_list(name, getattr(self, name)))
        if self.valid_chroms is None:
            bundled = not self.fasta and self.shards is None and self.bed is None
            object.__setattr__(self, "valid_chroms", list(BUNDLED_VALID_CHROMS) if bundled else [])
        else:
            object.__setattr__(self, "valid_chroms", _str_list("valid_chroms", self.valid_chroms))
        self.validate()

    @property
    def uses_bundled_genome(self) -> bool:
        return not self.fasta and self.shards is None

    def validate(self) -> None:
        if self.fasta and self.shards is not None:
            raise ValueError("set either fasta (tokenise FASTA files) or shards (read a shard "
                             "directory written by `hyena shard`), not both")
        if self.shards is not None:
            changed = [name for name in LAYOUT_FIELDS
                       if name != "valid_chroms" and getattr(self, name) != _DEFAULTS[name]]
            if self.valid_chroms:
                changed.insert(0, "valid_chroms")
            if changed:
                raise ValueError(
                    f"{', '.join(changed)} cannot be set with shards: the genome layout was fixed "
                    f"when the shards were written (see {self.shards}/_manifest.json); re-run "
                    "`hyena shard` to change it"
                )
        if self.bed is not None and (self.valid_chroms or self.test_chroms):
            raise ValueError(
                f"bed gives the splits (its split column); remove valid_chroms "
                f"{self.valid_chroms} and test_chroms {self.test_chroms}, or remove bed"
            )
        both = sorted(set(self.valid_chroms or ()) & set(self.test_chroms))
        if both:
            raise ValueError(f"{', '.join(both)} listed in both valid_chroms and test_chroms")
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}], "
                             f"got {self.chunk_size}")
        if self.min_length < 0:
            raise ValueError(f"min_length must be >= 0, got {self.min_length}")
        if not 0.0 <= self.max_n_fraction <= 1.0:
            raise ValueError(f"max_n_fraction must be in [0, 1], got {self.max_n_fraction}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


@section
class GenomeSection:
    """Which genome, and which of its records: the `data:` section of jobs that read the FASTA by
    position (scoring, variant effects) instead of cutting training windows from chunks."""

    fasta: list[str] = Field(default_factory=list, description=(
        "FASTA files (plain, bgzip or plain gzip, indexed by pyfaidx); empty: the bundled V. cholerae N16961 genome"))
    include: list[str] = Field(default_factory=list, description=(
        'record names or fnmatch patterns ("chr*"); empty = all'))
    exclude: list[str] = Field(default_factory=list, description="record names or patterns to leave out")
    min_length: int = Field(0, description="records shorter than this are left out")
    index_cache: str | None = Field(None, description=(
        "Where FASTA indexes are built when the FASTA's own directory is not writable (on every node that reads it)."
        " None: $HYENA_CACHE_DIR/fasta-index, else ~/.cache/hyena/fasta-index."))

    # Keys of the training `data:` section (DataConfig) that mean nothing here, with the fix.
    KEY_HINTS: ClassVar[dict[str, str]] = {
        "shards": "this job reads FASTA directly (random access by pyfaidx): set data.fasta to the "
                  "FASTA the shards were made from",
        "bed": "data.bed holds training splits; to score regions, give the regions in target.bed (chrom, "
               "start, end) instead",
        **{name: "it shapes training splits or windows and has no effect here" for name in (
            "valid_chroms", "test_chroms", "chunk_size", "max_n_fraction", "reverse_complement", "seed",
            "keep_soft_mask")},
    }

    def __post_init__(self) -> None:
        for name in ("fasta", "include", "exclude"):
            object.__setattr__(self, name, _str_list(name, getattr(self, name)))
        if self.min_length < 0:
            raise ValueError(f"min_length must be >= 0, got {self.min_length}")

    @property
    def uses_bundled_genome(self) -> bool:
        return not self.fasta


def _str_list(name: str, value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"{name} must hold non-empty strings, got {bad[0]!r}")
    return list(value)


_DEFAULTS = {name: info.get_default(call_default_factory=True)
             for name, info in DataConfig.__pydantic_fields__.items()}
