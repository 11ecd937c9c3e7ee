"""Everything checked before work starts: the regions, the model, the window, the chunks.

`plan_job(job)` raises one typed, one-line error for each bad input (unknown chromosome or
region, region outside its chromosome, overlapping regions, window larger than the model's
l_max, stride larger than the window, an unreadable model URI) and otherwise returns the
`ScorePlan` the pipeline executes. It reads FASTA indexes and loads the model once (on the
driver: the weights then travel to the replicas through Ray's object store), never bases.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyena_platform.data.config import GenomeSection
from hyena_platform.data.fasta import content_digest
from hyena_platform.data.genome import (
    Record, bed_intervals, bundled_genome_path, few_names, first_overlap, read_records, select_records,
)
from hyena_platform.errors import ConfigError, HyenaPlatformError, InputError
from hyena_platform.score.config import ScoreJob, TargetSection
from hyena_platform.score.chunk_files import FORMAT_VERSION, score_columns
from hyena_platform.score.tiling import CAUSAL, CENTRED, Chunk, Region, centred_margins, plan_chunks, window_layout


@dataclass
class ResolvedModel:
    """A loaded model and where it came from."""

    model: Any  # HyenaDNAForCausalLM, eval mode, CPU
    uri: str  # as given in the job
    resolved_uri: str  # models:/NAME/VERSION (an alias resolved once) or an absolute path
    sha256: str  # of the weights (names, dtypes, shapes, bytes)
    name: str | None = None  # registered model name and version, for models:/ URIs
    version: int | None = None
    run_id: str | None = None  # the MLflow run that logged the version
    registry_info: Any = None  # tracking.ModelVersionInfo

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"uri": self.uri, "resolved_uri": self.resolved_uri, "name": self.name,
                "version": self.version, "run_id": self.run_id, "sha256": self.sha256,
                "l_max": cfg.l_max, "d_model": cfg.d_model, "n_layer": cfg.n_layer,
                "parameters": self.model.num_parameters()}


@dataclass
class ScorePlan:
    job: ScoreJob
    source: str
    regions: list[Region]
    chunks: list[Chunk]
    model: ResolvedModel
    window: int
    stride: int
    columns: list[str]
    identity: dict[str, Any] = field(default_factory=dict)
    kmer: Any = None  # hyena_platform.score.kmer.KmerChain when baseline.bits_saved
    layout: str = CAUSAL  # window layout (hyena_platform.score.tiling): centred for both-strands heads

    @property
    def bases(self) -> int:
        return sum(r.bases for r in self.regions)


def plan_job(job: ScoreJob, *, source: str = "<job>", model: ResolvedModel | None = None) -> ScorePlan:
    """Resolve and check everything; no Ray, no bases read. `model` skips loading (tests, bench)."""
    regions = resolve_targets(job.data, job.target)
    resolved = model if model is not None else resolve_model(job.model.uri, registry_uri=job.tracking.uri)
    classes = token_classes(resolved.model, job, source)
    columns = score_columns(reverse_strand=job.window.reverse_strand, probabilities=job.window.probabilities,
                            classes=classes, bits_saved=job.baseline.bits_saved)
    if job.output.track is not None and job.output.track not in columns:
        raise ConfigError(f"{source}: output.track={job.output.track!r} is not a column this job writes; "
                          f"choose one of {', '.join(columns)} (or null for no track)")
    for extra in job.output.extra_tracks:
        if extra not in columns:
            raise ConfigError(f"{source}: output.extra_tracks names {extra!r}, not a column this job writes; "
                              f"choose among {', '.join(columns)}")
    try:
        window, stride = job.window.resolve(resolved.model.config.l_max)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    chunks = plan_chunks(regions, job.output.chunk_size)
    plan = ScorePlan(job, source, regions, chunks, resolved, window, stride, columns,
                     kmer=kmer_chain(job, regions, source), layout=window_layout(resolved.model))
    plan.identity = identity(plan)
    return plan


def kmer_chain(job: ScoreJob, regions: list[Region], source: str):
    """The k-mer chain of the bits_saved column (hyena_platform.score.kmer), or None."""
    if not job.baseline.bits_saved:
        return None
    from hyena_platform.score.kmer import fit_chain

    d = job.data
    return fit_chain(job.baseline, genome_paths(d), regions, include=d.include, exclude=d.exclude,
                     min_length=d.min_length, index_cache=d.index_cache, source=source)


def token_classes(model: Any, job: ScoreJob, source: str) -> tuple[str, ...]:
    """Class names of a fine-tuned per-base model (their probabilities become columns); () for
    a language model. A sequence model predicts whole sequences: that is `hyena predict`."""
    head = getattr(model, "head_config", None)
    if head is None:
        return ()
    if getattr(model, "task", "") != "token":
        raise ConfigError(f"{source}: model.uri {job.model.uri} is a sequence-level model; predict sequences, "
                          "FASTA records or BED regions with `hyena predict` instead")
    if head.problem_type != "single_label_classification":
        raise ConfigError(f"{source}: model.uri {job.model.uri}: scoring writes class probabilities of "
                          f"single-label token models; this one is {head.problem_type}")
    if job.window.reverse_strand:
        raise ConfigError(f"{source}: window.reverse_strand is for language models; a token classifier's "
                          "classes (e.g. CDS+ / CDS-) are strand-specific, so it scores the forward strand only")
    return head.label_names or tuple(str(i) for i in range(head.num_labels))


def identity(plan: ScorePlan) -> dict[str, Any]:
    """Everything that changes the scores; its hash is the output directory's fingerprint.

    The model counts by its weights and config, not by its URI: the same weights registered
    again, or a checkpoint directory moved, resume; new weights under the same alias do not.
    Centred windows (a both-strands per-base model) add their layout and margins to the window;
    the causal window's entry is what it always was, so earlier outputs still resume.
    """
    sources = {r.source for r in plan.regions}
    window: dict[str, Any] = {"size": plan.window, "stride": plan.stride, "start_token": "[SEP]"}
    if plan.layout == CENTRED:
        window.update(layout=CENTRED, margins=list(centred_margins(plan.window, plan.stride)))
    return {
        "format": FORMAT_VERSION,
        "model": {"sha256": plan.model.sha256, "config": plan.model.model.config.to_dict()},
        # By content, not path and size: a FASTA edited in place is a different genome.
        "genome": sorted(content_digest(s) for s in sources),
        "regions": [[r.chrom, r.start, r.end, r.length] for r in plan.regions],
        "window": window,
        "columns": plan.columns,
        "chunk_size": plan.job.output.chunk_size,
        "precision": plan.job.compute.precision,
        **({"baseline": {k: plan.kmer.describe()[k] for k in ("order", "fit_on", "fit_bases", "alpha")}}
           if plan.kmer is not None else {}),
    }


# ------------------------------------------------------------------------------------------
# Targets


def genome_paths(data: GenomeSection) -> list[str]:
    return [str(bundled_genome_path())] if data.uses_bundled_genome else list(data.fasta)


def resolve_targets(data: GenomeSection, target: TargetSection) -> list[Region]:
    """The regions to score, in FASTA order, checked against the FASTA indexes."""
    records = read_records(genome_paths(data), index_cache=data.index_cache)
    selected = select_records(records, include=data.include, exclude=data.exclude, min_length=data.min_length)
    by_name = {r.name: r for r in records}
    chosen = {r.name for r in selected}
    if target.bed is not None:
        wanted = read_bed_regions(target.bed)
    elif target.regions:
        wanted = [parse_region(text, by_name) + (f"target.regions[{i}]",) for i, text in enumerate(target.regions)]
    else:
        return [Region(r.name, 0, r.length, r.length, r.source) for r in selected]
    regions = []
    for chrom, start, end, where in wanted:
        rec = by_name.get(chrom)
        if rec is None:
            raise InputError(f"{where}: unknown chromosome {chrom!r}; the FASTA has {few_names([], records)}")
        if chrom not in chosen:
            raise InputError(f"{where}: {chrom} is removed by data.include/exclude/min_length; "
                             "select it there or drop the region")
        end = rec.length if end is None else end
        if end <= start:
            raise InputError(f"{where}: region {chrom}:{start}-{end} is empty; give start < end "
                             "(0-based, end-exclusive)")
        if start < 0 or end > rec.length:
            raise InputError(f"{where}: region {chrom}:{start}-{end} is outside {chrom} "
                             f"(0-{rec.length}, {rec.length:,} bp; coordinates are 0-based, end-exclusive)")
        regions.append((chrom, start, end, where, rec))
    overlap = first_overlap(regions, records)
    if overlap:
        prev, cur = overlap
        raise InputError(f"{cur[3]}: region {cur[0]}:{cur[1]}-{cur[2]} overlaps {prev[3]} "
                         f"({prev[0]}:{prev[1]}-{prev[2]}); every base is scored once, merge them")
    return [Region(c, s, e, rec.length, rec.source) for c, s, e, _, rec in regions]


_REGION = re.compile(r"^(?P<chrom>.+):(?P<start>[0-9,_]+)-(?P<end>[0-9,_]+)$")


def parse_region(text: str, records: dict[str, Record]) -> tuple[str, int, int | None]:
    """'chrII' -> (chrII, 0, None); 'chrII:1,000-2,000' -> (chrII, 1000, 2000)."""
    text = text.strip()
    if text in records:
        return text, 0, None
    m = _REGION.match(text)
    if not m:
        return text, 0, None  # reported as an unknown chromosome, with the record list
    start, end = (int(m.group(k).replace(",", "").replace("_", "")) for k in ("start", "end"))
    return m.group("chrom"), start, end


def read_bed_regions(path: str) -> list[tuple[str, int, int, str]]:
    """BED intervals (chrom, start, end; extra columns ignored); track/browser/# lines skipped.
    Records and bounds are checked with the genome's selection (resolve_targets)."""
    return [(iv.chrom, iv.start, iv.end, iv.where)
            for iv in bed_intervals(path, columns="chrom, start, end", label="target.bed ")]


