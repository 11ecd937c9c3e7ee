"""Plain-gzip FASTA (issue 11): read through a bgzip copy made once in the cache, never by
rewriting the user's file. A real genome (the bundled V. cholerae, recompressed with plain
gzip): the same chunks and the same shard content hash as its bgzip original; the copy is
reused, remade after an in-place edit; a truncated gzip is one line."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hyena_platform.data import fasta
from hyena_platform.data.chunks import read_chunk
from hyena_platform.data.config import DataConfig
from hyena_platform.data.genome import plan_layout
from hyena_platform.errors import InputError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plain_gzip(bundled_genome, tmp_path_factory) -> Path:
    """The bundled genome as `gzip` writes it: one gzip member, no BGZF blocks."""
    path = tmp_path_factory.mktemp("gz") / "vc.fa.gz"
    with gzip.open(bundled_genome, "rb") as src, gzip.open(path, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst)
    return path


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_plain_gzip_reads_like_its_bgzip_original_and_is_never_written(plain_gzip, bundled_genome, tmp_path):
    before = snapshot(plain_gzip)
    cache = tmp_path / "cache"
    assert fasta.fasta_compression(str(plain_gzip)) == "gzip"
    gz = plan_layout(DataConfig(fasta=[str(plain_gzip)], chunk_size=200_000, index_cache=str(cache)))
    bgz = plan_layout(DataConfig(fasta=[str(bundled_genome)], chunk_size=200_000))
    assert [(r.name, r.length) for r in gz.records] == [(r.name, r.length) for r in bgz.records]
    assert {r.source for r in gz.records} == {str(plain_gzip)}  # the user's file, not the copy, is named
    for a, b in zip(gz.chunk_specs(), bgz.chunk_specs()):
        np.testing.assert_array_equal(read_chunk(a, index_cache=str(cache))["tokens"], read_chunk(b)["tokens"])
    assert snapshot(plain_gzip) == before and sorted(os.listdir(plain_gzip.parent)) == ["vc.fa.gz"]
    (copy,) = cache.rglob("vc.fa.bgz")
    meta = json.loads((copy.parent / "source.json").read_text())
    assert meta["sha256"] == fasta.content_digest(str(plain_gzip)).split(":")[1]
    assert fasta.fasta_compression(str(copy)) == "bgzip"
    made = copy.stat().st_mtime_ns
    fasta._OPEN.clear()
    plan_layout(DataConfig(fasta=[str(plain_gzip)], index_cache=str(cache)))
    assert copy.stat().st_mtime_ns == made  # made once, then reused


def test_an_edited_gzip_gets_a_new_copy(tmp_path):
    path = tmp_path / "g.fa.gz"
    cache = tmp_path / "cache"
    with gzip.open(path, "wt") as f:
        f.write(">a\n" + "ACGT" * 100 + "\n")
    spec = plan_layout(DataConfig(fasta=[str(path)], index_cache=str(cache))).chunk_specs()[0]
    assert read_chunk(spec, index_cache=str(cache))["tokens"][:4].tolist() == [7, 8, 9, 10]  # A C G T
    with gzip.open(path, "wt") as f:  # same name, new bases
        f.write(">a\n" + "TTTT" * 100 + "\n")
    assert read_chunk(spec, index_cache=str(cache))["tokens"][:4].tolist() == [10] * 4
    assert len(list(cache.rglob("*.bgz"))) == 1  # replaced, not accumulated


def test_a_truncated_gzip_is_one_line_naming_it(tmp_path):
    path = tmp_path / "cut.fa.gz"
    data = gzip.compress((">a\n" + "ACGT" * 20_000 + "\n").encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        plan_layout(DataConfig(fasta=[str(path)], index_cache=str(tmp_path / "cache")))
    text = str(err.value)
    assert text.startswith(f"{path}: truncated or corrupt gzip file") and "\n" not in text
    assert not list((tmp_path / "cache").rglob("*.bgz"))  # no partial copy


@pytest.mark.integration
def test_hyena_shard_of_a_plain_gzip_fasta(ray_cluster, plain_gzip, shard_reference, tmp_path, capsys):
    """Sharding (and pretraining, which loads its chunks through the same reader) of plain gzip."""
    from hyena_platform.cli import main
    from hyena_platform.data.pipeline import read_manifest

    before = snapshot(plain_gzip)
    out = tmp_path / "shards"
    assert main(["shard", str(REPO / "jobs" / "shard.yaml"), "--set", f"output={out}",
                 "--set", f"data.fasta=[{plain_gzip}]", "--set", f"data.index_cache={tmp_path / 'cache'}"]) == 0
    assert read_manifest(str(out)).content_hash == shard_reference
    assert snapshot(plain_gzip) == before


@pytest.fixture(scope="module")
def shard_reference(ray_cluster, tmp_path_factory) -> str:
    """The content hash of the bundled (bgzip) genome's shards, from jobs/shard.yaml."""
    from hyena_platform.cli import main
    from hyena_platform.data.pipeline import read_manifest

    out = tmp_path_factory.mktemp("ref") / "shards"
    assert main(["shard", str(REPO / "jobs" / "shard.yaml"), "--set", f"output={out}"]) == 0
    return read_manifest(str(out)).content_hash
