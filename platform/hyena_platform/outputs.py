"""Output ownership: a job deletes only what it can prove it wrote, and writes under a lock.

Every job that writes a directory (shard, score, pretrain's run directory, the demo's work
directory, and later fine-tune, embed, VEP) uses this module, in three steps:

    out = OutputDir("results/scores", kind="hyena-scores",
                    owned=("_manifest.json", "scores/chrom=*/*.parquet", "*.bw"))
    with out.lock(job="hyena score jobs/x.yaml"):      # exclusive; a stale lock is reported
        out.claim()                                  # absent/empty -> ours (marker written);
                                                     # ours -> fine; anything else -> OutputError
        out.clear()                                  # --overwrite/--fresh: delete ONLY owned files
        with atomic_path(out.path("bins.parquet")) as tmp:   # temp name, fsync, rename
            write(tmp)

The proof of ownership is the marker file ``.hyena-output.json`` (kind, creator, time), written
before the first output file. ``owned`` lists, as glob patterns relative to the directory
(``*`` stays within one path component, ``**`` crosses them), the files this job writes; the
marker, the lock and our temporary files are always owned. `clear` deletes owned files only and
refuses (OutputError naming the first few) if anything else is there: a user's file in the
way is never deleted, never silently mixed into our outputs.

The lock file ``.hyena-output.lock`` holds the owner's host, pid, the pid's start time and the
job. It is created with O_EXCL (exclusive on local and POSIX shared filesystems; on object
stores, s3:// and the like, the lock is best effort). A lock whose process is gone (same host,
pid dead or reused) is stale: it is replaced and reported through `report`. A lock held by a
live process, or by another host, is an OutputError naming the owner and the lock file.

Local paths and any URI pyarrow supports (s3://, gs://) are accepted for markers and clearing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import posixpath
import re
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from hyena_platform.errors import InputError, few

MARKER_NAME = ".hyena-output.json"
LOCK_NAME = ".hyena-output.lock"
TEMP_TAG = ".hyena-tmp-"  # in every temporary file name this module makes
_ALWAYS_OWNED = (MARKER_NAME, LOCK_NAME, f"**/*{TEMP_TAG}*")


class OutputError(InputError):
    """An output directory is not ours, is locked by another job, or cannot be written."""


class DiskFullError(OutputError):
    """The filesystem ran out of space (or quota) while writing an output."""


# ------------------------------------------------------------------------------ file systems


def _fs(uri: str):
    """(pyarrow FileSystem, path, is_local) for a local path or a filesystem URI."""
    from pyarrow import fs as pafs

    if "://" in uri and not uri.startswith("file://"):
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for bad URIs
            raise OutputError(f"{uri}: cannot open this filesystem URI ({err})") from None
        return fs, path, False
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path)), True


def _glob_regex(pattern: str) -> re.Pattern:
    """A glob where `*` and `?` stay inside one path component and `**/` spans any depth."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def matches(relpath: str, patterns: Sequence[str]) -> bool:
    """Whether `relpath` (POSIX, relative to the output directory) matches one of `patterns`."""
    return any(_glob_regex(p).match(relpath) for p in patterns)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------ the directory


