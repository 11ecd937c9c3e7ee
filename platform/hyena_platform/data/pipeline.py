"""Ray Data wiring: a FASTA or a shard directory -> a Dataset of chunks; chunks -> Parquet shards.

    chunks = load_chunks(cfg.data)                      # GenomeChunks: Arrow blocks + their layout
    manifest = write_shards(cfg.data, "s3://bucket/vc") # `hyena shard`: Parquet + _manifest.json

A chunk row: ``chrom`` (string), ``start`` (int64, 0-based), ``split`` (string),
``segment_start`` (int64: start of the contiguous interval the chunk belongs to; windows never
cross one), ``tokens`` (binary: official uint8 ids), and ``soft_mask`` (binary, one 0/1 byte per
base) when ``keep_soft_mask``. Shard files also hold ``sha256`` (hex digest of ``tokens``).

A shard directory is complete only when ``_manifest.json`` exists: it is written last, under a
temporary name then renamed, after the files were read back and checked against the plan. A
failed write removes what it wrote.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import posixpath
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hyena_platform.data.config import DataConfig
from hyena_platform.data.chunks import chunks_table
from hyena_platform.data.genome import ChunkSpec, GenomeLayout, plan_layout
from hyena_platform.errors import InputError, user_errors_from_ray

if TYPE_CHECKING:
    import ray.data

MANIFEST_NAME = "_manifest.json"
FORMAT = "hyena-shards"
FORMAT_VERSION = 1
TOKENIZER = "hyenadna-char12"  # official ids: [CLS]=0 ... [UNK]=6 A=7 C=8 G=9 T=10 N=11
CHUNK_COLUMNS = ("chrom", "start", "split", "segment_start", "tokens")
TARGET_BLOCK_BYTES = 32 << 20  # uncompressed tokens per read task / Parquet file



@dataclass(frozen=True)
class GenomeChunks:
    """A genome's chunk rows as a Ray Dataset, with the layout they were read with.

    The layout travels beside the Dataset, explicitly: window cutting needs it (split sizes,
    segment lengths, chunk size) and any Dataset transformation would lose an attribute or a
    registry entry keyed on the Dataset object.
    """

    dataset: "ray.data.Dataset"
    layout: GenomeLayout


@dataclass(frozen=True)
class ShardManifest:
    """The contents of ``_manifest.json``."""

    uri: str  # the shard directory, as given
    layout: GenomeLayout
    files: tuple[str, ...]  # Parquet file names, relative to the directory
    num_chunks: int
    content_hash: str  # "sha256:<hex>" over every chunk's coordinates, split and token digest
    created: str
    data_config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "tokenizer": TOKENIZER,
            "created": self.created,
            "content_hash": self.content_hash,
            "num_chunks": self.num_chunks,
            "split_bases": self.layout.split_bases(),
            "chromosomes": [
                {"name": r.name, "length": r.length, "source": r.source, "splits": per}
                for r, per in zip(self.layout.records, self.layout.chrom_splits().values())
            ],
            "layout": self.layout.to_dict(),
            "files": list(self.files),
            "data_config": self.data_config,
        }

    def file_paths(self) -> list[str]:
        """File paths for the filesystem that `filesystem(self.uri)` returns."""
        _, root = filesystem(self.uri)
        return [posixpath.join(root, f) for f in self.files]


def genome_layout(cfg: DataConfig) -> GenomeLayout:
    """The layout of `cfg`'s genome, from its FASTA indexes or its shard manifest; no Ray."""
    return read_manifest(cfg.shards).layout if cfg.shards is not None else plan_layout(cfg)


# --------------------------------------------------------------------------------------------
# Chunks