# ------------------------------------------------------------------------------------------
# The model


def resolve_model(uri: str, *, registry_uri: str | None = None) -> ResolvedModel:
    """Load the model behind `uri` (models:/NAME@ALIAS, models:/NAME/VERSION, or a checkpoint
    path); an alias is resolved to its version once, so the whole run uses one version."""
    from hyena_platform import tracking

    text = str(uri).strip()
    if text.startswith("models:/"):
        tracking.parse_model_uri(text)  # ConfigError naming both forms
        store = tracking.resolve_uri(registry_uri or tracking.DEFAULT_URI)
        if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).exists():
            raise InputError(f"model.uri {text}: there is no MLflow store at {store} (tracking.uri); "
                             "point tracking.uri at the store the model was registered in")
        info = tracking.model_version(text, tracking_uri=store)  # ConfigError/InputError
        pinned = f"models:/{info.name}/{info.version}"
        try:
            model = tracking.load_model(pinned, tracking_uri=store, task_head=True)
        except HyenaPlatformError:
            raise
        except Exception as err:  # noqa: BLE001 - MLflow and checkpoint errors of every kind
            raise InputError(f"model.uri {text} ({pinned}): cannot load the registered model: "
                             f"{_one_line(err)}") from None
        return ResolvedModel(model.eval(), text, pinned, weights_sha256(model), info.name, info.version,
                             info.run_id, info)
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"model.uri {text!r}: no such checkpoint directory, and not a registered "
                         "model (models:/NAME@ALIAS or models:/NAME/VERSION)")
    from hyena.heads import from_pretrained_any

    try:
        model = from_pretrained_any(path)
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError
        raise InputError(f"model.uri {text}: cannot load a checkpoint ({_one_line(err)})") from None
    return ResolvedModel(model.eval(), text, str(path.resolve()), weights_sha256(model))


def weights_sha256(model: Any) -> str:
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")
