"""Species classification data (HyenaDNA sec. 4.4): windows of complete bacterial references,
train on some strains, test on held-out strains.

The references are Debian's `ragout-examples` (16 complete genomes of E. coli, H. pylori,
S. aureus and V. cholerae). `species_table` samples `windows` windows of `length` bases from
each train genome (positions uniform over all its records, windows with N skipped) and
`test_windows` from each held-out genome, and writes a Parquet table with columns sequence,
label (the species), split, strain, record, start.

Test windows are distinct tiles of the genome (`sample_tiles`: non-overlapping, drawn without
replacement), so every test error is its own piece of DNA, as the paired bootstrap of
finetune.paired assumes; random positions would count an error twice where windows overlap
(of 1,600 random windows of H. pylori's 1.66 Mb, about 86% would overlap another). They come from
their own random stream, so the train windows do not depend on how many test windows are asked for.

    apt-get download ragout-examples && dpkg-deb -x ragout-examples_*.deb ragout
    python -m hyena_platform.finetune.species ragout/usr/share/doc/ragout/examples species.parquet
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

from hyena_platform.errors import InputError
from hyena_platform.outputs import atomic_path

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


def sample_tiles(records: dict[str, str], n: int, length: int, rng: np.random.Generator, *,
                 where: str = "genome") -> list[tuple[str, int, str]]:
    """`n` distinct non-overlapping windows (record, start, sequence) from the `length`-base
    tiling of each record (from its start), holding only A, C, G and T (as `sample_windows`'), in
    genome order."""
    tiles = [(rec, start) for rec, seq in records.items() for start in range(0, len(seq) - length + 1, length)
             if set(seq[start:start + length]) <= set("ACGT")]
    if n > len(tiles):
        raise InputError(f"{where}: {n} test windows asked, but it has only {len(tiles)} tiles of {length} "
                         f"bases of only A, C, G, T; ask for at most {len(tiles)} (--test-windows)")
    picks = np.sort(rng.choice(len(tiles), size=n, replace=False))
    return [(rec, start, records[rec][start:start + length]) for rec, start in (tiles[i] for i in picks)]


def species_table(root: Path, out: Path, *, windows: int, test_windows: int, length: int = 1024, seed: int = 0,
                  test_strains: dict[str, str] = TEST_STRAINS) -> int:
    """Write the table; returns its number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    train_rng, test_rng = (np.random.default_rng([seed, stream]) for stream in (0, 1))
    cols: dict[str, list] = {k: [] for k in ("sequence", "label", "split", "strain", "record", "start")}
    for species, strain, path in genomes(root):
        test = test_strains.get(species) == strain
        records = read_fasta(path)
        drawn = (sample_tiles(records, test_windows, length, test_rng, where=str(path)) if test
                 else sample_windows(records, windows, length, train_rng))
        for rec, start, seq in drawn:
            for k, v in zip(cols, (seq, species, "test" if test else "train", strain, rec, start)):
                cols[k].append(v)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:  # a temporary name, then renamed: never a half-written table
        pq.write_table(pa.table(cols), tmp)
    return len(cols["sequence"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ragout_examples", type=Path, help="ragout-examples' usr/share/doc/ragout/examples folder")
    p.add_argument("out", type=Path, help="Parquet table to write")
    p.add_argument("--windows", type=int, default=400, help="windows per train genome")
    p.add_argument("--test-windows", type=int, default=1600,
                   help="distinct non-overlapping windows per held-out genome (H. pylori SJM180 has 1,618)")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        n = species_table(args.ragout_examples, args.out, windows=args.windows, test_windows=args.test_windows,
                          length=args.length, seed=args.seed)
    except InputError as err:
        print(f"species: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {n} windows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