def load_chunks(cfg: DataConfig, *, num_cpus: float | None = None,
                materialize: bool = True) -> GenomeChunks:
    """The chunk rows of cfg's FASTA or shard directory, with their layout.

    Materialised by default (held in the object store, spilled to disk if it must): the genome
    is tokenised or read once for all epochs and stages, and a bad character fails here, before
    training starts. `materialize=False` keeps it lazy (re-read every time it is iterated).
    """
    import ray.data

    if cfg.shards is not None:
        manifest = read_manifest(cfg.shards)
        fs, _ = filesystem(cfg.shards)
        columns = list(CHUNK_COLUMNS) + (["soft_mask"] if manifest.layout.keep_soft_mask else [])
        ds = ray.data.read_parquet(manifest.file_paths(), filesystem=fs,
                                   ray_remote_args=_cpus(num_cpus)).select_columns(columns)
        layout = manifest.layout
    else:
        layout = plan_layout(cfg)
        ds = _chunk_dataset(layout, index_cache=cfg.index_cache, digest=False, num_cpus=num_cpus)
    if materialize:
        ds = _run(ds.materialize)
    return GenomeChunks(ds, layout)


def _cpus(num_cpus: float | None) -> dict[str, Any]:
    return {} if num_cpus is None else {"num_cpus": num_cpus}


def _chunk_dataset(layout: GenomeLayout, *, index_cache: str | None, digest: bool,
                   num_cpus: float | None) -> "ray.data.Dataset":
    import ray
    import ray.data

    specs = layout.chunk_specs()
    index_cache = os.path.abspath(index_cache) if index_cache else None  # workers' cwd may differ
    per_task = max(1, TARGET_BLOCK_BYTES // layout.chunk_size)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1)
    # At least two tasks per CPU when there is enough data, at most TARGET_BLOCK_BYTES each.
    per_task = max(1, min(per_task, math.ceil(len(specs) / (2 * cpus))))
    num_blocks = math.ceil(len(specs) / per_task)
    items = [asdict(s) for s in specs]
    ds = ray.data.from_items(items, override_num_blocks=num_blocks).map_batches(
        _read_chunks_batch, batch_size=None, batch_format="pyarrow",
        fn_kwargs={"keep_soft_mask": layout.keep_soft_mask, "index_cache": index_cache, "digest": digest},
        **_cpus(num_cpus),
    )
    # A bad FASTA character raises InputError in a task: let it reach the driver as itself
    # (RayTaskError(InputError) with .cause), not as a generic UserCodeException.
    ds.context.raise_original_map_exception = True
    return ds


def _read_chunks_batch(batch, *, keep_soft_mask: bool, index_cache: str | None, digest: bool):
    specs = [ChunkSpec(**row) for row in batch.to_pylist()]
    return chunks_table(specs, keep_soft_mask=keep_soft_mask, index_cache=index_cache, digest=digest)


def _run(fn, *args, **kwargs):
    """Call a Ray action; a user error raised inside a task comes back as itself, one line."""
    with user_errors_from_ray():
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Shards


def filesystem(uri: str):
    """(pyarrow FileSystem, path) for a local path or any URI pyarrow supports (s3://, gs://)."""
    from pyarrow import fs as pafs

    if "://" in uri:
        try:
            return pafs.FileSystem.from_uri(uri)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for bad URIs
            raise InputError(f"{uri}: cannot open this filesystem URI ({err})") from None
    return pafs.LocalFileSystem(), os.path.abspath(uri)


SHARD_FILE_PREFIX = "hyena-shard"  # Parquet files are hyena-shard_<write uuid>_<task>.parquet
SHARD_OWNED = (MANIFEST_NAME, f"{SHARD_FILE_PREFIX}_*.parquet")


def shard_output(out_dir: str):
    """The shard directory as an OutputDir: it owns its manifest and hyena-shard_*.parquet
    files (and, for directories written before markers, the files its manifest lists)."""
    from hyena_platform.outputs import OutputDir

    out = OutputDir(out_dir, kind=FORMAT, owned=SHARD_OWNED, legacy_marker=_has_shard_manifest)
    listed = _manifest_files(out)
    if listed:
        out.owned = tuple(out.owned) + tuple(listed)
    return out


def _manifest_files(out) -> list[str]:
    try:
        with out.fs.open_input_stream(out.path(MANIFEST_NAME)) as f:
            data = json.loads(f.read())
        return [str(x) for x in data.get("files", [])] if data.get("format") == FORMAT else []
    except (OSError, ValueError, AttributeError):
        return []


def _has_shard_manifest(out) -> bool:
    try:
        with out.fs.open_input_stream(out.path(MANIFEST_NAME)) as f:
            return json.loads(f.read()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_shards(cfg: DataConfig, out_dir: str, *, overwrite: bool = False,
                 num_cpus: float | None = None, compression: str = "zstd") -> ShardManifest:
    """Tokenise cfg's FASTA into Parquet files under `out_dir` and write its manifest last.

    `compression` is the Parquet codec: zstd (level 1) stores the ids in ~30% of their size;
    "none" writes ~2x faster and 3.3x larger files. The directory is locked while writing; an
    existing one is replaced only when it is ours (hyena_platform.outputs) and `overwrite`, or
    an interrupted write of ours. A failed write removes what it wrote, nothing else.
    """
    if cfg.shards is not None:
        raise InputError(f"data.shards is set ({cfg.shards}): write_shards needs a FASTA source")
    layout = plan_layout(cfg)  # every input check before any work
    out = shard_output(out_dir)
    had_entries = bool(out.top_level())
    with out.lock(job=f"hyena shard -> {out_dir}"):
        check_output(out_dir, overwrite=overwrite)  # nothing is deleted unless this passes
        try:
            if out.is_ours():
                out.clear(first=[MANIFEST_NAME], what="--overwrite")
            out.claim(job="hyena shard")
            return _write_shard_files(cfg, layout, out, out_dir, num_cpus=num_cpus, compression=compression)
        except BaseException:
            out.discard(remove_marker=not had_entries)  # the directory goes too if the lock made it
            raise


def _write_shard_files(cfg: DataConfig, layout: GenomeLayout, out, out_dir: str, *,
                       num_cpus: float | None, compression: str) -> ShardManifest:
    from pyarrow import fs as pafs
    from ray.data.datasource import FilenameProvider

    fs, root = out.fs, out.root
    ds = _chunk_dataset(layout, index_cache=cfg.index_cache, digest=True, num_cpus=num_cpus)
    _run(
        ds.write_parquet, root, filesystem=fs, try_create_dir=True,
        filename_provider=FilenameProvider(dataset_uuid=SHARD_FILE_PREFIX, file_format="parquet"),
        compression=compression, compression_level=1 if compression == "zstd" else None,
        use_dictionary=["chrom", "split"],
        write_statistics=["chrom", "start", "split", "segment_start"],
        ray_remote_args=_cpus(num_cpus),
    )
    files = sorted(
        posixpath.relpath(info.path, root)
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True))
        if info.type == pafs.FileType.File and info.path.endswith(".parquet")
    )
    digests = _read_digests(fs, root, files)
    content_hash = _content_hash(layout.chunk_specs(), digests, out_dir)
    from hyena_platform.config import to_dict

    manifest = ShardManifest(
        uri=out_dir, layout=layout, files=tuple(files), num_chunks=len(digests),
        content_hash=content_hash,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        data_config=to_dict(cfg),
    )
    _write_manifest(fs, root, manifest)
    return manifest


