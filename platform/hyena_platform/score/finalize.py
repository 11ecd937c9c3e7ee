"""After scoring: the coverage check, per-chromosome statistics, per-bin summaries, and the
bedGraph or bigWig track. One streaming pass over the chunk files, chromosome by chromosome.

Coverage: for every chromosome, its chunk files, read in position order, must hold the positions
of its scored regions exactly once, in order (so the count equals the chromosome length when the
whole chromosome was scored); any gap, overlap, stray file or wrong row is a CoverageError.

bigWig is written with pyBigWig (the maintained Python binding of Jim Kent's libBigWig, used by
deepTools); N bases (null scores) are left out, so genome browsers show gaps there.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hyena_platform.errors import HyenaPlatformError
from hyena_platform.outputs import DiskFullError, atomic_path, write_error
from hyena_platform.score.chunk_files import BINS_NAME, SCORES_DIR, chunk_path, partition_dir
from hyena_platform.score.tiling import Chunk, Region

TRACK_SUFFIX = {"bigwig": ".bw", "bedgraph": ".bedGraph"}


class CoverageError(HyenaPlatformError):
    """The output does not hold every scored position exactly once."""


@dataclass
class ChromStats:
    name: str
    length: int
    regions: list[tuple[int, int]]
    bases: int = 0  # positions present
    scored: int = 0  # positions with a score (not N)
    sum_log_prob: float = 0.0
    sum_entropy: float = 0.0
    sum_log_prob_mean: float | None = None  # with the reverse strand
    sum_bits_saved: float | None = None  # with baseline.bits_saved

    @property
    def expected(self) -> int:
        return sum(e - s for s, e in self.regions)

    def add(self, table, pos: np.ndarray) -> np.ndarray:
        """Count one chunk's scores in; returns which of its positions are scored (not N)."""
        lp = _floats(table["log_prob"])
        valid = ~np.isnan(lp)
        self.bases += pos.shape[0]
        self.scored += int(valid.sum())
        self.sum_log_prob += float(lp[valid].sum(dtype=np.float64))
        self.sum_entropy += float(_floats(table["entropy"])[valid].sum(dtype=np.float64))
        if "log_prob_mean" in table.column_names:
            self.sum_log_prob_mean = (self.sum_log_prob_mean or 0.0) + \
                float(_floats(table["log_prob_mean"])[valid].sum(dtype=np.float64))
        if "bits_saved" in table.column_names:
            self.sum_bits_saved = (self.sum_bits_saved or 0.0) + \
                float(_floats(table["bits_saved"])[valid].sum(dtype=np.float64))
        return valid

    @property
    def mean_log_likelihood(self) -> float:
        return self.sum_log_prob / self.scored if self.scored else float("nan")

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_log_likelihood) if self.scored else float("nan")

    def to_dict(self) -> dict:
        out = {
            "name": self.name, "length": self.length, "regions": [list(r) for r in self.regions],
            "expected_bases": self.expected, "bases": self.bases, "scored_bases": self.scored,
            "n_bases": self.bases - self.scored,
            "coverage": self.bases / self.expected if self.expected else 1.0,
            "mean_log_likelihood": _finite(self.mean_log_likelihood),
            "perplexity": _finite(self.perplexity),
            "bits_per_base": _finite(-self.mean_log_likelihood / math.log(2)) if self.scored else None,
            "mean_entropy": _finite(self.sum_entropy / self.scored) if self.scored else None,
        }
        if self.sum_log_prob_mean is not None and self.scored:
            out["mean_log_likelihood_both_strands"] = self.sum_log_prob_mean / self.scored
        if self.sum_bits_saved is not None and self.scored:
            out["mean_bits_saved"] = self.sum_bits_saved / self.scored  # bits per base over the k-mer chain
        return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class FinalizeResult:
    chromosomes: list[ChromStats]
    tracks: dict[str, Path]  # column -> track file, in the order asked for
    bins: Path | None
    seconds: float = 0.0
    files: int = 0

    @property
    def track(self) -> Path | None:
        """The first track (output.track)."""
        return next(iter(self.tracks.values()), None)


