"""Data benchmark: every number beside a baseline measured in the same run.

    python bench/bench_data.py                 # ~400 Mb synthetic genome for the Ray pipeline
    python bench/bench_data.py --genome-mb 64  # quicker

1. Tokenisation in one process (Mb/s), ours (1 Mi chunks: one read per chunk with the pyfaidx
   index, BGZF inflate with zlib and, if installed, python-isal, `bytes.translate` to ids)
   against the official HyenaDNA way (pyfaidx fetch of each 1 kb window + a per-character
   Python tokenizer), on the bundled genome, bgzip and plain. Goal >= 30x.
2. The Ray pipeline, FASTA -> Parquet shards + manifest (`write_shards`) on a local Ray with
   2 CPUs, on a synthetic genome made of real V. cholerae sequence (bgzip and plain), against
   the same work in one process without Ray. Goal >= 100 Mb/s.
3. Window iteration (`iter_torch_batches` over `stage_windows`, tiny-1k windows of 1024 with
   shuffle and reverse-complement) against the tokens/s one tiny-1k training step (forward,
   backward, AdamW; batch 16 x 1024) consumes on this CPU. Goal >= 10x.
4. BGZF range reads (`--bgzf-only` runs just this): our reader (`data/fasta.py` FastaReader:
   the .gzi, one read, block-by-block inflate) against the libraries that could replace it,
   Biopython's `Bio.bgzf` (through pyfaidx, which uses it for bgzip) and pysam (htslib's
   `faidx_fetch_seq`), on the bundled genome: whole 1 Mi chunks (pretraining, scoring) and
   random 1 kb windows (variant effects). Every reader's bases are checked equal.
5. Plain-gzip FASTA (`--gzip-only` runs just this): the one-time bgzip copy every job reads a
   `gzip` FASTA through (`data/gzip_fasta.py` bgzip_copy: python-isal inflate, htslib's BGZF
   deflate through pysam, SHA-256 of the source, fsync and rename) against the way a Python user
   would write it, `gzip.open` + Biopython's `Bio.bgzf.BgzfWriter`, on the bundled genome
   recompressed with plain gzip, repeated to 20 Mb. Both copies are checked to hold the same
   bytes and to be indexable by htslib (pysam.FastaFile).
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hyena_platform.data import fasta
from hyena_platform.data.config import DataConfig
from hyena_platform.data.chunks import chunks_table, read_chunk
from hyena_platform.data.genome import plan_layout
from hyena_platform.genome_assets import BUNDLED_GENOME

# The official HyenaDNA CharacterTokenizer: a Python dict lookup per character, [UNK] otherwise.
OFFICIAL_VOCAB = {"[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5, "[UNK]": 6,
                  "A": 7, "C": 8, "G": 9, "T": 10, "N": 11}


def baseline_tokenize(path: str, chrom: str, start: int, end: int, window: int = 1000) -> int:
    """The official dataset's way: pyfaidx fetch per window, str(), per-character tokenizer."""
    import pyfaidx

    fa = pyfaidx.Fasta(path, sequence_always_upper=False)  # the official FastaInterval
    unk = OFFICIAL_VOCAB["[UNK]"]
    n = 0
    for s in range(start, end - window + 1, window):
        seq = str(fa[chrom][s:s + window])
        ids = np.array([OFFICIAL_VOCAB.get(c, unk) for c in seq], dtype=np.int64)
        n += ids.size
    return n


def ours_tokenize(path: str) -> int:
    fasta._OPEN.clear()  # a fresh reader each run: no BGZF block cache carried over
    layout = plan_layout(DataConfig(fasta=[path], valid_chroms=[]))
    return sum(read_chunk(spec)["tokens"].size for spec in layout.chunk_specs())