def check_output(out_dir: str, *, overwrite: bool = False) -> bool:
    """Before any work: raise unless `out_dir` is absent, empty, an interrupted shard write of
    ours, or complete shards of ours and `overwrite`. Files we did not write are never
    replaced (the error names them). True if the directory exists."""
    from hyena_platform.outputs import LOCK_NAME

    out = shard_output(out_dir)
    if not out.exists():
        out.check_writable()
        return False
    entries = [e for e in out.top_level() if e != LOCK_NAME]
    if not entries:
        return True
    if not out.is_ours():
        raise InputError(f"{out_dir}: is not empty ({len(entries)} entries: {', '.join(entries[:3])}) and was "
                         f"not written by `hyena shard` (no {MANIFEST_NAME} or marker); nothing was changed. "
                         "Choose a new or empty output directory")
    complete = MANIFEST_NAME in entries
    if complete and not overwrite:
        raise InputError(f"{out_dir}: holds shards already; choose another output or set overwrite (--overwrite)")
    foreign = out.foreign()
    if foreign:
        raise InputError(f"{out_dir}: holds files `hyena shard` did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); nothing was deleted. Move them away or "
                         "choose another output directory")
    return True


def _read_digests(fs, root: str, files: list[str]) -> dict[tuple[str, int], tuple[str, str]]:
    import pyarrow.parquet as pq

    out: dict[tuple[str, int], tuple[str, str]] = {}
    for name in files:
        table = pq.read_table(posixpath.join(root, name), filesystem=fs,
                              columns=["chrom", "start", "split", "sha256"])
        for chrom, start, split, digest in zip(*(table[c].to_pylist() for c in table.column_names)):
            if (chrom, start) in out:
                raise RuntimeError(f"chunk {chrom}:{start} written twice under {root}")
            out[(chrom, start)] = (split, digest)
    return out


