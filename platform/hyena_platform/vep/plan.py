"""Everything checked before work starts: the FASTA, the model and window, the whole VCF.

`plan_job(job)` reads the VCF once on the driver (pysam) and raises one typed, one-line error
for each bad input, before any output exists: an unreadable or truncated VCF (naming the
record), a contig the FASTA lacks (naming both spellings when only a ``chr`` prefix differs), a
VCF of another assembly (more than ``vcf.max_ref_mismatch`` of the first
``vcf.ref_check_sample`` REF alleles differ from the FASTA), with ``vcf.on_ref_mismatch: fail``
any REF mismatch, an INFO field the VCF does not declare, a window longer than the model's
l_max. It returns the `VepPlan`: the records cut into chunks of ``output.chunk_size`` records
(Arrow tables, in file order), the model, the flank and the identity of the result.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from hyena_platform.data.genome import read_records, select_records
from hyena_platform.errors import ConfigError, InputError
from hyena_platform.score.plan import ResolvedModel, genome_paths, resolve_model
from hyena_platform.vep.alleles import check_ref
from hyena_platform.vep.config import VepJob
from hyena_platform.vep.reference import ReferenceFetcher
from hyena_platform.vep.vcf import ContigNames, info_columns, iter_records, missing_contig, open_vcf

FORMAT_VERSION = 1


@dataclass
class VariantChunk:
    """``records`` VCF records from index ``first`` on, and the ALT rows they give."""

    index: int
    first: int
    records: int
    rows: int
    table: Any  # pyarrow.Table of the records (see `records_table`)

    @property
    def name(self) -> str:
        return f"part-{self.index:06d}"


@dataclass
class VepPlan:
    job: VepJob
    source: str
    vcf: str  # absolute path
    fasta: dict[str, str]  # contig -> FASTA path
    lengths: dict[str, int]
    model: ResolvedModel
    flank: int
    info: dict[str, str]  # INFO field -> Arrow type name
    chunks: list[VariantChunk]
    sorted: bool  # records sorted by contig blocks and position (a tabix index is possible)
    vcf_sha256: str
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chunks)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chunks)


def plan_job(job: VepJob, *, source: str = "<job>", model: ResolvedModel | None = None) -> VepPlan:
    """Resolve and check everything; no Ray, no output written. `model` skips loading (tests)."""
    fasta, lengths = reference_records(job)
    resolved = model if model is not None else resolve_model(job.model.uri, registry_uri=job.tracking.uri)
    try:
        flank = job.window.resolve(resolved.model.config.l_max)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    vcf = os.path.abspath(job.vcf.path)
    with open_vcf(vcf) as handle:
        info = info_columns(handle, job.vcf.path, job.vcf.info_fields)
    chunks, is_sorted = read_chunks(job, vcf, fasta, lengths, info)
    plan = VepPlan(job, source, vcf, fasta, lengths, resolved, flank, info, chunks, is_sorted, file_sha256(vcf))
    plan.identity = identity(plan)
    return plan


def reference_records(job: VepJob) -> tuple[dict[str, str], dict[str, int]]:
    d = job.data
    records = read_records(genome_paths(d), index_cache=d.index_cache)
    selected = select_records(records, include=d.include, exclude=d.exclude, min_length=d.min_length)
    return {r.name: r.source for r in selected}, {r.name: r.length for r in selected}


def read_chunks(job: VepJob, vcf: str, fasta: dict[str, str], lengths: dict[str, int],
                info: dict[str, str]) -> tuple[list[VariantChunk], bool]:
    """Every record, checked (contig, REF sample), as chunks of output.chunk_size records."""
    v = job.vcf
    names = ContigNames(v.chr_prefix, v.rename)
    fetch = ReferenceFetcher(fasta, lengths, index_cache=job.data.index_cache)
    fasta_desc = ", ".join(sorted(set(fasta.values())))
    guard = RefGuard(v.path, fasta_desc, v.ref_check_sample, v.max_ref_mismatch, fail=v.on_ref_mismatch == "fail")
    chunks: list[VariantChunk] = []
    pending: list[dict[str, Any]] = []
    order = SortCheck()
    for rec in iter_records(v.path, info):
        where = f"record {rec['record'] + 1} ({rec['chrom']}:{rec['pos']})"
        contig = names(rec["chrom"])
        if contig not in lengths:
            raise missing_contig(v.path, where, rec["chrom"], contig, fasta_desc, lengths)
        start = rec["pos"] - 1
        if start + len(rec["ref"]) > lengths[contig]:
            raise InputError(f"{v.path}: {where}: REF ends past the end of {contig} ({lengths[contig]:,} bp "
                             f"in {fasta[contig]}); the VCF is for another assembly: give its FASTA in data.fasta")
        rec["contig"] = contig
        guard.check(where, rec["ref"], fetch(contig, start, start + len(rec["ref"])))
        order.add(contig, rec["pos"])
        pending.append(rec)
        if len(pending) == job.output.chunk_size:
            chunks.append(make_chunk(len(chunks), pending, info))
            pending = []
    guard.finish()
    if pending:
        chunks.append(make_chunk(len(chunks), pending, info))
    if not chunks:
        raise InputError(f"vcf.path {v.path}: the VCF holds no record; nothing to score")
    return chunks, order.sorted


class RefGuard:
    """REF against the FASTA: the wrong-assembly check on a sample, and vcf.on_ref_mismatch: fail."""

    def __init__(self, vcf: str, fasta: str, sample: int, max_fraction: float, *, fail: bool):
        self.vcf, self.fasta, self.sample, self.max_fraction, self.fail = vcf, fasta, sample, max_fraction, fail
        self.seen = self.bad = 0
        self.example: str | None = None

    def check(self, where: str, ref: str, reference: str) -> None:
        if self.seen >= self.sample and not self.fail:
            return
        ok = check_ref(ref, reference)
        if not ok and self.fail:
            raise InputError(f"{self.vcf}: {where}: REF {ref} differs from the FASTA ({reference.upper()}) in "
                             f"{self.fasta}; fix the record, give the VCF's own FASTA in data.fasta, or set "
                             "vcf.on_ref_mismatch: flag to score the others")
        if self.seen < self.sample:
            self.seen += 1
            if not ok:
                self.bad += 1
                self.example = self.example or f"{where}: REF {ref}, FASTA {reference.upper()}"
            if self.seen == self.sample:
                self.finish()

    def finish(self) -> None:
        if self.seen and self.bad / self.seen > self.max_fraction:
            raise InputError(
                f"{self.vcf}: {self.bad} of the first {self.seen} records have a REF that differs from "
                f"{self.fasta} (e.g. {self.example}); the VCF is probably for another assembly: give the "
                f"FASTA it was called against in data.fasta (or raise vcf.max_ref_mismatch, now "
                f"{self.max_fraction:g})"
            )


class SortCheck:
    """Whether records come sorted (each contig in one block, positions non-decreasing)."""

    def __init__(self):
        self.done: set[str] = set()
        self.contig: str | None = None
        self.pos = 0
        self.sorted = True

    def add(self, contig: str, pos: int) -> None:
        if contig != self.contig:
            if contig in self.done:
                self.sorted = False
            if self.contig is not None:
                self.done.add(self.contig)
            self.contig, self.pos = contig, pos
        elif pos < self.pos:
            self.sorted = False
        self.pos = pos


def make_chunk(index: int, records: list[dict[str, Any]], info: dict[str, str]) -> VariantChunk:
    rows = sum(len(r["alts"] or (None,)) for r in records)
    return VariantChunk(index, records[0]["record"], len(records), rows, records_table(records, info))


def records_table(records: list[dict[str, Any]], info: dict[str, str]):
    import pyarrow as pa

    cols = {
        "record": pa.array([r["record"] for r in records], pa.int64()),
        "chrom": pa.array([r["chrom"] for r in records], pa.string()),
        "contig": pa.array([r["contig"] for r in records], pa.string()),
        "pos": pa.array([r["pos"] for r in records], pa.int64()),
        "id": pa.array([r["id"] for r in records], pa.string()),
        "ref": pa.array([r["ref"] for r in records], pa.string()),
        "alts": pa.array([list(r["alts"]) if r["alts"] else None for r in records], pa.list_(pa.string())),
    }
    for name, kind in info.items():
        cols[f"info.{name}"] = pa.array([r["info"][name] for r in records], getattr(pa, kind)())
    return pa.table(cols)


def table_records(table) -> list[dict[str, Any]]:
    """The inverse of `records_table`: dicts as `scorer.expand` takes them."""
    out = []
    for row in table.to_pylist():
        info = {k[5:]: row.pop(k) for k in list(row) if k.startswith("info.")}
        out.append({**row, "info": info})
    return out


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity(plan: VepPlan) -> dict[str, Any]:
    """Everything that changes the results; its hash is the output directory's fingerprint. The
    VCF counts by its content, the model by its weights and config."""
    job = plan.job
    return {
        "format": FORMAT_VERSION,
        "model": {"sha256": plan.model.sha256, "config": plan.model.model.config.to_dict()},
        "vcf": {"sha256": plan.vcf_sha256, "records": plan.records},
        "genome": sorted([os.path.abspath(s), _size(s)] for s in set(plan.fasta.values())),
        "contigs": {"chr_prefix": job.vcf.chr_prefix, "rename": dict(job.vcf.rename)},
        "window": {"flank": plan.flank, "max_allele": job.window.max_allele, "start_token": "[SEP]"},
        "info_fields": list(job.vcf.info_fields),
        "chunk_size": job.output.chunk_size,
        "precision": job.compute.precision,
    }


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1