def finalize(root: str | Path, regions: Sequence[Region], chunks: Sequence[Chunk], *,
             tracks: Sequence[str], track_format: str, bin_size: int) -> FinalizeResult:
    """Check coverage and write bins and one track per column of `tracks`. Raises
    CoverageError naming the problem."""
    import time

    t0 = time.perf_counter()
    root = Path(root)
    by_chrom: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_chrom.setdefault(c.chrom, []).append(c)
    stats = {}
    for r in regions:
        s = stats.setdefault(r.chrom, ChromStats(r.chrom, r.length, []))
        s.regions.append((r.start, r.end))
    _check_no_stray_files(root, by_chrom)
    if tracks and track_format == "bigwig":
        check_track_space(root, len(tracks) * sum(c.bases for c in chunks))
    writers = _open_tracks(root, tracks, track_format, [(s.name, s.length) for s in stats.values()])
    bins = _Bins(bin_size) if bin_size else None
    try:
        for chrom, chrom_chunks in by_chrom.items():
            _add_chromosome(root, stats[chrom], chrom_chunks, tracks, bins, writers)
        for writer in writers.values():
            writer.close()
    except BaseException as err:
        for writer in writers.values():
            with contextlib.suppress(OSError):  # the first error is the one to report
                writer.close(keep=False)
        if isinstance(err, OSError):  # disk full while writing a track: one line, no partial file
            raise write_error(root, err) from None
        raise
    bins_path = bins.write(root / BINS_NAME) if bins is not None else None
    return FinalizeResult(list(stats.values()), {c: w.path for c, w in writers.items()}, bins_path,
                          time.perf_counter() - t0, len(chunks))


def _open_tracks(root: Path, tracks: Sequence[str], track_format: str,
                 sizes: list[tuple[str, int]]) -> dict[str, _TrackWriter]:
    """One track writer per column; none left half-open if one cannot be opened."""
    writers: dict[str, _TrackWriter] = {}
    try:
        for column in tracks:
            writers[column] = _TrackWriter(root, column, track_format, sizes)
    except OSError as err:
        for writer in writers.values():
            writer.close(keep=False)
        raise write_error(root, err) from None
    return writers


def _add_chromosome(root: Path, st: ChromStats, chunks: list[Chunk], tracks: Sequence[str], bins: _Bins | None,
                    writers: dict[str, _TrackWriter]) -> None:
    """Read one chromosome's chunk files in position order into its stats, bins and tracks,
    checking that they hold its scored positions exactly once."""
    expected_next = None
    for c in sorted(chunks, key=lambda c: c.start):
        table, pos = _read_chunk(root, c, tracks)
        if expected_next is not None and c.start < expected_next:
            raise CoverageError(f"{st.name}: chunk {c.name} overlaps the previous chunk")
        expected_next = c.end
        valid = st.add(table, pos)
        if bins is not None:
            bins.add(st.name, pos, table, valid)
        for column, writer in writers.items():
            writer.add(st.name, pos, _floats(table[column]))
    if st.bases != st.expected:
        raise CoverageError(f"{st.name}: {st.bases:,} positions present, {st.expected:,} expected")


def _read_chunk(root: Path, c: Chunk, tracks: Sequence[str]):
    """(table, positions) of a chunk file: the columns finalize needs; its positions must be
    exactly the chunk's, once each and in order."""
    import pyarrow.parquet as pq

    path = chunk_path(root, c)
    if not path.exists():
        raise CoverageError(f"{c.chrom}:{c.start}-{c.end}: chunk file {path} is missing")
    cols = ["pos", "log_prob", "entropy"]
    names = pq.read_schema(path).names
    cols += [name for name in ("log_prob_mean", "bits_saved") if name in names]
    cols += [column for column in tracks if column not in cols]
    table = pq.read_table(path, columns=cols)
    pos = table["pos"].to_numpy()
    if pos.shape[0] != c.bases or pos[0] != c.start or pos[-1] != c.end - 1 or \
            (pos.shape[0] > 1 and not np.all(np.diff(pos) == 1)):
        raise CoverageError(f"{path}: positions are not exactly {c.start}..{c.end - 1} once each")
    return table, pos


# bigWig bytes per scored base, an upper bound: a fixed-step float per base, zlib-compressed (~no
# gain on scores), plus the zoom levels and index (measured 4.5 on chrII scores; tests/test_disk_full.py).
BIGWIG_BYTES_PER_BASE = 6.0


def check_track_space(root: Path, bases: int) -> None:
    """DiskFullError before the bigWig is written unless the filesystem has room for it:
    libBigWig, on a full disk, retries its writes forever instead of failing."""
    need = int(bases * BIGWIG_BYTES_PER_BASE) + (1 << 20)
    usage = shutil.disk_usage(root)
    if usage.free < need:
        raise DiskFullError(f"{root}: {usage.free / 1e6:,.1f} MB free, the bigWig track(s) need up to "
                            f"{need / 1e6:,.1f} MB; free some space (or set output.track_format: bedgraph, or "
                            "output.track: null), then rerun (it resumes)")


def _floats(column) -> np.ndarray:
    """A float32 column as numpy with NaN for nulls."""
    return column.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def _check_no_stray_files(root: Path, by_chrom: dict[str, list[Chunk]]) -> None:
    scores = root / SCORES_DIR
    if not scores.is_dir():
        return
    planned = {chunk_path(root, c) for cs in by_chrom.values() for c in cs}
    dirs = {partition_dir(root, chrom) for chrom in by_chrom}
    for d in scores.iterdir():
        if d not in dirs:
            raise CoverageError(f"{d}: a partition that this job does not score")
        for f in d.glob("*.parquet"):
            if f not in planned:
                raise CoverageError(f"{f}: a chunk file that this job does not score")


