"""Plain-gzip FASTA (``.fa.gz`` from ``gzip``, not ``bgzip``): a bgzip copy in a cache, made once.

A plain gzip stream has no random access, and every job reads FASTA by position (pyfaidx, the
BGZF blocks of `hyena_platform.data.fasta.FastaReader`). Instead of asking the user to
recompress (and risk a command that overwrites its own input), the file is streamed once,
decompressed (python-isal's igzip when installed, else gzip) and written as BGZF by htslib
(pysam.BGZFile), into the index cache: ``<cache>/gzip-fasta/<hash of the path>/<name>.bgz``,
with ``source.json`` recording which file it was made from. The user's file is only read.

The copy is reused while the source keeps its size, mtime, ctime and inode (an in-place edit
changes ctime); otherwise it is made again. Two processes converting the same file at once take
turns (a lock file beside the copy); the copy appears under its final name only when complete
(temporary name, fsync, rename). Each node makes its own copy unless the cache is shared
(data.index_cache on a shared filesystem).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Iterator

from hyena_platform.errors import InputError

_BLOCK = 1 << 20  # bytes per read while streaming


def source_stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def copy_dir(path: str, cache: Path) -> Path:
    resolved = str(Path(path).resolve())
    return cache / "gzip-fasta" / hashlib.sha256(resolved.encode()).hexdigest()[:16]


def bgzip_copy(path: str, cache: Path) -> str:
    """The path of the bgzip copy of plain-gzip FASTA `path` in `cache`, made now if needed."""
    where = copy_dir(path, cache)
    name = Path(path).name
    copy = where / ((name[:-3] if name.endswith(".gz") else name) + ".bgz")
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{path}: plain gzip is read through a bgzip copy in {where}, which cannot be created "
                         f"({err.strerror}); set data.index_cache to a writable directory") from None
    if _is_current(copy, path):
        return str(copy)
    with _locked(where / ".lock"):
        if not _is_current(copy, path):  # another process may have made it while we waited
            _convert(path, copy)
    return str(copy)


def _is_current(copy: Path, path: str) -> bool:
    try:
        meta = json.loads((copy.parent / "source.json").read_text())
    except (OSError, ValueError):
        return False
    return copy.is_file() and meta.get("stamp") == source_stamp(path) and meta.get("copy") == copy.name


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _Hashing:
    """A binary reader that hashes what passes through (the source's SHA-256, for the record)."""

    def __init__(self, raw):
        self.raw, self.sha = raw, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data

    def readinto(self, buf) -> int:  # gzip.GzipFile's buffered reader may use it
        n = self.raw.readinto(buf)
        self.sha.update(memoryview(buf)[:n])
        return n


def _gzip_reader(fileobj):
    try:
        from isal import igzip  # ~3x faster inflate (Intel ISA-L), a declared dependency

        return igzip.IGzipFile(fileobj=fileobj, mode="rb")
    except ImportError:
        import gzip

        return gzip.GzipFile(fileobj=fileobj, mode="rb")


def _convert(path: str, copy: Path) -> None:
    """Stream `path` (plain gzip, possibly several members) into BGZF at `copy`, atomically."""
    import gzip

    import pysam

    from hyena_platform.outputs import temp_name, write_error

    stamp = source_stamp(path)
    for stale in (copy, Path(f"{copy}.fai"), Path(f"{copy}.gzi"), copy.parent / "source.json"):
        stale.unlink(missing_ok=True)  # a copy of an older version of the file, and its indexes
    try:
        raw = open(path, "rb")
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    tmp = Path(temp_name(copy))
    try:
        with raw:
            hashing = _Hashing(raw)
            # deflate level 1 ("wb1"): a private cache copy; 9x less CPU than the default level 6
            # for a 12% larger file (bench/bench_data.py --gzip-only), and it inflates as fast
            with _gzip_reader(hashing) as src, pysam.BGZFile(str(tmp), "wb1") as dst:
                while chunk := src.read(_BLOCK):
                    dst.write(chunk)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, copy)
        meta = {"source": str(Path(path).resolve()), "stamp": stamp, "sha256": hashing.sha.hexdigest(),
                "copy": copy.name, "made_by": "hyena_platform.data.gzip_fasta"}
        (copy.parent / "source.json").write_text(json.dumps(meta, indent=1) + "\n")
    except (EOFError, gzip.BadGzipFile, zlib.error, _isal_error()) as err:
        raise InputError(f"{path}: truncated or corrupt gzip file ({' '.join(str(err).split())[:160]}); "
                         "copy it again from its source") from None
    except OSError as err:  # the cache's disk is full or read-only
        raise write_error(copy, err) from None
    finally:
        tmp.unlink(missing_ok=True)


def _isal_error() -> type[BaseException]:
    try:
        from isal.isal_zlib import error

        return error
    except ImportError:
        return zlib.error
