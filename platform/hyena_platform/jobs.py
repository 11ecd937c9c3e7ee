"""Job kinds: what a job file is (its ``kind:``), how it is loaded and which command runs it.

Every job file starts with ``kind: pretrain | sweep | finetune | predict | score | vep | embed | shard``; `hyena run JOB.yaml` reads
it and runs the kind's command (`hyena pretrain`, `hyena score`, ...: those stay as aliases).
A new kind is one line in `KINDS` plus its modules: the job dataclass (with a
``kind: Literal["NAME"]`` field), a loader ``(path, overrides) -> job`` that makes every check
before any work, and ``hyena_platform.commands.NAME`` with ``add_arguments(parser)`` and
``run(args)``. Files without ``kind:`` (older ones) are recognised from their sections.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from hyena_platform.config import load_yaml_mapping
from hyena_platform.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    name: str
    loader: str  # "module:function", function(path, overrides) -> the validated job
    flags: tuple[str, ...] = ()  # run-time flags of its command that `hyena submit` passes through
    help: str = ""

    @property
    def command(self) -> str:
        """The module of the kind's `hyena` subcommand (add_arguments(parser), run(args))."""
        return f"hyena_platform.commands.{self.name}"


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("pretrain", "hyena_platform.train.config:load_job", ("--fresh",),
         "pretrain HyenaDNA on Ray Train with sequence-length warm-up, tracked in MLflow"),
    Kind("score", "hyena_platform.score.config:load_job", ("--fresh", "--overwrite"),
         "score whole chromosomes per base on Ray: log-likelihood tracks, resumable"),
    Kind("shard", "hyena_platform.data.shard_job:load_job", ("--overwrite",),
         "tokenise FASTA into Parquet shards with a manifest (Ray Data)"),
    Kind("finetune", "hyena_platform.finetune.config:load_finetune_job", ("--fresh",),
         "fine-tune a pretrained model on a labelled task on Ray Train, beside a k-mer baseline"),
    Kind("predict", "hyena_platform.finetune.predict:load_predict_job", ("--overwrite",),
         "predict tables, FASTA records or BED regions with a fine-tuned sequence model (Ray, Parquet)"),
    Kind("vep", "hyena_platform.vep.config:load_job", ("--fresh", "--overwrite"),
         "zero-shot variant effects of a VCF on Ray: log P(alt) - log P(ref), resumable"),
    Kind("embed", "hyena_platform.embed.config:load_job", ("--fresh", "--overwrite"),
         "embed FASTA records, BED regions or a table of sequences on Ray: Parquet, resumable"),
    Kind("sweep", "hyena_platform.train.sweep:load_sweep", ("--fresh",),
         "a pretraining sweep (grid or list of --set overrides): every trial a tracked run, ranked vs k-mer baselines"),
)}


def kind_of(data: Mapping[str, Any], *, source: str) -> str:
    """The job file's ``kind:``; for a file without one, the kind its sections say."""
    kind = data.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise ConfigError(f"{source}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        return kind
    if "embedding" in data:  # an embedding job without kind: (predict jobs have input: too)
        return "embed"
    if "input" in data:
        return "predict"
    if isinstance(data.get("output"), str):
        return "shard"
    if "task" in data:
        return "finetune"
    if "vcf" in data:
        return "vep"
    scoring = [k for k in ("output", "target", "window", "compute") if k in data]
    training = [k for k in ("train", "scaling", "checkpoint") if k in data]
    if scoring and training:
        raise ConfigError(
            f"{source}: has both scoring sections ({', '.join(scoring)}) and training sections "
            f"({', '.join(training)}); a job file is either a pretrain job or a score job"
        )
    return "score" if scoring else "pretrain"


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> tuple[str, Any]:
    """(kind, validated job) of any job file; ConfigError on any problem, before any work."""
    kind = kind_of(load_yaml_mapping(path), source=str(path))
    module, _, function = KINDS[kind].loader.partition(":")
    return kind, getattr(importlib.import_module(module), function)(path, overrides)
