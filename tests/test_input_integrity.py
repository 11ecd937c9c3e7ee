"""Inputs that used to be trusted or crash (issue 11): a stale .fai, a corrupt .gzi, a BED typo
on line 1, binary and truncated FASTA, non-UTF-8 and non-finite job values. Each is one line
naming the file and the fix, before any work; no Ray."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from hyena_platform.data.config import DataConfig
from hyena_platform.data.genome import plan_layout, read_records
from hyena_platform.errors import ConfigError, InputError

from _fasta import write_fasta

REPO = Path(__file__).resolve().parents[1]


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def older(path: Path, than: Path) -> None:
    t = than.stat().st_mtime - 100
    os.utime(path, (t, t))


def test_a_fai_of_an_older_fasta_is_refused_even_when_newer(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"chrA": "ACGT" * 300, "chrB": "GGCA" * 200})
    assert [r.length for r in read_records([str(fa)])] == [1200, 800]  # builds g.fa.fai
    write_fasta(fa, {"chrA": "ACGT" * 350, "chrB": "GGCA" * 200})  # chrA grew by 200 bases
    older(fa, tmp_path / "g.fa.fai")  # the index looks fresh by mtime
    with pytest.raises(InputError) as err:
        read_records([str(fa)])
    assert "g.fa.fai: this index does not describe" in one_line(err)
    assert "record 'chrA' should be followed by the header of 'chrB'" in str(err.value) and "delete" in str(err.value)


def test_a_fai_missing_the_end_of_the_last_record_is_refused(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"chrA": "ACGT" * 300, "chrB": "GGCA" * 200})
    read_records([str(fa)])
    write_fasta(fa, {"chrA": "ACGT" * 300, "chrB": "GGCA" * 230})
    older(fa, tmp_path / "g.fa.fai")
    with pytest.raises(InputError, match=r"the file goes on after the last indexed record 'chrB'"):
        read_records([str(fa)])
    (tmp_path / "g.fa.fai").unlink()  # the advice works: rebuilt, right lengths
    assert [r.length for r in read_records([str(fa)])] == [1200, 920]


def test_a_corrupt_gzi_is_one_line(tmp_path, bundled_genome):
    for suffix in ("", ".fai", ".gzi"):
        shutil.copy(f"{bundled_genome}{suffix}", tmp_path / f"g.fa.gz{suffix}")
    gzi = tmp_path / "g.fa.gz.gzi"
    data = bytearray(gzi.read_bytes())
    data[40:48] = b"\xff" * 8
    gzi.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        read_records([str(tmp_path / "g.fa.gz")])
    assert "g.fa.gz.gzi: corrupt or not the .gzi of" in one_line(err)


def test_binary_and_truncated_fasta_are_one_line_and_leave_no_index(tmp_path, bundled_genome):
    binary = tmp_path / "bin.fa"
    binary.write_bytes(b">chr1\n" + bytes(range(128, 256)) * 20)
    with pytest.raises(InputError) as err:
        read_records([str(binary)])
    assert "not a text FASTA file" in one_line(err)
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(Path(bundled_genome).read_bytes()[:300_000])
    with pytest.raises(InputError) as err:
        read_records([str(cut)])
    text = one_line(err)
    assert "truncated or corrupt bgzip file" in text and f"> {cut}" not in text  # never overwrite the input
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin.fa", "cut.fa.gz"]


@pytest.mark.parametrize("first_line", ["chr1  1O0  700  train", "chr1\t1O0\t700\ttrain"])
def test_a_typo_on_the_first_bed_line_is_an_error_not_a_header(tmp_path, first_line):
    fa = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 500})
    bed = tmp_path / "s.bed"
    bed.write_text(f"{first_line}\nchr1\t800\t1500\ttrain\n")
    with pytest.raises(InputError) as err:
        plan_layout(DataConfig(fasta=[str(fa)], bed=str(bed), valid_chroms=[]))
    assert f"{bed}:1: start and end must be integers" in one_line(err)
    from hyena_platform.score.plan import read_bed_regions

    with pytest.raises(InputError, match=rf"{bed}:1: start and end must be integers"):
        read_bed_regions(str(bed))
    bed.write_text(f"track name=x\nbrowser position chr1:1-100\n# chrom start end\n{first_line.replace('1O0', '100')}\n")
    assert [(s.start, s.end) for s in plan_layout(DataConfig(fasta=[str(fa)], bed=str(bed))).segments] == [(100, 700)]


def test_non_utf8_job_file_and_non_finite_numbers(tmp_path, capsys):
    from hyena_platform.cli import main

    job = tmp_path / "j.yaml"
    job.write_bytes(b"output: /tmp/x\ndata:\n  fasta: [caf\xe9.fa]\n")
    assert main(["shard", str(job)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hyena shard: error: {job}: line 3: byte 0xe9 is not UTF-8 text; save the job file as UTF-8"
    for key in ("train.lr=.nan", "scaling.cpus_per_worker=.nan", "train.lr=.inf"):
        assert main(["pretrain", str(REPO / "jobs" / "pretrain_local.yaml"), "--set", key]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{key.split('=')[0]} must be a finite number" in err and "\n" not in err
    assert main(["score", str(REPO / "jobs" / "score_local.yaml"), "--set", "compute.cpus_per_replica=nan"]) == 2
    assert "compute.cpus_per_replica must be a finite number" in capsys.readouterr().err


def test_output_under_a_file_is_one_line_before_any_work(tmp_path, capsys):
    from hyena_platform.cli import main

    (tmp_path / "file").write_text("x")
    assert main(["shard", str(REPO / "jobs" / "shard.yaml"), "--set", f"output={tmp_path}/file/out"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hyena shard: error: {tmp_path}/file/out: {tmp_path}/file is a file, not a directory; choose another output path"
    # A read-only parent: tests/test_outputs.py (a subprocess that meets the permission bits, root included).


def test_plain_gzip_is_scored_without_touching_the_input(tmp_path):
    """Once, the error's advice was `gunzip -c X.gz | bgzip > X.gz` (truncating the genome);
    now plain gzip is read through a bgzip copy in the cache (hyena_platform.data.gzip_fasta)."""
    gz = tmp_path / "g.fa.gz"
    with gzip.open(gz, "wt") as f:
        f.write(">chr1\nACGT\n")
    before = gz.read_bytes()
    from hyena_platform.score.plan import resolve_targets
    from hyena_platform.score.config import TargetSection

    regions = resolve_targets(DataConfig(fasta=[str(gz)], index_cache=str(tmp_path / "cache")), TargetSection())
    assert [(r.chrom, r.end, r.source) for r in regions] == [("chr1", 4, str(gz))]
    assert gz.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["cache", "g.fa.gz"]


def test_bad_tracking_uri_scheme_and_ray_addresses_are_one_line(tmp_path, capsys):
    from hyena_platform.cli import main

    cases = [
        (["pretrain", str(REPO / "jobs" / "pretrain_local.yaml"), "--set", "tracking.uri=foo://bar"],
         "tracking.uri='foo://bar': unsupported scheme 'foo'"),
        (["score", str(REPO / "jobs" / "score_local.yaml"), "--set", "tracking.uri=foo://bar"],
         "tracking.uri='foo://bar': unsupported scheme 'foo'"),
        (["pretrain", str(REPO / "jobs" / "pretrain_local.yaml"), "--set", "scaling.address=ftp://x:1"],
         "scaling.address='ftp://x:1' is not a Ray address"),
        (["shard", str(REPO / "jobs" / "shard.yaml"), "--set", "address=ftp://x:1", "--set", f"output={tmp_path}/o"],
         "address='ftp://x:1' is not a Ray address"),
        (["score", str(REPO / "jobs" / "score_local.yaml"), "--set", "address=head node:6379"],
         "is not a Ray address"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    job = tmp_path / "pretrain_local.yaml"  # submit wants the job under its working_dir (the cwd)
    shutil.copy(REPO / "jobs" / "pretrain_local.yaml", job)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for address in ("ftp://x:1", "http://[bad"):
            assert main(["submit", str(job), "--address", address, "--no-wait"]) != 0
            err = capsys.readouterr().err.strip()
            assert f"--address {address}: not a Ray job server address" in err and "\n" not in err
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "o").exists()


def test_a_corrupt_shard_file_is_one_line(tmp_path):
    """A shard directory whose Parquet file was damaged after writing (no Ray: the manifest check)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from hyena_platform.data.pipeline import MANIFEST_NAME, read_manifest

    out = tmp_path / "shards"
    out.mkdir()
    pq.write_table(pa.table({"chrom": ["a", "a"], "start": [0, 4]}), out / "hyena-shard_x_000000.parquet")
    layout = {"chunk_size": 4, "keep_soft_mask": False, "records": [{"name": "a", "length": 8, "source": "g.fa"}],
              "segments": [{"chrom": "a", "start": 0, "end": 8, "split": "train"}]}
    (out / MANIFEST_NAME).write_text(json.dumps({
        "format": "hyena-shards", "version": 1, "tokenizer": "hyenadna-char12", "created": "x", "content_hash": "h",
        "num_chunks": 2, "layout": layout, "files": ["hyena-shard_x_000000.parquet"], "data_config": {}}))
    assert read_manifest(str(out)).num_chunks == 2
    data = (out / "hyena-shard_x_000000.parquet").read_bytes()
    (out / "hyena-shard_x_000000.parquet").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(InputError) as err:
        read_manifest(str(out))
    assert "hyena-shard_x_000000.parquet: corrupt shard file" in one_line(err)
