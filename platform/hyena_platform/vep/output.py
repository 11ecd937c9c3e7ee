"""The output directory of a variant effect job.

    OUT/_manifest.json                 model, VCF, window, counts per reason, timings, status
    OUT/variants/part-000000.parquet   one file per chunk of output.chunk_size VCF records
    OUT/variants.vcf.gz (+ .tbi)       the input VCF with the scores as INFO fields

Parquet: read ``OUT/variants`` with pyarrow.parquet.read_table (or pandas, polars, DuckDB).
One row per ALT, in the VCF's order (files sort by name; rows by ``record``, ``alt_index``):
``record alt_index chrom pos id ref alt`` as in the VCF (pos 1-based), ``score_fwd score_rc
score`` (float64, natural log; null when skipped), ``ref_match`` (REF equals the FASTA; null
when not checked), ``reason`` (null when scored; see hyena_platform.vep.alleles), ``norm_pos
norm_ref norm_alt`` (the normalised, left-aligned edit), ``context_left context_right`` (bases
of context each side: the flank except near a contig's ends), and ``info.NAME`` for each of
``vcf.info_fields``.

VCF: every input record in input order, header and fields unchanged, plus INFO ``HYENA_VEP``,
``HYENA_VEP_FWD``, ``HYENA_VEP_RC`` (Number=A floats, ``.`` for a skipped ALT),
``HYENA_VEP_SKIP`` (Number=A: the reason or ``.``) and the flag ``HYENA_REF_MISMATCH``. It is
bgzip-compressed with pysam (htslib) and tabix-indexed when the input is sorted.

Files appear only complete (temporary name, then rename); a rerun keeps the parts whose file
holds the expected number of rows and rewrites the VCF. The directory is owned and locked through
hyena_platform.outputs: --overwrite and --fresh delete only the files listed in `OWNED`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from hyena_platform.result_set import MANIFEST_NAME, finished_parts as _finished, write_parquet_atomic

if TYPE_CHECKING:
    from hyena_platform.vep.plan import VariantChunk, VepPlan
    from hyena_platform.vep.scorer import VariantRow

FORMAT = "hyena-vep"
PARTS_DIR = "variants"
VCF_NAME = "variants.vcf.gz"
SCORE_COLUMNS = ("score_fwd", "score_rc", "score")
OWNED = (MANIFEST_NAME, f"{PARTS_DIR}/part-*.parquet", f"{PARTS_DIR}/.part-*.parquet.tmp-*", VCF_NAME,
         f"{VCF_NAME}.tbi")  # temporary files (*.hyena-tmp-*) are always owned
INFO_DEFS = [  # (ID, Number, Type, Description)
    ("HYENA_VEP", "A", "Float", "HyenaDNA zero-shot variant effect: log P(alt haplotype) - log P(ref "
     "haplotype), mean of both strands (natural log)"),
    ("HYENA_VEP_FWD", "A", "Float", "HYENA_VEP on the forward strand"),
    ("HYENA_VEP_RC", "A", "Float", "HYENA_VEP on the reverse complement"),
    ("HYENA_VEP_SKIP", "A", "String", "Why an ALT has no score (symbolic, breakend, star, missing_alt, "
     "ambiguous_base, no_change, ref_mismatch, allele_too_long); . when scored"),
    ("HYENA_REF_MISMATCH", "0", "Flag", "REF differs from the reference FASTA"),
]


def part_path(root: str | Path, chunk: VariantChunk) -> Path:
    return Path(root) / PARTS_DIR / f"{chunk.name}.parquet"


def schema(info: dict[str, str]):
    import pyarrow as pa

    fields = [("record", pa.int64()), ("alt_index", pa.int32()), ("chrom", pa.string()), ("pos", pa.int64()),
              ("id", pa.string()), ("ref", pa.string()), ("alt", pa.string()),
              ("score_fwd", pa.float64()), ("score_rc", pa.float64()), ("score", pa.float64()),
              ("ref_match", pa.bool_()), ("reason", pa.string()), ("norm_pos", pa.int64()),
              ("norm_ref", pa.string()), ("norm_alt", pa.string()), ("context_left", pa.int32()),
              ("context_right", pa.int32())]
    fields += [(f"info.{k}", getattr(pa, kind)()) for k, kind in info.items()]
    return pa.schema(fields)


def rows_table(rows: Sequence[VariantRow], info: dict[str, str]):
    import pyarrow as pa

    w = [r.window for r in rows]
    cols = {
        "record": [r.record for r in rows], "alt_index": [r.alt_index for r in rows],
        "chrom": [r.chrom for r in rows], "pos": [r.pos for r in rows], "id": [r.id for r in rows],
        "ref": [r.ref for r in rows], "alt": [r.alt for r in rows],
        "score_fwd": [r.score_fwd for r in rows], "score_rc": [r.score_rc for r in rows],
        "score": [r.score for r in rows], "ref_match": [r.ref_match for r in rows],
        "reason": [r.reason for r in rows],
        "norm_pos": [r.norm[0] if r.norm else None for r in rows],
        "norm_ref": [r.norm[1] if r.norm else None for r in rows],
        "norm_alt": [r.norm[2] if r.norm else None for r in rows],
        "context_left": [x.left if x else None for x in w], "context_right": [x.right if x else None for x in w],
    }
    for name in info:
        cols[f"info.{name}"] = [r.info.get(name) for r in rows]
    return pa.Table.from_pydict(cols, schema=schema(info))


def write_part(root: str | Path, chunk: VariantChunk, table) -> int:
    return write_parquet_atomic(part_path(root, chunk), table)


def finished_parts(root: str | Path, chunks: Iterable[VariantChunk]) -> set[int]:
    """Indices of chunks whose file holds the expected rows; removes leftovers and bad files."""
    return _finished((chunk.index, part_path(root, chunk), chunk.rows) for chunk in chunks)


def vep_output(root: str | Path):
    """The output directory as an OutputDir (hyena_platform.outputs): ours when it holds our
    marker; it owns exactly the files a variant effect job writes."""
    from hyena_platform.outputs import OutputDir

    return OutputDir(str(root), kind=FORMAT, owned=OWNED)


def read_results(root: str | Path):
    """Every part, in input order, as one pyarrow Table."""
    import pyarrow.parquet as pq

    files = sorted((Path(root) / PARTS_DIR).glob("part-*.parquet"))
    return pq.ParquetDataset([str(f) for f in files]).read() if files else None


# ------------------------------------------------------------------------------------------
# The annotated VCF


def write_vcf(plan: VepPlan, root: Path) -> tuple[Path, Path | None]:
    """The input VCF with the scores as INFO fields: temporary names, bgzip, tabix, rename."""
    import pysam

    from hyena_platform.outputs import temp_name
    from hyena_platform.vep.vcf import open_vcf

    final = root / VCF_NAME
    tmp = Path(temp_name(final))  # .variants.vcf.gz.hyena-tmp-XXXXXXXX (+ .tbi), owned by the job
    index = None
    try:
        with open_vcf(plan.vcf) as vin:
            header = vin.header.copy()
            for ident, number, kind, desc in INFO_DEFS:
                if ident not in header.info:
                    header.add_meta("INFO", items=[("ID", ident), ("Number", number), ("Type", kind),
                                                   ("Description", desc)])
            with pysam.VariantFile(str(tmp), "wz", header=header) as out:
                for rec, rows in zip(vin, _rows_by_record(root, plan)):
                    _annotate(rec, out.header, rows)
                    out.write(rec)
        if plan.sorted:
            pysam.tabix_index(str(tmp), preset="vcf", force=True)
            index = Path(str(tmp) + ".tbi")
        os.replace(tmp, final)
        if index is not None:
            os.replace(index, Path(str(final) + ".tbi"))
            index = Path(str(final) + ".tbi")
        else:
            Path(str(final) + ".tbi").unlink(missing_ok=True)  # a stale index of an older file
    finally:
        for leftover in (tmp, Path(str(tmp) + ".tbi")):
            leftover.unlink(missing_ok=True)
    return final, index


def _rows_by_record(root: Path, plan: VepPlan):
    """Per input record, its result rows (dicts), reading one part at a time."""
    import pyarrow.parquet as pq

    for chunk in plan.chunks:
        table = pq.read_table(part_path(root, chunk), columns=["record", "alt_index", "reason", "ref_match",
                                                               *SCORE_COLUMNS])
        current: list[dict[str, Any]] = []
        for row in table.to_pylist():
            if current and row["record"] != current[0]["record"]:
                yield current
                current = []
            current.append(row)
        if current:
            yield current


def _annotate(rec, header, rows: list[dict[str, Any]]) -> None:
    rec.translate(header)
    if rows[0]["ref_match"] is False:
        rec.info["HYENA_REF_MISMATCH"] = True
    if not rec.alts:
        return
    assert len(rows) == len(rec.alts), (rec.chrom, rec.pos)  # parts were written from this VCF
    if any(r["score"] is not None for r in rows):
        rec.info["HYENA_VEP"] = tuple(r["score"] for r in rows)
        rec.info["HYENA_VEP_FWD"] = tuple(r["score_fwd"] for r in rows)
        rec.info["HYENA_VEP_RC"] = tuple(r["score_rc"] for r in rows)
    if any(r["reason"] is not None for r in rows):
        rec.info["HYENA_VEP_SKIP"] = tuple(r["reason"] or "." for r in rows)
