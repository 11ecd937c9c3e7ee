"""The cost of the writer gate (hyena_platform.write_gate) on a batch job's part writes: each
part written under `write_permit` (open, shared flock, fstat, close of the gate file) against the
same part written without it (the baseline), in the same run.

    .venv/bin/python bench/bench_write_gate.py        # ~20 s on 2 cores

Parts: scoring's chunk shape (4,096 rows: position, base, log-likelihood and 4 probabilities),
written with result_set.write_parquet_atomic (zstd, fsync, rename) into a temporary folder.
Prints milliseconds per part both ways and their ratio; no assertion.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from hyena_platform.result_set import write_parquet_atomic
from hyena_platform.write_gate import write_permit, writers_allowed


def part_table(rng: np.random.Generator, rows: int = 4096) -> pa.Table:
    cols = {"pos": np.arange(rows, dtype=np.int64), "ref": rng.integers(7, 11, rows).astype(np.uint8),
            "loglik": rng.normal(-1.4, 0.3, rows).astype(np.float32)}
    cols.update({f"p_{b}": rng.random(rows).astype(np.float32) for b in "ACGT"})
    return pa.table(cols)


def per_part_ms(root: Path, table: pa.Table, parts: int, gated: bool) -> float:
    t0 = time.perf_counter()
    for i in range(parts):
        final = root / f"part-{i:05d}.parquet"
        if gated:
            with write_permit(root):
                write_parquet_atomic(final, table)
        else:
            write_parquet_atomic(final, table)
    return (time.perf_counter() - t0) * 1000 / parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    table = part_table(np.random.default_rng(0))
    plain, gated = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # alternate, so drift in disk speed hits both alike
            plain.append(per_part_ms(Path(tmp) / f"plain{r}", table, args.parts, gated=False))
            root = Path(tmp) / f"gated{r}"
            with writers_allowed(root):
                gated.append(per_part_ms(root, table, args.parts, gated=True))
    p, g = min(plain), min(gated)
    print(f"{args.parts} parts of 4,096 rows, best of {args.repeats}:")
    print(f"  without the gate (baseline): {p:.3f} ms per part")
    print(f"  with write_permit:           {g:.3f} ms per part   ratio {g / p:.3f}x")


if __name__ == "__main__":
    main()
