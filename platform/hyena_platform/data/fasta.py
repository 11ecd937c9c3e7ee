"""FASTA files: format checks, indexes, fast reads of base ranges, tokenisation of bytes.

Pure functions (pyfaidx, numpy, pyarrow; no Ray). pyfaidx builds and validates the indexes
(.fai, and .gzi for bgzip), into a cache directory when the FASTA's own directory is not
writable; `FastaReader` then reads a whole range per call (BGZF blocks inflated with python-isal
when installed, else zlib) and `bytes.translate` maps bytes to official ids and drops newlines in
one C pass. Coordinates are 0-based, end-exclusive.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from hyena.tokenizer import TokenizerError, encode_bytes
from hyena_platform.errors import InputError

_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


# --------------------------------------------------------------------------------------------
# FASTA files and indexes


def fasta_compression(path: str) -> str:
    """'plain', 'bgzip' or 'gzip' (plain gzip: read through a bgzip copy, see
    hyena_platform.data.gzip_fasta). Any other compression is an InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: FASTA file not found")
    if not p.is_file():
        raise InputError(f"{path}: not a file (a FASTA path was expected)")
    with open(p, "rb") as f:
        head = f.read(1024)
    if head.startswith(_GZIP_MAGIC):
        if len(head) >= 18 and _bgzf_block(head, 0)[1] is not None:  # gzip with a BC subfield
            return "bgzip"
        return "gzip"
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise InputError(f"{path}: {name}-compressed FASTA is not supported; decompress it, "
                             f"then optionally bgzip it")
    return "plain"


def _bgzip_name(path: str) -> str:
    return path if path.endswith((".gz", ".bgz")) else path + ".gz"


def content_digest(path: str) -> str:
    """"sha256:<hex>" of the file's bytes: what identifies an input (never its path, size or
    mtime, which an in-place edit can keep). SHA-256 runs at ~1.7 GB/s with the CPU's SHA
    extensions: ~2 s for a human genome."""
    try:
        with open(path, "rb") as f:
            return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None


def default_index_cache() -> Path:
    base = os.environ.get("HYENA_CACHE_DIR")
    if base:
        return Path(base) / "fasta-index"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hyena" / "fasta-index"


def _writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)


def index_paths(path: str, *, index_cache: str | None = None) -> tuple[str, str | None]:
    """Where the .fai (and .gzi for bgzip) are, or will be built.

    Next to the FASTA when they exist there and are not older than it, or when its directory is
    writable; otherwise in the index cache, under a directory named by a hash of the FASTA path.
    """
    bgzip = fasta_compression(path) == "bgzip"
    p = Path(path).resolve()
    fai, gzi = Path(f"{p}.fai"), Path(f"{p}.gzi") if bgzip else None
    present = fai.exists() and (gzi is None or gzi.exists())
    fresh = present and all(x.stat().st_mtime >= p.stat().st_mtime for x in (fai, gzi) if x is not None)
    if fresh or _writable(p.parent):
        return str(fai), None if gzi is None else str(gzi)
    cache = Path(index_cache) if index_cache else default_index_cache()
    where = cache / hashlib.sha256(str(p).encode()).hexdigest()[:16]
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{path}: its directory is not writable and the index cache {where} "
                         f"cannot be created ({err.strerror}); set data.index_cache") from None
    return str(where / (p.name + ".fai")), None if gzi is None else str(where / (p.name + ".gzi"))


_OPEN: dict[tuple[str, str | None], "FastaReader"] = {}  # per process (Ray workers are reused)
_OPEN_LOCK = threading.Lock()


def open_fasta(path: str, *, index_cache: str | None = None):
    """A pyfaidx.Fasta for `path`, building a missing index; cached per process."""
    return fasta_reader(path, index_cache=index_cache).fasta


def fasta_reader(path: str, *, index_cache: str | None = None) -> "FastaReader":
    """The per-process reader of `path` (opened, and its index built, on first use).

    A file replaced or edited since (size, mtime, ctime or inode changed) gets a new reader: long-lived Ray workers
    never read a rewritten FASTA through a stale index.
    """
    key = (str(path), index_cache)
    try:
        st = os.stat(path)
    except OSError:
        raise InputError(f"{path}: FASTA file not found") from None
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)  # ctime: an in-place edit that kept mtime
    with _OPEN_LOCK:
        reader = _OPEN.get(key)
        if reader is None or reader.stamp != stamp:
            reader = _OPEN[key] = FastaReader(str(path), index_cache)
            reader.stamp = stamp
        return reader


def inflate_backend() -> tuple[str, Any]:
    """('isal', isal_zlib.decompress) when python-isal is installed (~4x faster), else zlib's.

    HYENA_INFLATE=zlib forces the standard library (for comparisons).
    """
    if os.environ.get("HYENA_INFLATE", "").lower() != "zlib":
        try:
            from isal import isal_zlib

            return "isal", isal_zlib.decompress
        except ImportError:
            pass
    import zlib

    return "zlib", zlib.decompress