def rate(fn, *args, min_time: float = 1.0) -> tuple[float, float]:
    """(wall, CPU) Mb/s of fn(*args) -> bases: the best run, repeated until min_time has passed.

    The CPU rate (bases over this process's CPU seconds) does not depend on what else the
    machine runs; the wall rate does.
    """
    best_wall, best_cpu, spent = 0.0, 0.0, 0.0
    while spent < min_time:
        t0, c0 = time.perf_counter(), time.process_time()
        bases = fn(*args)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        spent += dt
        best_wall, best_cpu = max(best_wall, bases / dt / 1e6), max(best_cpu, bases / max(dc, 1e-9) / 1e6)
    return best_wall, best_cpu


def bench_tokenize(tmp: Path) -> list[tuple[str, float, float]]:
    plain = tmp / "vc.fa"
    with gzip.open(BUNDLED_GENOME, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    rows = []
    for name, path in (("bgzip", str(BUNDLED_GENOME)), ("plain", str(plain))):
        ours_tokenize(path)  # indexes built, files cached
        base = rate(baseline_tokenize, path, "chrI", 0, 400_000, min_time=2.0)
        backends = ["zlib", fasta.inflate_backend()[0]] if name == "bgzip" else ["-"]
        for backend in dict.fromkeys(backends):
            os.environ["HYENA_INFLATE"] = backend
            ours = rate(ours_tokenize, path, min_time=2.0)
            rows.append((f"{name}" + (f", {backend}" if backend != "-" else ""), base, ours))
        os.environ.pop("HYENA_INFLATE", None)
    return rows


def make_genome(tmp: Path, megabases: int) -> tuple[Path, Path | None]:
    """A FASTA of real V. cholerae sequence: chrI/chrII rotated by a different offset per record."""
    from Bio import SeqIO

    with gzip.open(BUNDLED_GENOME, "rt") as f:
        real = [str(record.seq) for record in SeqIO.parse(f, "fasta")]
    rng = np.random.default_rng(0)
    plain = tmp / "synthetic.fa"
    total, i = 0, 0
    with open(plain, "w") as out:
        while total < megabases * 1_000_000:
            seq = real[i % 2]
            k = int(rng.integers(len(seq)))
            seq = seq[k:] + seq[:k]
            out.write(f">chr{i + 1}\n")
            out.writelines(seq[j:j + 80] + "\n" for j in range(0, len(seq), 80))
            total += len(seq)
            i += 1
    bgz = None
    if shutil.which("bgzip"):
        bgz = tmp / "synthetic.fa.gz"
        with open(plain, "rb") as src, open(bgz, "wb") as dst:
            subprocess.run(["bgzip", "-@", "2", "-c"], stdin=src, stdout=dst, check=True)
    return plain, bgz


def single_process_shards(path: Path, out: Path, compression: str) -> tuple[float, float]:
    """The same tokenise + Parquet write in one process without Ray: (wall, CPU) seconds."""
    import pyarrow.parquet as pq

    layout = plan_layout(DataConfig(fasta=[str(path)], valid_chroms=[]))
    specs = layout.chunk_specs()
    out.mkdir()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(specs), 32):
        table = chunks_table(specs[i:i + 32], digest=True)
        pq.write_table(table, out / f"part-{i:05d}.parquet", compression=compression,
                       compression_level=1 if compression == "zstd" else None,
                       use_dictionary=["chrom", "split"], write_statistics=["chrom", "start", "split"])
    return time.perf_counter() - t0, time.process_time() - c0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and all its descendants (Ray's included), from
    /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)  # ppid, cpu
    mine, total, changed = {os.getpid()}, 0.0, True
    while changed:
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                changed = True
    return sum(stats[pid][1] for pid in mine if pid in stats)


