"""Ray Data pipeline on a real local Ray: FASTA -> chunks, shards and their manifest, round
trips, BED splits, soft masks, the `hyena shard` command, and bad input that must leave no
shard directory looking complete."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hyena_platform.data import pipeline
from hyena_platform.data.config import DataConfig
from hyena_platform.data.chunks import column_arrays
from hyena_platform.data.fasta import tokenize_codes
from hyena_platform.data.genome import plan_layout
from hyena_platform.data.pipeline import MANIFEST_NAME, load_chunks, read_manifest, write_shards
from hyena_platform.data.training_windows import stage_windows
from hyena_platform.errors import InputError

from _fasta import write_fasta

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
LENGTHS = {"chrI": 2_961_149, "chrII": 1_072_315}


@pytest.fixture(scope="module")
def reference(bundled_bases) -> dict[str, bytes]:
    return bundled_bases


def ref_ids(reference, chrom: str, start: int = 0, end: int | None = None) -> np.ndarray:
    codes = np.frombuffer(reference[chrom], np.uint8)[start:end]
    return tokenize_codes(codes, source="ref", chrom=chrom, start=start)


def rows(chunks) -> dict[tuple[str, int], dict]:
    """Chunk rows keyed by (chrom, start), tokens (and soft_mask) as numpy."""
    out = {}
    for batch in chunks.dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        tokens = column_arrays(batch["tokens"])
        masks = column_arrays(batch["soft_mask"]) if "soft_mask" in batch.column_names else [None] * len(tokens)
        meta = batch.drop_columns([c for c in ("tokens", "soft_mask") if c in batch.column_names])
        for i, row in enumerate(meta.to_pylist()):
            out[(row["chrom"], row["start"])] = {**row, "tokens": tokens[i].copy(), "soft_mask": masks[i]}
    return out


@pytest.fixture(scope="module")
def fasta_chunks(bundled_chunks):
    return bundled_chunks


@pytest.fixture(scope="module")
def shard_dir(ray_cluster, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "vc"
    write_shards(DataConfig(), str(out))
    return out


def expected_content_hash(reference, layout) -> str:
    h = hashlib.sha256()
    for s in layout.chunk_specs():
        digest = hashlib.sha256(ref_ids(reference, s.chrom, s.start, s.end).tobytes()).hexdigest()
        h.update(f"{s.chrom}\t{s.start}\t{s.end}\t{s.split}\t{digest}\n".encode())
    return "sha256:" + h.hexdigest()


# ------------------------------------------------------------------------------- FASTA and shards


def test_fasta_chunks_cover_the_genome_in_official_ids(fasta_chunks, reference):
    got = rows(fasta_chunks)
    assert sorted(got) == [("chrI", 0), ("chrI", 1 << 20), ("chrI", 2 << 20), ("chrII", 0), ("chrII", 1 << 20)]
    assert {k: r["split"] for k, r in got.items()} == {
        ("chrI", 0): "train", ("chrI", 1 << 20): "train", ("chrI", 2 << 20): "train",
        ("chrII", 0): "valid", ("chrII", 1 << 20): "valid"}
    for chrom in LENGTHS:
        joined = np.concatenate([got[k]["tokens"] for k in sorted(got) if k[0] == chrom])
        np.testing.assert_array_equal(joined, ref_ids(reference, chrom))
    schema = fasta_chunks.dataset.schema()
    assert dict(zip(schema.names, map(str, schema.types))) == {
        "chrom": "string", "start": "int64", "split": "string", "segment_start": "int64", "tokens": "binary"}


def test_shard_round_trip(shard_dir, fasta_chunks, reference):
    manifest = read_manifest(str(shard_dir))
    data = json.loads((shard_dir / MANIFEST_NAME).read_text())
    assert data["split_bases"] == {"train": LENGTHS["chrI"], "valid": LENGTHS["chrII"]}
    assert [(c["name"], c["length"], c["splits"]) for c in data["chromosomes"]] == [
        ("chrI", LENGTHS["chrI"], {"train": LENGTHS["chrI"]}),
        ("chrII", LENGTHS["chrII"], {"valid": LENGTHS["chrII"]})]
    assert manifest.num_chunks == 5 and manifest.layout == plan_layout(DataConfig())
    assert manifest.content_hash == expected_content_hash(reference, manifest.layout)
    assert sorted(p.name for p in shard_dir.iterdir()) == sorted([*manifest.files, MANIFEST_NAME, ".hyena-output.json"])  # no temp files, no lock

    from_shards = load_chunks(DataConfig(shards=str(shard_dir)))
    a, b = rows(fasta_chunks), rows(from_shards)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key]["tokens"], b[key]["tokens"])
        assert a[key]["split"] == b[key]["split"]
    kw = dict(split="train", length=4096, seed=5, epoch=1, reverse_complement=True, coordinates=True)
    wins = [stage_windows(c, **kw).take_all() for c in (fasta_chunks, from_shards)]
    key = lambda r: (r["chrom"], r["start"])  # noqa: E731
    sa, sb = sorted(wins[0], key=key), sorted(wins[1], key=key)
    assert len(sa) == len(sb) > 700
    for x, y in zip(sa[::50], sb[::50]):
        assert key(x) == key(y) and x["strand"] == y["strand"]
        np.testing.assert_array_equal(x["input_ids"], y["input_ids"])


def test_bed_splits_through_the_pipeline(ray_cluster, tmp_path, reference):
    bed = tmp_path / "split.bed"
    bed.write_text("chrI\t100000\t600000\ttrain\nchrII\t0\t200000\tvalid\nchrII\t300000\t450000\ttest\n")
    chunks = load_chunks(DataConfig(bed=str(bed), chunk_size=128_000))
    got = rows(chunks)
    assert {(k, r["split"], r["segment_start"]) for k, r in got.items()} == {
        (("chrI", s), "train", 100000) for s in range(100000, 600000, 128000)} | {
        (("chrII", 0), "valid", 0), (("chrII", 128000), "valid", 0), (("chrII", 300000), "test", 300000),
        (("chrII", 428000), "test", 300000)}
    for (chrom, start), r in got.items():
        np.testing.assert_array_equal(r["tokens"], ref_ids(reference, chrom, start, start + r["tokens"].size))
    valid = stage_windows(chunks, split="test", length=1000, seed=0, epoch=0, coordinates=True).take_all()
    assert valid and all(r["chrom"] == "chrII" and 300000 <= r["start"] <= 450000 - 1001 for r in valid)


def test_soft_mask_column_survives_sharding(ray_cluster, tmp_path, reference):
    region = reference["chrII"][:3000].decode()
    masked = region[:1000] + region[1000:1400].lower() + region[1400:]
    fasta = write_fasta(tmp_path / "m.fa", {"chrA": masked, "chrB": region})
    cfg = DataConfig(fasta=[str(fasta)], keep_soft_mask=True, chunk_size=1024, valid_chroms=["chrB"])
    manifest = write_shards(cfg, str(tmp_path / "out"))
    assert manifest.layout.keep_soft_mask
    got = rows(load_chunks(DataConfig(shards=str(tmp_path / "out"))))
    mask = np.concatenate([got[("chrA", s)]["soft_mask"] for s in (0, 1024, 2048)])
    tokens = np.concatenate([got[("chrA", s)]["tokens"] for s in (0, 1024, 2048)])
    np.testing.assert_array_equal(np.flatnonzero(mask), np.arange(1000, 1400))
    np.testing.assert_array_equal(tokens, ref_ids(reference, "chrII", 0, 3000))
    assert not np.concatenate([got[("chrB", s)]["soft_mask"] for s in (0, 1024, 2048)]).any()


def test_hyena_shard_command_plain_fasta_and_file_uri(ray_cluster, shard_dir, bundled_genome, tmp_path, capsys):
    from hyena_platform.cli import main

    plain = tmp_path / "vc.fa"
    with gzip.open(bundled_genome, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    out = f"file://{tmp_path}/cli-shards"
    assert main(["shard", str(REPO / "jobs" / "shard.yaml"), "--set", f"output={out}",
                 "--set", f"data.fasta=[{plain}]"]) == 0
    printed = capsys.readouterr().out
    manifest = read_manifest(out)
    # plain FASTA, bgzip FASTA: the same genome, the same content hash
    assert manifest.content_hash == read_manifest(str(shard_dir)).content_hash
    assert manifest.content_hash in printed and "Mb/s" in printed
    # a second run refuses to overwrite, before starting any work
    assert main(["shard", str(REPO / "jobs" / "shard.yaml"), "--set", f"output={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hyena shard: error: ") and "holds shards already" in err and "\n" not in err


# ------------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_fasta(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    seqs = {f"chr{i}": "".join(rng.choice(list("ACGT"), 20_000)) for i in range(1, 4)}
    s = seqs["chr3"]
    seqs["chr3"] = s[:15_000] + "J" + s[15_001:]
    return write_fasta(tmp_path / "bad.fa", seqs)


def test_bad_character_is_one_clear_error_and_leaves_no_shards(ray_cluster, bad_fasta, tmp_path):
    cfg = DataConfig(fasta=[str(bad_fasta)], chunk_size=2000)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        write_shards(cfg, str(out))
    message = str(err.value)
    assert type(err.value) is InputError
    assert f"{bad_fasta}, record 'chr3': character 'J' at position 15000 is not a nucleotide" in message
    assert "Traceback" not in message and "\n" not in message
    assert not out.exists()
    pre = tmp_path / "premade"
    pre.mkdir()
    with pytest.raises(InputError):
        write_shards(cfg, str(pre))
    assert pre.is_dir() and not any(pre.iterdir())  # the user's directory stays, emptied
    with pytest.raises(InputError, match="'J' at position 15000"):
        load_chunks(cfg)


def test_input_errors_come_before_any_work(ray_cluster, tmp_path):
    gz = tmp_path / "g.fa.gz"
    bases = np.random.default_rng(0).choice(list(b"ACGT"), 40_000).astype(np.uint8).tobytes()
    gz.write_bytes(gzip.compress(b">chr1\n" + bases + b"\n")[:2000])  # cut short
    for cfg, message in [
        (DataConfig(fasta=[str(gz)], index_cache=str(tmp_path / "cache")), "truncated or corrupt gzip file"),
        (DataConfig(fasta=[str(tmp_path / "nope.fa")]), "FASTA file not found"),
        (DataConfig(valid_chroms=["chrIII"]), "matches no FASTA record"),
    ]:
        with pytest.raises(InputError, match=message):
            write_shards(cfg, str(tmp_path / "out"))
        assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="data.shards is set"):
        write_shards(DataConfig(shards=str(tmp_path)), str(tmp_path / "out"))


def test_existing_output_and_overwrite(ray_cluster, tmp_path):
    fasta = write_fasta(tmp_path / "t.fa", {"a": "ACGT" * 500, "b": "TTGCA" * 300})
    cfg = DataConfig(fasta=[str(fasta)], chunk_size=512)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "stray.parquet").write_bytes(b"x")
    for overwrite in (False, True):  # not ours: refused either way, nothing deleted
        with pytest.raises(InputError, match=r"is not empty \(2 entries: stray.parquet, sub\) and was not written"):
            write_shards(cfg, str(out), overwrite=overwrite)
        assert (out / "stray.parquet").read_bytes() == b"x" and (out / "sub").is_dir()
    out = tmp_path / "out2"
    first = write_shards(cfg, str(out))
    with pytest.raises(InputError, match="holds shards already"):
        write_shards(cfg, str(out))
    second = write_shards(cfg, str(out), overwrite=True)
    assert second.content_hash == first.content_hash
    assert sorted(p.name for p in out.iterdir()) == sorted([*second.files, MANIFEST_NAME, ".hyena-output.json"])
    assert all(f.startswith("hyena-shard_") for f in second.files)
    assert not set(first.files) & set(second.files)  # the first write's files are gone


def test_interrupted_writes_never_look_complete(ray_cluster, tmp_path, monkeypatch):
    fasta = write_fasta(tmp_path / "t.fa", {"a": "ACGT" * 500})
    cfg = DataConfig(fasta=[str(fasta)], chunk_size=256)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        write_shards(cfg, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()

    manifest = write_shards(cfg, str(tmp_path / "out"))
    (tmp_path / "out" / MANIFEST_NAME).unlink()  # as if killed before the rename
    for fn in (read_manifest, lambda p: load_chunks(DataConfig(shards=p))):
        with pytest.raises(InputError, match="no _manifest.json, so not a complete shard directory"):
            fn(str(tmp_path / "out"))
    with pytest.raises(InputError, match="shard directory not found"):
        read_manifest(str(tmp_path / "missing"))

    (tmp_path / "out" / MANIFEST_NAME).write_text(json.dumps({**manifest.to_dict()}))
    (tmp_path / "out" / manifest.files[0]).unlink()
    with pytest.raises(InputError, match="shard file.* named in _manifest.json are missing"):
        read_manifest(str(tmp_path / "out"))
    (tmp_path / "out" / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(InputError, match="not a valid shard manifest"):
        read_manifest(str(tmp_path / "out"))


def test_overwrite_never_deletes_the_input_fasta_in_the_output_directory(ray_cluster, tmp_path, capsys):
    """The reported data loss: `hyena shard --overwrite` into the directory holding its FASTA."""
    from hyena_platform.cli import main

    out = tmp_path / "work"
    out.mkdir()
    fasta = write_fasta(out / "g.fa", {"a": "ACGT" * 500})
    before = fasta.read_bytes()
    assert main(["shard", str(REPO / "jobs" / "shard.yaml"), "--set", f"output={out}",
                 "--set", f"data.fasta=[{fasta}]", "--set", "data.valid_chroms=[]", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not written by `hyena shard`" in err and "g.fa" in err and "\n" not in err
    assert fasta.read_bytes() == before and sorted(os.listdir(out)) == ["g.fa", "g.fa.fai"]
