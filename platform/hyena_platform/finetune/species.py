"""Species classification data (HyenaDNA sec. 4.4): windows of complete bacterial references,
train on some strains, test on held-out strains.

The references are Debian's `ragout-examples` (16 complete genomes of E. coli, H. pylori,
S. aureus and V. cholerae). `species_table` samples `windows` windows of `length` bases from
each genome (positions uniform over all its records, windows with N skipped) and writes a
Parquet table with columns sequence, label (the species), split, strain, record, start.

    apt-get download ragout-examples && dpkg-deb -x ragout-examples_*.deb ragout
    python -m hyena_platform.finetune.species ragout/usr/share/doc/ragout/examples species.parquet
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
from pathlib import Path

import numpy as np

from hyena_platform.errors import InputError

# One strain per species is held out for test (the rest train; valid is carved from train).
TEST_STRAINS = {"E.Coli": "DH1", "H.Pylori": "SJM180", "S.Aureus": "USA300_FPR3757", "V.Cholerae": "O395"}


def read_fasta(path: Path) -> dict[str, str]:
    """Records of a (gzip) FASTA, uppercased."""
    opener = gzip.open if path.suffix == ".gz" else open
    records: dict[str, list[str]] = {}
    name = None
    with opener(path, "rt") as f:
        for line in f:
            if line.startswith(">"):
                name = line[1:].split()[0]
                records[name] = []
            elif name is not None:
                records[name].append(line.strip())
    if not records:
        raise InputError(f"{path}: no FASTA record")
    return {k: "".join(v).upper() for k, v in records.items()}


def genomes(root: Path) -> list[tuple[str, str, Path]]:
    """(species, strain, fasta) for every reference under ROOT/<species>/references/."""
    found = [(p.parent.parent.name, p.name.removesuffix(".fasta.gz"), p)
             for p in sorted(root.glob("*/references/*.fasta.gz"))]
    if not found:
        raise InputError(f"{root}: no */references/*.fasta.gz; point at ragout-examples' "
                         "usr/share/doc/ragout/examples folder")
    return found


def sample_windows(records: dict[str, str], n: int, length: int, rng: np.random.Generator) -> list[tuple[str, int, str]]:
    """`n` windows (record, start, sequence) uniform over the genome, none holding N."""
    names = [k for k, v in records.items() if len(v) >= length]
    weights = np.array([len(records[k]) - length + 1 for k in names], dtype=np.float64)
    out: list[tuple[str, int, str]] = []
    while len(out) < n:
        rec = names[rng.choice(len(names), p=weights / weights.sum())]
        start = int(rng.integers(0, len(records[rec]) - length + 1))
        seq = records[rec][start:start + length]
        if set(seq) <= set("ACGT"):
            out.append((rec, start, seq))
    return out


def species_table(root: Path, out: Path, *, windows: int, test_windows: int, length: int = 1024, seed: int = 0,
                  test_strains: dict[str, str] = TEST_STRAINS) -> int:
    """Write the table; returns its number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("sequence", "label", "split", "strain", "record", "start")}
    for species, strain, path in genomes(root):
        test = test_strains.get(species) == strain
        for rec, start, seq in sample_windows(read_fasta(path), test_windows if test else windows, length, rng):
            for k, v in zip(cols, (seq, species, "test" if test else "train", strain, rec, start)):
                cols[k].append(v)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        pq.write_table(pa.table(cols), tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(cols["sequence"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ragout_examples", type=Path, help="ragout-examples' usr/share/doc/ragout/examples folder")
    p.add_argument("out", type=Path, help="Parquet table to write")
    p.add_argument("--windows", type=int, default=400, help="windows per train genome")
    p.add_argument("--test-windows", type=int, default=400, help="windows per held-out genome")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    n = species_table(args.ragout_examples, args.out, windows=args.windows, test_windows=args.test_windows,
                      length=args.length, seed=args.seed)
    print(f"wrote {n} windows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