def bench_pipeline(tmp: Path, megabases: int) -> list[tuple[str, float, float, float, float, float]]:
    from hyena_platform.data.pipeline import write_shards

    plain, bgz = make_genome(tmp, megabases)
    rows = []
    for name, path in (("bgzip", bgz), ("plain", plain)):
        if path is None:
            continue
        cfg = DataConfig(fasta=[str(path)], valid_chroms=[])
        bases = sum(plan_layout(cfg).split_bases().values())  # builds the index, outside the timing
        for compression in ("zstd", "none"):
            single, single_cpu = single_process_shards(path, tmp / f"single-{name}-{compression}", compression)
            c0, t0 = cpu_seconds(), time.perf_counter()
            write_shards(cfg, str(tmp / f"shards-{name}-{compression}"), compression=compression)
            ray_s, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            rows.append((f"{name}, {compression}", bases / 1e6, bases / single / 1e6, bases / ray_s / 1e6,
                         bases / single_cpu / 1e6, bases / (cpu / 2) / 1e6))
    return rows


def bench_windows(steps: int = 5) -> tuple[float, float, int]:
    import torch

    from hyena import HyenaConfig, HyenaDNAForCausalLM
    from hyena_platform.data.pipeline import load_chunks
    from hyena_platform.data.training_windows import stage_windows

    batch, length = 16, 1024
    chunks = load_chunks(DataConfig())
    ds = stage_windows(chunks, split="train", length=length, seed=0, epoch=0, reverse_complement=True,
                       max_n_fraction=0.1)
    for _ in ds.limit(64).iter_torch_batches(batch_size=batch):
        pass  # warm the workers
    t0 = time.perf_counter()
    tokens = 0
    for b in ds.iter_torch_batches(batch_size=batch, drop_last=True):
        tokens += b["input_ids"].numel()
    iter_rate = tokens / (time.perf_counter() - t0)

    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(HyenaConfig.variant("tiny-1k")).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(7, 12, (batch, length + 1))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model(ids[:, :-1], labels=ids[:, 1:]).loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    step_rate = batch * length / statistics.median(times)
    return iter_rate, step_rate, torch.get_num_threads()


def bgzf_readers(path: str) -> dict[str, object]:
    """name -> fetch(chrom, start, end) -> the bases (newlines dropped) as bytes or str."""
    import zlib

    import pyfaidx
    import pysam

    ours = fasta.FastaReader(path, None)
    ours_zlib = fasta.FastaReader(path, None, inflate=zlib.decompress)
    biopython = pyfaidx.Fasta(path, as_raw=True, sequence_always_upper=False)  # Bio.bgzf underneath
    htslib = pysam.FastaFile(path)
    return {
        f"ours ({fasta.inflate_backend()[0]})": lambda c, s, e: ours.raw(c, s, e).translate(None, b"\r\n"),
        "ours (zlib)": lambda c, s, e: ours_zlib.raw(c, s, e).translate(None, b"\r\n"),
        "Bio.bgzf (pyfaidx)": lambda c, s, e: biopython.faidx.fetch(c, s + 1, e),
        "pysam (htslib)": lambda c, s, e: htslib.fetch(c, s, e),
    }


def bench_bgzf(seed: int = 0) -> list[tuple[str, float, float, float, float]]:
    """(reader, chunks Mb/s per CPU-s, wall; 1 kb windows Mb/s per CPU-s, wall), best of rounds
    run in alternation (every reader once per round), so load changes hit all readers alike."""
    path = str(BUNDLED_GENOME)
    readers = bgzf_readers(path)
    lengths = {r.name: r.length for r in plan_layout(DataConfig(valid_chroms=[])).records}
    chunks = [(c, s, min(s + (1 << 20), n)) for c, n in lengths.items() for s in range(0, n, 1 << 20)]
    rng = np.random.default_rng(seed)
    names = list(lengths)
    windows = []
    for _ in range(2000):
        c = names[int(rng.integers(len(names)))]
        s = int(rng.integers(0, lengths[c] - 1000))
        windows.append((c, s, s + 1000))
    def as_bytes(x):
        return x if isinstance(x, bytes) else str(x).encode()

    for c, s, e in chunks[:2] + windows[:50]:  # the same bases from every reader
        got = {name: as_bytes(fetch(c, s, e)) for name, fetch in readers.items()}
        assert len(set(got.values())) == 1, (c, s, e, {k: len(v) for k, v in got.items()})
    best: dict[str, list[float]] = {name: [0.0, 0.0, 0.0, 0.0] for name in readers}
    for _ in range(3):
        for name in readers:
            for col, ranges in ((0, chunks), (2, windows)):
                fasta._OPEN.clear()
                fetch = bgzf_readers(path)[name]  # fresh readers: no block cached from an earlier pass
                t0, c0 = time.perf_counter(), time.process_time()
                bases = sum(len(fetch(c, s, e)) for c, s, e in ranges)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                best[name][col] = max(best[name][col], bases / max(dc, 1e-9) / 1e6)
                best[name][col + 1] = max(best[name][col + 1], bases / dt / 1e6)
    return [(name, *v) for name, v in best.items()]