class FastaReader:
    """Bases of a plain or bgzip FASTA by coordinates, as raw bytes.

    pyfaidx builds and validates the index (.fai, and .gzi for bgzip). Reads bypass its
    per-call string handling: the byte range of [start, end) is read in one go; for bgzip the
    BGZF blocks covering it (found with the .gzi) are read in one go and inflated block by
    block (python-isal when installed, else zlib); newlines are dropped later by
    `bytes.translate` in C.
    """

    def __init__(self, path: str, index_cache: str | None, *, inflate: Any = None):
        self.path = path
        self.stamp: tuple[int, ...] | None = None  # file identity when opened via fasta_reader
        data = path  # the file read: the FASTA itself, or the bgzip copy of a plain-gzip one
        if fasta_compression(path) == "gzip":
            from hyena_platform.data.gzip_fasta import bgzip_copy

            data = bgzip_copy(path, Path(index_cache) if index_cache else default_index_cache())
        fai, gzi = index_paths(data, index_cache=index_cache)
        self.fasta = _open_fasta(data, fai, gzi, shown=path)
        self.index = self.fasta.faidx.index
        self._lock = threading.Lock()
        self._handle = open(data, "rb")
        self._block_u = None
        if gzi is not None:
            self._size = os.path.getsize(data)
            self._block_c, self._block_u = _read_gzi(gzi, path, self._size)
            self._inflate = inflate or inflate_backend()[1]
        check_index(self, fai)

    def raw(self, chrom: str, start: int, end: int) -> bytes:
        """The file bytes holding bases [start, end) of `chrom`, newlines included."""
        rec = self.index[chrom]
        lenc, lenb = int(rec.lenc), int(rec.lenb)
        first = int(rec.offset) + (start // lenc) * lenb + start % lenc
        last = int(rec.offset) + ((end - 1) // lenc) * lenb + (end - 1) % lenc
        if self._block_u is None:
            with self._lock:
                self._handle.seek(first)
                return self._handle.read(last + 1 - first)
        return self._bgzf_range(first, last + 1)

    def read_bytes(self, u0: int, u1: int) -> bytes:
        """Uncompressed file bytes [u0, u1) (fewer at the file's end)."""
        if u1 <= u0:
            return b""
        if self._block_u is None:
            with self._lock:
                self._handle.seek(u0)
                return self._handle.read(u1 - u0)
        return self._bgzf_range(u0, u1)

    def _bgzf_range(self, u0: int, u1: int) -> bytes:
        """Uncompressed bytes [u0, u1) of a BGZF file."""
        i0 = int(np.searchsorted(self._block_u, u0, side="right")) - 1
        i1 = int(np.searchsorted(self._block_u, u1 - 1, side="right")) - 1
        c0 = int(self._block_c[i0])
        c1 = int(self._block_c[i1 + 1]) if i1 + 1 < self._block_c.size else self._size
        with self._lock:
            self._handle.seek(c0)
            data = self._handle.read(c1 - c0)
        parts, pos, view = [], 0, memoryview(data)
        while pos < len(data):
            header, bsize = _bgzf_block(data, pos)
            if bsize is None:
                raise InputError(f"{self.path}: corrupt BGZF block at byte {c0 + pos}; the .gzi "
                                 "index may be stale: delete it and retry")
            parts.append(self._inflate(view[pos + header:pos + bsize - 8], -15))  # raw deflate
            pos += bsize
        out = b"".join(parts)
        skip = u0 - int(self._block_u[i0])
        return out[skip:skip + (u1 - u0)]


def _read_gzi(gzi: str, path: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Block starts (compressed, uncompressed offsets) from a .gzi, checked for consistency."""
    raw = np.fromfile(gzi, dtype="<u8")  # count, then (compressed, uncompressed) pairs
    raw = raw.view("<i8")  # offsets fit in int64; corrupt values show as negative
    count = int(raw[0]) if raw.size else -1
    pairs = raw[1:].reshape(-1, 2) if raw.size % 2 == 1 else None
    starts_c = np.concatenate([[0], pairs[:, 0]]).astype(np.int64) if pairs is not None else None
    if (pairs is None or count != len(pairs) or np.any(np.diff(starts_c) <= 0) or starts_c[-1] >= size
            or np.any(np.diff(pairs[:, 1]) <= 0)):
        raise InputError(f"{gzi}: corrupt or not the .gzi of {path} (bgzip block index); delete it and "
                         "rerun: it is rebuilt")
    return starts_c, np.concatenate([[0], pairs[:, 1]]).astype(np.int64)


def check_index(reader: "FastaReader", fai: str, *, sample: int = 1000) -> None:
    """Raise InputError unless the .fai describes this file: each record ends where the next
    record's '>name' header starts, the first header opens the file and the last record ends at
    the file's end. A .fai left from an older version of the FASTA (even one newer than it)
    would otherwise silently truncate or shift records. Checks at most `sample` boundaries."""
    index = reader.index
    names = list(index.keys())
    if not names:
        return
    picks = range(len(names)) if len(names) <= sample else sorted(
        {int(i) for i in np.linspace(0, len(names) - 1, sample)})
    first = index[names[0]]
    if int(first.offset) < 65536:
        head = reader.read_bytes(0, int(first.offset))
        if not head.startswith(b">" + names[0].encode()):
            _stale_index(fai, reader.path, f"the file does not start with the header of {names[0]!r}")
    for i in picks:
        rec = index[names[i]]
        rlen, lenc, lenb = int(rec.rlen), int(rec.lenc), int(rec.lenb)
        end = int(rec.offset) + (rlen // lenc) * lenb + rlen % lenc if lenc else int(rec.offset)
        nxt = names[i + 1] if i + 1 < len(names) else None
        want = b">" + nxt.encode() if nxt is not None else b""
        tail = reader.read_bytes(end, end + 4 + len(want) + 1).lstrip(b"\r\n")
        if nxt is not None and not (tail.startswith(want) and tail[len(want):len(want) + 1] in (b"", b" ", b"\t", b"\r", b"\n")):
            _stale_index(fai, reader.path, f"record {names[i]!r} should be followed by the header of {nxt!r} "
                                          f"at byte {end}")
        if nxt is None and tail.strip():
            _stale_index(fai, reader.path, f"the file goes on after the last indexed record {names[i]!r} "
                                          f"(byte {end})")


def _stale_index(fai: str, path: str, what: str) -> None:
    raise InputError(f"{fai}: this index does not describe {path} ({what}); it is older than the FASTA's "
                     f"content: delete {fai} (and any .gzi beside it) and rerun, it is rebuilt")


def _bgzf_block(data: bytes, pos: int) -> tuple[int, int | None]:
    """(header length, total block size) of the BGZF block at `pos`; size None if not one.

    A BGZF block is a gzip member with FEXTRA whose 'BC' subfield holds the block size - 1.
    """
    if pos + 12 > len(data) or data[pos:pos + 2] != b"\x1f\x8b" or not data[pos + 3] & 4:
        return 0, None
    xlen = int.from_bytes(data[pos + 10:pos + 12], "little")
    i, end = pos + 12, pos + 12 + xlen
    while i + 4 <= end:
        slen = int.from_bytes(data[i + 2:i + 4], "little")
        if data[i:i + 2] == b"BC" and slen == 2:
            return 12 + xlen, int.from_bytes(data[i + 4:i + 6], "little") + 1
        i += 4 + slen
    return 0, None


def _open_fasta(data: str, fai: str, gzi: str | None, *, shown: str | None = None):
    """pyfaidx.Fasta of file `data`; errors name `shown` (the user's file; `data` may be a copy)."""
    import pyfaidx  # imported here: only the processes that read FASTA need it

    path = shown or data

    new = [p for p in (fai, gzi) if p and not os.path.exists(p)]  # being built now: removed on failure
    try:
        return pyfaidx.Fasta(
            data, indexname=fai, gzi_indexname=gzi, as_raw=True, sequence_always_upper=False,
            duplicate_action="stop", one_based_attributes=False,
        )
    except pyfaidx.FastaIndexingError as err:
        msg = str(err)
        if "does not contain a valid sequence" in msg:
            msg = "empty FASTA: no record found (a record starts with a '>name' header line)"
        elif "before the first sequence definition" in msg:
            msg = "no FASTA header: the first record must start with a '>name' line"
        raise InputError(f"{path}: {msg}") from None
    except UnicodeDecodeError as err:  # a ValueError: caught first
        _remove_partial_index(*new)
        raise InputError(f"{path}: not a text FASTA file (byte 0x{err.object[err.start]:02x} is not text); "
                         "give a FASTA (plain text or bgzip)") from None
    except ValueError as err:
        if str(err).startswith("Duplicate key"):
            name = str(err).split('"')[1] if '"' in str(err) else str(err)
            raise InputError(f"{path}: duplicate sequence name {name!r}; every record needs a "
                             "unique name (the first word of its '>' line)") from None
        if gzi is None:
            raise
        _remove_partial_index(*new)
        raise InputError(f"{path}: corrupt bgzip file ({_one_line(err)}); recompress it from the original "
                         f"FASTA under a new name, e.g. bgzip -c original.fa > {_bgzip_name('new.fa')}") from None
    except (struct.error, EOFError, zlib.error) as err:  # a bgzip file cut short (Biopython's reader)
        _remove_partial_index(*new)
        raise InputError(f"{path}: truncated or corrupt bgzip file ({_one_line(err)}); copy or recompress it "
                         f"again from the original, e.g. bgzip -c original.fa > {_bgzip_name('new.fa')}") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read FASTA ({err})") from None


def _remove_partial_index(*paths: str) -> None:
    """An index that pyfaidx began to build from an unreadable file is not kept."""
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


# --------------------------------------------------------------------------------------------
# Reading and tokenising chunks


def tokenize_codes(codes: np.ndarray, *, source: str, chrom: str, start: int) -> np.ndarray:
    """Official ids (uint8); soft-masked bases map like uppercase, IUPAC codes to N."""
    try:
        return encode_bytes(codes, where=f"{source}, record {chrom!r}", offset=start)
    except TokenizerError as err:
        raise InputError(str(err)) from None  # names file, record and 0-based position