def _content_hash(specs: list[ChunkSpec], digests: dict[tuple[str, int], tuple[str, str]], uri: str) -> str:
    expected = {(s.chrom, s.start) for s in specs}
    if expected != set(digests):
        missing = sorted(expected - set(digests))[:3]
        extra = sorted(set(digests) - expected)[:3]
        raise RuntimeError(f"{uri}: written chunks differ from the plan (missing {missing}, extra {extra})")
    h = hashlib.sha256()
    for s in specs:  # plan order: records in FASTA order, then coordinates
        split, digest = digests[(s.chrom, s.start)]
        if split != s.split:
            raise RuntimeError(f"{uri}: chunk {s.chrom}:{s.start} written as {split}, planned {s.split}")
        h.update(f"{s.chrom}\t{s.start}\t{s.end}\t{s.split}\t{digest}\n".encode())
    return "sha256:" + h.hexdigest()


def _write_manifest(fs, root: str, manifest: ShardManifest) -> None:
    from hyena_platform.outputs import write_bytes

    write_bytes(fs, posixpath.join(root, MANIFEST_NAME), (json.dumps(manifest.to_dict(), indent=1) + "\n").encode())


def read_manifest(path: str) -> ShardManifest:
    """Read and check ``<path>/_manifest.json``; a directory without one is incomplete."""
    from pyarrow import fs as pafs

    fs, root = filesystem(path)
    where = posixpath.join(root, MANIFEST_NAME)
    info = fs.get_file_info(where)
    if info.type != pafs.FileType.File:
        if fs.get_file_info(root).type == pafs.FileType.NotFound:
            raise InputError(f"{path}: shard directory not found")
        raise InputError(f"{path}: no {MANIFEST_NAME}, so not a complete shard directory (an "
                         "interrupted `hyena shard`?); write it again with `hyena shard`")
    with fs.open_input_stream(where) as f:
        raw = f.read()
    try:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}; this build reads version {FORMAT_VERSION}")
        if data.get("tokenizer") != TOKENIZER:
            raise ValueError(f"tokenizer {data.get('tokenizer')!r}, expected {TOKENIZER!r}")
        manifest = ShardManifest(
            uri=path, layout=GenomeLayout.from_dict(data["layout"]), files=tuple(data["files"]),
            num_chunks=int(data["num_chunks"]), content_hash=str(data["content_hash"]),
            created=str(data["created"]), data_config=dict(data.get("data_config", {})),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}/{MANIFEST_NAME}: not a valid shard manifest ({err})") from None
    missing = [f for f in manifest.files
               if fs.get_file_info(posixpath.join(root, f)).type != pafs.FileType.File]
    if missing:
        raise InputError(f"{path}: {len(missing)} shard file(s) named in {MANIFEST_NAME} are "
                         f"missing (first: {missing[0]}); write the shards again")
    _check_shard_files(fs, root, manifest, path)
    return manifest


def _check_shard_files(fs, root: str, manifest: ShardManifest, path: str) -> None:
    """Every shard file's Parquet footer reads and the row counts add up to the manifest's: a
    corrupt or truncated file is one line here, not a Ray task traceback mid-training."""
    import pyarrow.parquet as pq

    rows = 0
    for name in manifest.files:
        try:
            with fs.open_input_file(posixpath.join(root, name)) as f:
                rows += pq.ParquetFile(f).metadata.num_rows
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"{path}/{name}: corrupt shard file ({' '.join(str(err).split())[:120]}); write "
                             "the shards again (hyena shard --overwrite)") from None
    if rows != manifest.num_chunks:
        raise InputError(f"{path}: the shard files hold {rows} chunks, {MANIFEST_NAME} lists {manifest.num_chunks}; "
                         "write the shards again (hyena shard --overwrite)")