@dataclass
class OutputDir:
    """One output directory of one kind of job (see the module docstring)."""

    uri: str
    kind: str  # e.g. "hyena-shards", "hyena-scores", "hyena-train-run", "hyena-demo"
    owned: Sequence[str] = ()  # glob patterns of the files this job writes
    legacy_marker: Callable[["OutputDir"], bool] | None = None  # proof of ownership written before markers existed

    def __post_init__(self) -> None:
        self.fs, self.root, self.local = _fs(str(self.uri))

    # -- paths and listing
    def path(self, relpath: str) -> str:
        return posixpath.join(self.root, relpath)

    def exists(self) -> bool:
        from pyarrow import fs as pafs

        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            return False
        if info.type != pafs.FileType.Directory:
            raise OutputError(f"{self.uri}: exists and is not a directory; give a directory path")
        return True

    def check_writable(self) -> None:
        """Before any work: a local directory that does not exist yet must be creatable (its
        nearest existing parent a writable directory). One-line OutputError otherwise."""
        if not self.local or self.exists():
            return
        parent = Path(self.root).parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise OutputError(f"{self.uri}: {parent} is a file, not a directory; choose another output path")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"{self.uri}: cannot create it: {parent} is not writable (read-only?); choose a "
                              "writable output path")

    def entries(self) -> list[str]:
        """Every file below the directory, as sorted relative POSIX paths (no directories)."""
        from pyarrow import fs as pafs

        if not self.exists():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        return sorted(posixpath.relpath(i.path, self.root) for i in infos if i.type != pafs.FileType.Directory)

    def top_level(self) -> list[str]:
        from pyarrow import fs as pafs

        if not self.exists():
            return []
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(pafs.FileSelector(self.root)))

    def is_owned(self, relpath: str) -> bool:
        return matches(relpath, tuple(self.owned) + _ALWAYS_OWNED)

    # -- the marker
    def marker(self) -> dict[str, Any] | None:
        """Our marker's contents, or None when there is none. A foreign kind is an error."""
        from pyarrow import fs as pafs

        where = self.path(MARKER_NAME)
        if self.fs.get_file_info(where).type != pafs.FileType.File:
            return None
        try:
            with self.fs.open_input_stream(where) as f:
                data = json.loads(f.read())
        except (OSError, ValueError) as err:
            raise OutputError(f"{where}: unreadable ownership marker ({err}); if nothing else uses "
                              f"{self.uri}, delete that file and rerun") from None
        if data.get("kind") != self.kind:
            raise OutputError(f"{self.uri}: holds the output of another kind of job ({data.get('kind')!r}, "
                              f"this job writes {self.kind!r}); choose another output directory")
        return data

    def is_ours(self) -> bool:
        return self.marker() is not None or bool(self.legacy_marker and self.legacy_marker(self))

    def claim(self, **info: Any) -> None:
        """Make the directory ours: create it (and its marker) when absent or empty. A directory
        holding anything without our marker is refused, naming what is there."""
        if self.is_ours():
            if self.marker() is None:  # legacy: proven by its manifest; add the marker now
                self._write_marker(info)
            return
        others = [e for e in self.top_level() if e != LOCK_NAME]
        if others:
            raise OutputError(
                f"{self.uri}: not empty ({few(others, 3)}) and not written by a {self.kind} job (no "
                f"{MARKER_NAME}); nothing was changed. Choose a new or empty directory"
            )
        try:
            self.fs.create_dir(self.root, recursive=True)
        except OSError as err:
            raise _write_error(self.uri, err) from None
        self._write_marker(info)

    def _write_marker(self, info: dict[str, Any]) -> None:
        data = {"kind": self.kind, "created": now(), "host": socket.gethostname(), "pid": os.getpid(),
                "owned": list(self.owned), **info}
        write_bytes(self.fs, self.path(MARKER_NAME), (json.dumps(data, indent=1) + "\n").encode())

    # -- clearing
    def foreign(self) -> list[str]:
        """Files in the directory that this job did not write (per `owned`)."""
        return [e for e in self.entries() if not self.is_owned(e)]

    def clear(self, *, first: Sequence[str] = (), what: str = "--overwrite") -> list[str]:
        """Delete every owned file (those in `first` first, e.g. the manifest, so that a crash
        midway never leaves the directory looking complete), keeping the marker and the lock.
        Refuses, deleting nothing, when the directory is not ours or holds other files."""
        if not set(self.entries()) - {MARKER_NAME, LOCK_NAME}:
            return []  # missing, or new with only our lock in it: nothing to delete
        if not self.is_ours():
            raise OutputError(f"{self.uri}: {what} refused: this directory was not written by a {self.kind} "
                              f"job (no {MARKER_NAME}), so nothing in it is deleted; choose another directory")
        others = self.foreign()
        if others:
            raise OutputError(
                f"{self.uri}: {what} refused: it holds files this job did not write ({few(others, 3)}); "
                "nothing was deleted. Move them away or choose another directory"
            )
        keep = {MARKER_NAME, LOCK_NAME}
        doomed = [e for e in self.entries() if e not in keep]
        doomed.sort(key=lambda e: (e not in first, e))
        for rel in doomed:
            self.fs.delete_file(self.path(rel))
        self._remove_empty_dirs()
        return doomed

    def discard(self, *, remove_marker: bool) -> None:
        """After a failed write: delete the owned files (and the marker if the directory was
        not ours before), never anything else. Errors are ignored: the original one matters."""
        keep = {LOCK_NAME} | (set() if remove_marker else {MARKER_NAME})
        with contextlib.suppress(OSError, OutputError):
            for rel in self.entries():
                if rel not in keep and self.is_owned(rel):
                    self.fs.delete_file(self.path(rel))
            self._remove_empty_dirs()

    def _remove_empty_dirs(self) -> None:
        from pyarrow import fs as pafs

        if not self.local:
            return  # object stores have no empty directories to leave behind
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        for d in sorted((i.path for i in infos if i.type == pafs.FileType.Directory), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)

    # -- the lock
    @contextlib.contextmanager
    def lock(self, *, job: str = "", report: Callable[[str], None] | None = None) -> Iterator["OutputDir"]:
        """Hold the directory's lock file for the duration of the block (see the module docstring)."""
        lock = OutputLock(self, job=job, report=report)
        lock.acquire()
        try:
            yield self
        finally:
            lock.release()