def print_bgzf() -> None:
    print("\n4. BGZF range reads, bundled genome (bgzip), Mb/s; best of 3 alternating rounds")
    print(f"   {'reader':20s} {'1 Mi chunks':^21s}   {'2,000 random 1 kb windows':^25s}")
    print(f"   {'':20s} {'per CPU-s':>10s} {'wall':>10s}   {'per CPU-s':>10s} {'wall':>10s}")
    rows = bench_bgzf()
    ours = rows[0]
    for name, *v in rows:
        print(f"   {name:20s} {v[0]:10.1f} {v[1]:10.1f}   {v[2]:10.2f} {v[3]:10.2f}")
    for name, *v in rows[2:]:
        print(f"   {ours[0]} / {name}: chunks {ours[1] / v[0]:.2f}x, 1 kb windows {ours[3] / v[2]:.2f}x (per CPU-s)")


def plain_gzip_genome(tmp: Path, copies: int = 5) -> Path:
    """The bundled genome `copies` times (records renamed), as one plain-gzip FASTA (level 6)."""
    with gzip.open(BUNDLED_GENOME, "rb") as f:
        text = f.read()
    out = tmp / "genome.fa.gz"
    with gzip.open(out, "wb", compresslevel=6) as g:
        for i in range(copies):
            g.write(text.replace(b">", f">copy{i}_".encode()))
    return out


