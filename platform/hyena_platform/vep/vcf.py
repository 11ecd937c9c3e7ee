"""Reading the input VCF with pysam (htslib: plain, bgzip or BCF), and its contig names.

pysam is the maintained binding of htslib, the library behind samtools/bcftools/tabix; the same
library writes the output VCF, bgzip-compressed and tabix-indexed (`output`). Records are read
in file order; every problem is an InputError naming the file, the record and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from hyena_platform.errors import ConfigError, InputError

INFO_TYPES = {"Integer": "int64", "Float": "float64", "Flag": "bool"}  # else string


def quiet_htslib() -> None:
    """htslib prints its own errors to stderr; ours name the file, the record and the fix."""
    import pysam

    pysam.set_verbosity(0)


def open_vcf(path: str):
    import pysam

    quiet_htslib()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"vcf.path {path}: file not found")
    with open(p, "rb") as f:
        head = f.read(2)
        f.seek(max(0, p.stat().st_size - 1))
        last = f.read(1)
    if head != b"\x1f\x8b" and last not in (b"\n", b""):
        raise InputError(f"vcf.path {path}: the file ends in the middle of a line, so it is truncated; "
                         "regenerate or re-download it")
    try:
        return pysam.VariantFile(str(p))
    except NotImplementedError:  # htslib: gzip without BGZF blocks
        raise InputError(f"vcf.path {path}: compressed with plain gzip, which htslib cannot read; "
                         f"recompress it with bgzip: gunzip -c {path} | bgzip > {_bgzip_name(path)}") from None
    except (ValueError, OSError) as err:
        if "truncated" in str(err):
            raise InputError(f"vcf.path {path}: the file is truncated ({_one_line(err)}); regenerate or "
                             "re-download it") from None
        raise InputError(f"vcf.path {path}: not a readable VCF or BCF ({_one_line(err)}); give a VCF "
                         "(plain or bgzip-compressed) or a BCF file") from None


def _bgzip_name(path: str) -> str:
    stem = path[:-3] if path.endswith(".gz") else path
    return (stem[:-4] if stem.endswith(".vcf") else stem) + ".bgz.vcf.gz"


@dataclass(frozen=True)
class ContigNames:
    """VCF contig names -> FASTA record names (`vcf.chr_prefix`, `vcf.rename`)."""

    chr_prefix: str = "exact"
    rename: Mapping[str, str] | None = None

    def __call__(self, name: str) -> str:
        if self.rename and name in self.rename:
            return self.rename[name]
        if self.chr_prefix == "add" and not name.startswith("chr"):
            return "chr" + name
        if self.chr_prefix == "strip" and name.startswith("chr"):
            return name[3:]
        return name


def missing_contig(vcf: str, where: str, name: str, mapped: str, fasta: str, lengths: Mapping[str, int]) -> InputError:
    """The error for a contig the FASTA lacks, naming both spellings when only the prefix differs."""
    have = ", ".join(list(lengths)[:8]) + (", ..." if len(lengths) > 8 else "")
    shown = f"{name!r}" if mapped == name else f"{name!r} (mapped to {mapped!r})"
    if "chr" + mapped in lengths or (mapped.startswith("chr") and mapped[3:] in lengths):
        other = "chr" + mapped if "chr" + mapped in lengths else mapped[3:]
        fix = "add" if other.startswith("chr") else "strip"
        return InputError(f"{vcf}: {where}: contig {shown} is spelled {other!r} in the FASTA {fasta}; "
                          f"set vcf.chr_prefix: {fix} (--set vcf.chr_prefix={fix}) or map names in vcf.rename")
    return InputError(f"{vcf}: {where}: contig {shown} is not in the FASTA {fasta} (it has {have}); "
                      "give the FASTA of the VCF's assembly in data.fasta, map names in vcf.rename, or "
                      "remove those records")


def info_columns(vcf, path: str, fields: Sequence[str]) -> dict[str, str]:
    """Arrow type names of the requested INFO fields; ConfigError naming the valid ones."""
    header = vcf.header.info
    out = {}
    for name in fields:
        if name not in header:
            valid = ", ".join(sorted(header)) or "none"
            raise ConfigError(f"vcf.info_fields: {name!r} is not an INFO field of {path} (it declares {valid})")
        meta = header[name]
        out[name] = INFO_TYPES.get(meta.type, "string") if meta.number in (1, 0) else "string"
    return out


def info_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if isinstance(value, tuple):
        return ",".join("." if v is None else str(v) for v in value)
    if kind == "string" and not isinstance(value, str):
        return str(value)
    return value


def iter_records(path: str, info: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Records in file order: ``record`` (0-based index), ``chrom, pos`` (1-based), ``id, ref,
    alts`` (tuple or None), ``info`` (the requested fields). InputError on a bad record."""
    vcf = open_vcf(path)
    n = 0
    try:
        it = iter(vcf)
        while True:
            try:
                rec = next(it)
                row = {"record": n, "chrom": rec.chrom, "pos": rec.pos, "id": rec.id, "ref": rec.ref,
                       "alts": rec.alts}
                row["info"] = {k: info_value(rec.info.get(k), kind) for k, kind in info.items()}
            except StopIteration:
                return
            except (ValueError, OSError) as err:
                raise InputError(
                    f"vcf.path {path}: cannot read record {n + 1} ({_one_line(err)}); the file is truncated "
                    f"or malformed after record {n}: check it with `bcftools view {path} > /dev/null` and "
                    "regenerate or re-download it"
                ) from None
            if row["ref"] is None:
                raise InputError(f"vcf.path {path}: record {n + 1} ({row['chrom']}:{row['pos']}) has no REF; "
                                 "every VCF record needs a REF allele")
            yield row
            n += 1
    finally:
        vcf.close()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]