# ------------------------------------------------------------------------------ the lock


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _is_running(pid: int, started: float | None) -> bool:
    """True if `pid` runs and (when known) started at `started` (not a reused pid)."""
    current = _process_start(pid)
    if current is None:
        return False
    return started is None or abs(current - float(started)) < 1.0


class OutputLock:
    """The lock file of an OutputDir (use `OutputDir.lock`)."""

    def __init__(self, out: OutputDir, *, job: str = "", report: Callable[[str], None] | None = None):
        self.out, self.job = out, job
        self.report = report or (lambda msg: print(msg, file=sys.stderr))
        self.where = out.path(LOCK_NAME)
        self.held = False
        self.made_dir = False  # the lock created the directory: release removes it if left empty

    def info(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": _process_start(os.getpid()),
                "since": now(), "job": self.job}

    def acquire(self) -> None:
        self.made_dir = not self.out.exists()
        try:
            self.out.fs.create_dir(self.out.root, recursive=True)
        except OSError as err:
            raise _write_error(self.out.uri, err) from None
        payload = (json.dumps(self.info()) + "\n").encode()
        for _ in range(3):
            if self._create(payload):
                self.held = True
                return
            holder = self._read()
            if holder is None:
                continue  # released meanwhile
            if not self._stale(holder):
                raise OutputError(
                    f"{self.out.uri}: in use by another job (pid {holder.get('pid')} on {holder.get('host')}, "
                    f"since {holder.get('since')}: {holder.get('job') or 'unknown job'}); wait for it to end. "
                    f"If that job is gone, delete {self.where}"
                )
            self.report(f"note: {self.out.uri}: removed a stale lock of pid {holder.get('pid')} on "
                        f"{holder.get('host')} (since {holder.get('since')}; that process is gone)")
            with contextlib.suppress(FileNotFoundError, OSError):
                self.out.fs.delete_file(self.where)
        raise OutputError(f"{self.out.uri}: could not take the lock {self.where}; retry")

    def _create(self, payload: bytes) -> bool:
        if self.out.local:
            try:
                fd = os.open(self.where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            except OSError as err:
                raise _write_error(self.out.uri, err) from None
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            return True
        from pyarrow import fs as pafs

        if self.out.fs.get_file_info(self.where).type != pafs.FileType.NotFound:
            return False
        write_bytes(self.out.fs, self.where, payload)  # best effort on object stores
        return True

    def _read(self) -> dict[str, Any] | None:
        try:
            with self.out.fs.open_input_stream(self.where) as f:
                raw = f.read()
        except (FileNotFoundError, OSError):
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"host": "?", "pid": None, "since": "?", "job": "unreadable lock file"}

    def _stale(self, holder: dict[str, Any]) -> bool:
        if holder.get("host") != socket.gethostname() or holder.get("pid") is None:
            return False  # another machine's process cannot be checked from here
        return not _is_running(int(holder["pid"]), holder.get("pid_started"))

    def release(self) -> None:
        if not self.held:
            return
        holder = self._read()
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            with contextlib.suppress(FileNotFoundError, OSError):
                self.out.fs.delete_file(self.where)
        self.held = False
        if self.made_dir and self.out.local:
            with contextlib.suppress(OSError):
                os.rmdir(self.out.root)  # only succeeds when nothing was left in it