class _Bins:
    """Sums per (chrom, bin) of the scored columns, written as bins.parquet."""

    def __init__(self, size: int):
        self.size = size
        self.rows: dict[str, dict[str, np.ndarray]] = {}

    def add(self, chrom: str, pos: np.ndarray, table, valid: np.ndarray) -> None:
        idx = pos // self.size
        first = int(idx[0])
        local = idx - first
        n = int(local[-1]) + 1
        acc = {"bases": np.bincount(local, minlength=n).astype(np.int64),
               "scored": np.bincount(local, weights=valid, minlength=n).astype(np.int64)}
        for name in table.column_names:
            if name == "pos":
                continue
            v = _floats(table[name]).astype(np.float64)
            acc["sum_" + name] = np.bincount(local[valid], weights=v[valid], minlength=n)
        per = self.rows.setdefault(chrom, {})
        for key, values in acc.items():
            cur = per.get(key)
            if cur is None:
                per[key] = np.zeros(0, values.dtype)
                cur = per[key]
            need = first + n
            if cur.shape[0] < need:
                cur = np.concatenate([cur, np.zeros(need - cur.shape[0], cur.dtype)])
            cur[first:first + n] += values
            per[key] = cur

    def write(self, path: Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for chrom, per in self.rows.items():
            keep = np.flatnonzero(per["bases"] > 0)
            cols = {"chrom": pa.array([chrom] * keep.size, pa.string()),
                    "start": pa.array(keep * self.size, pa.int64()),
                    "end": pa.array((keep + 1) * self.size, pa.int64()),
                    "bases": pa.array(per["bases"][keep]), "scored": pa.array(per["scored"][keep])}
            scored = per["scored"][keep]
            with np.errstate(invalid="ignore", divide="ignore"):
                for key in sorted(k for k in per if k.startswith("sum_")):
                    mean = np.where(scored > 0, per[key][keep] / np.maximum(scored, 1), np.nan)
                    cols["mean_" + key[4:]] = pa.array(mean, mask=scored == 0)
                if "sum_log_prob" in per:
                    ppl = np.exp(-per["sum_log_prob"][keep] / np.maximum(scored, 1))
                    cols["perplexity"] = pa.array(ppl, mask=scored == 0)
            tables.append(pa.table(cols))
        table = pa.concat_tables(tables) if tables else pa.table({"chrom": pa.array([], pa.string())})
        with atomic_path(path) as tmp:  # temp name, fsync, rename; ENOSPC is one line, nothing left
            pq.write_table(table, tmp)
        return path


class _TrackWriter:
    """A bigWig (pyBigWig) or bedGraph file of one column, positions added in order."""

    def __init__(self, root: Path, column: str, fmt: str, chroms: list[tuple[str, int]]):
        self.path = root / f"{column}{TRACK_SUFFIX[fmt]}"
        self.tmp = root / f".{self.path.name}.tmp"
        self.fmt = fmt
        self.closed = False
        if fmt == "bigwig":
            import pyBigWig

            self.bw = pyBigWig.open(str(self.tmp), "w")
            self.bw.addHeader([(c, int(n)) for c, n in chroms], maxZooms=10)
        else:
            self.fh = open(self.tmp, "w")
            self.fh.write(f'track type=bedGraph name="{column}" description="hyena score {column}"\n')

    def add(self, chrom: str, pos: np.ndarray, values: np.ndarray) -> None:
        """Runs of consecutive non-null values."""
        ok = ~np.isnan(values)
        if not ok.any():
            return
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.view(np.int8), [0]])))
        for s, e in zip(edges[0::2], edges[1::2]):
            start = int(pos[s])
            vals = values[s:e].astype(np.float64)
            if self.fmt == "bigwig":
                self.bw.addEntries(chrom, start, values=vals, span=1, step=1)
            else:
                starts = np.arange(start, start + (e - s))
                self.fh.write("".join(f"{chrom}\t{p}\t{p + 1}\t{v:.6g}\n"
                                      for p, v in zip(starts.tolist(), vals.tolist())))

    def close(self, keep: bool = True) -> None:
        """Finish the file under its final name, or (`keep` false) remove the partial one (even
        when closing it fails, as it does on a full disk)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.fmt == "bigwig":
                self.bw.close()
            else:
                self.fh.close()
            if keep:
                with open(self.tmp, "rb") as f:
                    os.fsync(f.fileno())
                self.tmp.replace(self.path)
        finally:
            if not keep or self.tmp.exists():
                self.tmp.unlink(missing_ok=True)