def biopython_copy(path: Path, out: Path) -> None:
    from Bio import bgzf

    with gzip.open(path, "rb") as src, bgzf.BgzfWriter(str(out), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def bench_gzip(rounds: int = 3) -> dict:
    """CPU and wall seconds, best of `rounds` alternated, of ours and the Biopython way."""
    import pysam

    from hyena_platform.data.gzip_fasta import bgzip_copy

    with tempfile.TemporaryDirectory(prefix="bench_gzip_") as tmpdir:
        tmp = Path(tmpdir)
        src = plain_gzip_genome(tmp)
        with gzip.open(src, "rb") as f:
            plain = f.read()
        best = {"ours": [float("inf")] * 2, "Bio.bgzf": [float("inf")] * 2}
        for r in range(rounds):
            for name in ("ours", "Bio.bgzf") if r % 2 == 0 else ("Bio.bgzf", "ours"):
                cache = tmp / f"cache-{name}-{r}"
                c0, w0 = time.process_time(), time.perf_counter()
                if name == "ours":
                    out = Path(bgzip_copy(str(src), cache))
                else:
                    out = cache
                    biopython_copy(src, out)
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                best[name] = [min(best[name][0], cpu), min(best[name][1], wall)]
                with gzip.open(out, "rb") as f:
                    assert f.read() == plain, f"{name}: the copy's bytes differ from the source"
                assert len(pysam.FastaFile(str(out)).references) == 10  # indexable as bgzip (htslib)
        return {"mb": len(plain) / 1e6, "gzip_mb": src.stat().st_size / 1e6,
                **{name: {"cpu_s": v[0], "wall_s": v[1]} for name, v in best.items()}}


def print_gzip() -> None:
    r = bench_gzip()
    print(f"\n5. plain gzip -> bgzip copy, {r['mb']:.1f} Mb of FASTA ({r['gzip_mb']:.1f} MB gzip); best of 3, alternated")
    print(f"   {'way':22s} {'CPU s':>7s} {'wall s':>7s} {'Mb per CPU-s':>13s}")
    for name in ("Bio.bgzf", "ours"):
        print(f"   {name:22s} {r[name]['cpu_s']:7.2f} {r[name]['wall_s']:7.2f} {r['mb'] / r[name]['cpu_s']:13.1f}")
    print(f"   ours / gzip.open + Bio.bgzf: {r['Bio.bgzf']['cpu_s'] / r['ours']['cpu_s']:.2f}x per CPU-s, "
          f"{r['Bio.bgzf']['wall_s'] / r['ours']['wall_s']:.2f}x wall", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome-mb", type=int, default=400, help="size of the synthetic genome for part 2")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--bgzf-only", action="store_true", help="run part 4 only (BGZF readers)")
    parser.add_argument("--gzip-only", action="store_true", help="run part 5 only (plain-gzip copy)")
    args = parser.parse_args()
    if args.bgzf_only:
        print_bgzf()
        return 0
    if args.gzip_only:
        print_gzip()
        return 0

    import ray
    import ray.data

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs (load average {load}); python {sys.version.split()[0]}; ray {ray.__version__}; "
          f"BGZF inflate: {fasta.inflate_backend()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmpdir:
        tmp = Path(tmpdir)
        print("\n1. tokenisation, one process (Mb/s)")
        print(f"   {'':15s} {'per CPU-second':^32s}   {'wall clock':^32s}")
        print(f"   {'FASTA, inflate':15s} {'official way':>13s} {'ours':>9s} {'ratio':>8s}   "
              f"{'official way':>13s} {'ours':>9s} {'ratio':>8s}  (goal >= 30x)")
        for name, base, ours in bench_tokenize(tmp):
            print(f"   {name:15s} {base[1]:13.2f} {ours[1]:9.1f} {ours[1] / base[1]:7.0f}x   "
                  f"{base[0]:13.2f} {ours[0]:9.1f} {ours[0] / base[0]:7.0f}x")

        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
                 log_to_driver=False, logging_level="WARNING")
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        from hyena_platform.data.pipeline import write_shards

        write_shards(DataConfig(), str(tmp / "warmup"))  # start the workers outside the timings
        print(f"\n2. FASTA -> Parquet shards, {args.genome_mb} Mb synthetic genome (Mb/s)")
        print(f"   {'':12s} {'wall clock':^38s}   {'per CPU-second':^26s}")
        print(f"   {'FASTA, codec':12s} {'one process':>12s} {'Ray, ' + str(args.num_cpus) + ' CPUs':>12s} "
              f"{'ratio':>6s} {'vs goal':>7s}   {'one process':>12s} {'Ray x 2':>8s} {'vs goal':>7s}")
        for name, mb, single, ray_rate, single_cpu, ray_cpu2 in bench_pipeline(tmp, args.genome_mb):
            print(f"   {name:12s} {single:12.1f} {ray_rate:12.1f} {ray_rate / single:5.2f}x {ray_rate / 100:6.2f}x"
                  f"   {single_cpu:12.1f} {ray_cpu2:8.1f} {ray_cpu2 / 100:6.2f}x")
        print("   per CPU-second: bases over the CPU seconds used (Ray: by all of its processes, times 2),")
        print("   the rate on 2 dedicated cores; wall clock depends on what else runs on the machine")

        print("\n3. window iteration vs a tiny-1k training step (input tokens/s)")
        iter_rate, step_rate, threads = bench_windows()
        print(f"   iter_torch_batches (B=16, L=1024, shuffle, RC): {iter_rate:12,.0f}")
        print(f"   tiny-1k train step ({threads} torch threads):        {step_rate:12,.0f}")
        print(f"   ratio: {iter_rate / step_rate:.1f}x  (goal >= 10x)")
        ray.shutdown()
    print_bgzf()
    print_gzip()
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