# ------------------------------------------------------------------------------ atomic writes


def _write_error(where: str, err: OSError) -> OutputError:
    """An OSError while writing `where` as one line with the fix."""
    text = str(err)
    code = err.errno or _pyarrow_errno(text)  # pyarrow's errors carry the errno in their text only
    reason = os.strerror(code) if code else (err.strerror or text)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "Disk quota" in text:
        return DiskFullError(f"{where}: no space left on the device (or quota exceeded) while writing; "
                             "free some space or choose another output directory, then rerun (it resumes)")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "Permission denied" in text \
            or "Read-only file system" in text:
        return OutputError(f"{where}: cannot write here ({reason}); choose a writable directory")
    if code in (errno.ENOTDIR, errno.EEXIST) or "Not a directory" in text:
        return OutputError(f"{where}: a parent of this path is a file, not a directory; choose another path")
    return OutputError(f"{where}: cannot write ({reason})")


def _pyarrow_errno(text: str) -> int | None:
    found = re.search(r"\[errno (\d+)\]", text)
    return int(found.group(1)) if found else None


def write_error(where: str | Path, err: OSError) -> OutputError:
    """Public form of the OSError -> one-line OutputError conversion (for jobs' own writers)."""
    return _write_error(str(where), err)


def temp_name(final: str | Path) -> str:
    """A hidden temporary name in the same directory as `final` (so a rename is atomic)."""
    final = str(final)
    head, tail = posixpath.split(final) if "://" in final else os.path.split(final)
    name = f".{tail}{TEMP_TAG}{uuid.uuid4().hex[:8]}"
    return posixpath.join(head, name) if "://" in final else os.path.join(head, name)


@contextlib.contextmanager
def atomic_path(final: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success it is fsynced and renamed to `final`,
    on any failure removed. ENOSPC and permission errors become one-line OutputErrors."""
    final = Path(final)
    tmp = Path(temp_name(final))
    try:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            if fsync:
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError as err:
            raise _write_error(str(final), err) from None
    finally:
        with contextlib.suppress(FileNotFoundError, OSError):
            tmp.unlink()


def atomic_write(final: str | Path, data: bytes | str) -> Path:
    """Write `data` to `final` through a temporary file (see `atomic_path`)."""
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    return Path(final)


def write_bytes(fs, path: str, data: bytes) -> None:
    """`atomic_write` for a pyarrow filesystem path (local or object store)."""
    tmp = temp_name(path)
    try:
        try:
            with fs.open_output_stream(tmp) as f:
                f.write(data)
            fs.move(tmp, path)
        except OSError as err:
            raise _write_error(path, err) from None
    finally:
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.delete_file(tmp)


def remove_temporaries(out: OutputDir) -> None:
    """Delete temporary files a killed writer left (ours only: they carry TEMP_TAG)."""
    for rel in out.entries():
        if TEMP_TAG in posixpath.basename(rel):
            with contextlib.suppress(FileNotFoundError, OSError):
                out.fs.delete_file(out.path(rel))


__all__ = [
    "OutputDir", "OutputLock", "OutputError", "DiskFullError", "MARKER_NAME", "LOCK_NAME", "TEMP_TAG",
    "atomic_path", "atomic_write", "write_bytes", "write_error", "temp_name", "remove_temporaries", "matches",
]
