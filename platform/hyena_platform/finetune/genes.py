"""Gene calls for the per-base annotation task: Prodigal (through pyrodigal) on a bacterial
genome, written as a BED of coding sequences with their strand (``chrom start end CDS 0 +``).

Prodigal (Hyatt et al. 2010) is trained on the genome itself (single-genome mode), then finds
genes on every record. The BED feeds a fine-tuning job with ``data.format: fasta_bed`` and
``data.strand_labels: true``: classes noncoding, CDS+, CDS-.

    python -m hyena_platform.finetune.genes vc_genes.bed            # the bundled V. cholerae genome
    python -m hyena_platform.finetune.genes genes.bed --fasta my.fa
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from hyena_platform.data.fasta import fasta_reader
from hyena_platform.data.genome import read_records


def call_genes(fasta: str) -> list[tuple[str, int, int, str]]:
    """(chrom, start, end, strand) of every gene Prodigal finds, 0-based half-open."""
    import pyrodigal

    records = read_records([fasta])
    seqs = {r.name: fasta_reader(r.source).raw(r.name, 0, r.length).translate(None, b"\r\n").upper()
            for r in records}
    finder = pyrodigal.GeneFinder()
    finder.train(*seqs.values())
    out = []
    for name, seq in seqs.items():
        for gene in finder.find_genes(seq):
            out.append((name, gene.begin - 1, gene.end, "+" if gene.strand == 1 else "-"))
    return out


def write_bed(rows: list[tuple[str, int, int, str]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("# Prodigal gene calls (pyrodigal, single-genome mode): chrom start end name score strand\n")
            for chrom, start, end, strand in rows:
                f.write(f"{chrom}\t{start}\t{end}\tCDS\t0\t{strand}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    from hyena_platform.genome_assets import BUNDLED_GENOME

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="BED file to write")
    p.add_argument("--fasta", default=str(BUNDLED_GENOME), help="genome (default: the bundled V. cholerae)")
    args = p.parse_args(argv)
    rows = call_genes(args.fasta)
    write_bed(rows, args.out)
    print(f"wrote {len(rows)} genes to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
