"""FASTA -> chunks without Ray: layouts, splits, tokenisation and every bad input, on the real
bundled genome and on small real FASTA/BED files written into tmp_path."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hyena.tokenizer import A, C, G, N, T
from hyena_platform.config import from_mapping, load_config
from hyena_platform.data import chunks, fasta, genome
from hyena_platform.data.config import DataConfig
from hyena_platform.data.chunks import read_chunk
from hyena_platform.data.genome import ChunkSpec, plan_layout
from hyena_platform.errors import ConfigError, InputError

from _unprivileged import without_override

import _fasta

REPO = Path(__file__).resolve().parents[1]
LENGTHS = {"chrI": 2_961_149, "chrII": 1_072_315}
_REF_IDS = np.full(256, 255, dtype=np.uint8)
for _ch, _id in zip("ACGT", (A, C, G, T)):
    _REF_IDS[ord(_ch)] = _REF_IDS[ord(_ch.lower())] = _id
for _ch in "RYSWKMBDHVN":
    _REF_IDS[ord(_ch)] = _REF_IDS[ord(_ch.lower())] = N


def parse_fasta_text(text: str) -> dict[str, str]:
    """Independent reference parser (no pyfaidx): name -> sequence."""
    out: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            out[name] = []
        elif line.strip():
            out[name].append(line.strip())
    return {k: "".join(v) for k, v in out.items()}


def reference_ids(seq: str) -> np.ndarray:
    ids = _REF_IDS[np.frombuffer(seq.encode(), dtype=np.uint8)]
    assert (ids != 255).all()
    return ids


def write_fasta(path: Path, records: dict[str, str], width: int = 60) -> Path:
    return _fasta.write_fasta(path, records, width, description="test record")


@pytest.fixture(scope="module")
def reference(bundled_genome) -> dict[str, str]:
    with gzip.open(bundled_genome, "rt") as f:
        return parse_fasta_text(f.read())


@pytest.fixture
def small_fasta(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    seqs = {name: "".join(rng.choice(list("ACGT"), n)) for name, n in
            (("chr1", 5000), ("chr2", 3000), ("chrUn_x", 400), ("chrM", 120))}
    return write_fasta(tmp_path / "small.fa", seqs)


# ------------------------------------------------------------------------------- layouts


def test_bundled_genome_layout_holds_out_chrII():
    layout = plan_layout(DataConfig())
    assert [(r.name, r.length) for r in layout.records] == list(LENGTHS.items())
    assert [(s.chrom, s.start, s.end, s.split) for s in layout.segments] == [
        ("chrI", 0, LENGTHS["chrI"], "train"), ("chrII", 0, LENGTHS["chrII"], "valid")]
    assert layout.split_bases() == {"train": LENGTHS["chrI"], "valid": LENGTHS["chrII"]}
    specs = layout.chunk_specs()
    assert [(s.chrom, s.start, s.end) for s in specs[:3]] == [
        ("chrI", 0, 1 << 20), ("chrI", 1 << 20, 2 << 20), ("chrI", 2 << 20, LENGTHS["chrI"])]
    assert sum(s.end - s.start for s in specs) == sum(LENGTHS.values())
    assert genome.GenomeLayout.from_dict(layout.to_dict()) == layout


def test_selection_and_chromosome_splits(small_fasta):
    cfg = DataConfig(fasta=[str(small_fasta)], include=["chr*"], exclude=["chrUn_*"], min_length=200,
                     valid_chroms=["chr2"])
    layout = plan_layout(cfg)
    assert [r.name for r in layout.records] == ["chr1", "chr2"]  # chrM is under min_length
    assert {s.chrom: s.split for s in layout.segments} == {"chr1": "train", "chr2": "valid"}

    cfg = DataConfig(fasta=[str(small_fasta)], test_chroms=["chr[2M]"], chunk_size=1000)
    layout = plan_layout(cfg)
    assert cfg.valid_chroms == []  # the chrII default is for the bundled genome only
    assert {s.chrom: s.split for s in layout.segments} == {
        "chr1": "train", "chr2": "test", "chrUn_x": "train", "chrM": "test"}
    assert [s.end - s.start for s in layout.chunk_specs() if s.chrom == "chr1"] == [1000] * 5


def test_bed_splits(bundled_genome, tmp_path):
    bed = tmp_path / "splits.bed"
    bed.write_text("#chrom\tstart\tend\tsplit\n"
                   "chrI\t0\t1000000\ttrain\n"
                   "chrII\t500000\t700000\ttest\n"
                   "chrI\t1500000\t2000000\tvalid\n"
                   "chrII\t0\t500000\ttrain\n")
    layout = plan_layout(DataConfig(bed=str(bed), chunk_size=300_000))
    assert [(s.chrom, s.start, s.end, s.split) for s in layout.segments] == [
        ("chrI", 0, 1_000_000, "train"), ("chrI", 1_500_000, 2_000_000, "valid"),
        ("chrII", 0, 500_000, "train"), ("chrII", 500_000, 700_000, "test")]
    assert layout.split_bases() == {"train": 1_500_000, "valid": 500_000, "test": 200_000}
    specs = [s for s in layout.chunk_specs() if s.split == "valid"]
    assert [(s.start, s.end, s.segment_start) for s in specs] == [
        (1_500_000, 1_800_000, 1_500_000), (1_800_000, 2_000_000, 1_500_000)]
    # include/exclude drop intervals on other chromosomes; a split must not vanish that way
    with pytest.raises(InputError, match="split 'test' ends up empty: its intervals are on chrII"):
        plan_layout(DataConfig(bed=str(bed), exclude=["chrII"]))
    bed.write_text("chrI\t0\t1000\ttrain\nchrII\t0\t1000\ttrain\nchrI\t1000\t2000\tvalid\n")
    layout = plan_layout(DataConfig(bed=str(bed), exclude=["chrII"]))
    assert [(s.chrom, s.split) for s in layout.segments] == [("chrI", "train"), ("chrI", "valid")]


# ------------------------------------------------------------------------------- tokenisation


def test_chunks_match_an_independent_parse_including_real_iupac_codes(reference):
    seq = reference["chrI"]
    iupac = [i for i, ch in enumerate(seq) if ch not in "ACGT"]
    assert iupac, "the bundled chrI has IUPAC codes"
    for start, end in [(0, 10_000), (iupac[0] - 50, iupac[0] + 50), (LENGTHS["chrI"] - 777, LENGTHS["chrI"])]:
        spec = ChunkSpec(str(genome.bundled_genome_path()), "chrI", start, end, "train", 0)
        row = read_chunk(spec)
        assert row["tokens"].dtype == np.uint8
        np.testing.assert_array_equal(row["tokens"], reference_ids(seq[start:end]))
    row = read_chunk(ChunkSpec(str(genome.bundled_genome_path()), "chrI", iupac[0], iupac[0] + 1, "train", 0))
    assert row["tokens"].tolist() == [N]


def test_plain_and_bgzip_fasta_give_identical_chunks(bundled_genome, tmp_path, reference):
    plain = tmp_path / "vc.fa"
    with gzip.open(bundled_genome, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert fasta.fasta_compression(str(plain)) == "plain"
    assert fasta.fasta_compression(str(bundled_genome)) == "bgzip"
    for chrom, start, end in [("chrII", 0, 4096), ("chrII", 1_000_000, LENGTHS["chrII"]), ("chrI", 123_456, 223_456)]:
        a = read_chunk(ChunkSpec(str(plain), chrom, start, end, "train", 0))["tokens"]
        b = read_chunk(ChunkSpec(str(bundled_genome), chrom, start, end, "train", 0))["tokens"]
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, reference_ids(reference[chrom][start:end]))
    assert (tmp_path / "vc.fa.fai").exists()  # built on first use


def test_bgzf_ranges_at_block_edges_with_every_inflate_backend(bundled_genome, tmp_path):
    import zlib

    plain = tmp_path / "vc.fa"
    with gzip.open(bundled_genome, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    reference = fasta.FastaReader(str(plain), None)
    backends = [zlib.decompress]
    if fasta.inflate_backend()[0] == "isal":
        backends.append(fasta.inflate_backend()[1])
    for inflate in backends:
        reader = fasta.FastaReader(str(bundled_genome), None, inflate=inflate)
        edges = reader._block_u[1:6].tolist()  # uncompressed block starts (bytes of the file)
        rec = reader.index["chrI"]
        cases = [("chrII", 0, LENGTHS["chrII"]), ("chrI", LENGTHS["chrI"] - 1, LENGTHS["chrI"]), ("chrI", 0, 1)]
        for edge in edges:  # bases around each block boundary
            base = (edge - rec.offset) // rec.lenb * rec.lenc + (edge - rec.offset) % rec.lenb
            cases += [("chrI", max(0, base - 3), base + 3), ("chrI", base, base + 70_000)]
        for chrom, start, end in cases:
            assert reader.raw(chrom, start, end) == reference.raw(chrom, start, end), (inflate, chrom, start, end)


def test_missing_bgzip_indexes_are_built(bundled_genome, tmp_path):
    copy = tmp_path / "vc.fa.gz"
    shutil.copy(bundled_genome, copy)
    layout = plan_layout(DataConfig(fasta=[str(copy)]))
    assert [r.length for r in layout.records] == list(LENGTHS.values())
    assert (tmp_path / "vc.fa.gz.fai").exists() and (tmp_path / "vc.fa.gz.gzi").exists()


def test_index_goes_to_the_cache_when_the_fasta_directory_is_not_writable(small_fasta, tmp_path):
    """In a subprocess that meets the permission bits as any user would, root included
    (tests/_unprivileged.py), so the read-only directory is really read-only."""
    ro = tmp_path / "readonly"
    ro.mkdir()
    path = ro / "g.fa"
    shutil.copy(small_fasta, path)
    cache = tmp_path / "cache"
    code = textwrap.dedent(f"""
        from hyena_platform.data.chunks import read_chunk
        from hyena_platform.data.config import DataConfig
        from hyena_platform.data.genome import plan_layout
        layout = plan_layout(DataConfig(fasta=[{str(path)!r}], index_cache={str(cache)!r}))
        print(read_chunk(layout.chunk_specs()[0], index_cache={str(cache)!r})["tokens"].size)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")])}
    os.chmod(ro, 0o555)
    try:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                             preexec_fn=without_override)
    finally:
        os.chmod(ro, 0o755)
    assert run.returncode == 0 and run.stdout.strip() == "5000", run
    assert not (ro / "g.fa.fai").exists()
    assert len(list(cache.rglob("g.fa.fai"))) == 1


def test_a_rewritten_fasta_is_read_afresh(tmp_path):
    path = write_fasta(tmp_path / "g.fa", {"a": "ACGT" * 30})
    spec = ChunkSpec(str(path), "a", 0, 8, "train", 0)
    assert read_chunk(spec)["tokens"].tolist() == [A, C, G, T] * 2
    write_fasta(path, {"a": "TTTT" * 40}, width=50)  # same name, new bases, new line width
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    assert read_chunk(spec)["tokens"].tolist() == [T] * 8


def test_soft_masked_bases_become_the_same_tokens_with_an_optional_mask(reference, tmp_path):
    region = reference["chrII"][10_000:12_000]
    masked = region[:500] + region[500:900].lower() + region[900:1500] + region[1500:1510].lower() + region[1510:]
    fa_path = write_fasta(tmp_path / "masked.fa", {"chrII": masked}, width=70)
    spec = ChunkSpec(str(fa_path), "chrII", 0, 2000, "train", 0)
    plain_row, masked_row = read_chunk(spec), read_chunk(spec, keep_soft_mask=True)
    np.testing.assert_array_equal(plain_row["tokens"], reference_ids(region))
    np.testing.assert_array_equal(masked_row["tokens"], plain_row["tokens"])
    assert "soft_mask" not in plain_row
    expected = np.zeros(2000, dtype=np.uint8)
    expected[500:900] = expected[1500:1510] = 1
    np.testing.assert_array_equal(masked_row["soft_mask"], expected)
    table = chunks.chunks_table([spec], keep_soft_mask=True, digest=True)
    assert table.schema == chunks.chunk_schema(keep_soft_mask=True, digest=True)
    np.testing.assert_array_equal(chunks.column_arrays(table["soft_mask"])[0], expected)


def test_iupac_codes_become_n(tmp_path):
    fa_path = write_fasta(tmp_path / "iupac.fa", {"x": "ACGTRYSWKMBDHVNacgtrywsn" * 3})
    tokens = read_chunk(ChunkSpec(str(fa_path), "x", 0, 72, "train", 0))["tokens"]
    np.testing.assert_array_equal(tokens[:24], [A, C, G, T] + [N] * 11 + [A, C, G, T] + [N] * 5)


# ------------------------------------------------------------------------------- bad input


def _cfg(path, **kw) -> DataConfig:
    return DataConfig(fasta=[str(path)], **kw)


def test_missing_fasta(tmp_path):
    with pytest.raises(InputError, match=r"missing\.fa: FASTA file not found"):
        plan_layout(_cfg(tmp_path / "missing.fa"))


@pytest.mark.parametrize("content, message", [
    (b"", "empty FASTA: no record found"),
    (b"\n\n", "empty FASTA: no record found"),
    (b"ACGTACGT\nACGT\n", "no FASTA header"),
    (b">a\n>b\n", "every record is empty"),
])
def test_empty_or_headerless_fasta(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        plan_layout(_cfg(path))
    assert str(path) in str(err.value)


def test_duplicate_sequence_names_in_one_file_and_across_files(tmp_path):
    dup = tmp_path / "dup.fa"
    dup.write_text(">chr1 first\nACGT\n>chr2\nACGT\n>chr1 again\nACGT\n")
    with pytest.raises(InputError, match=r"dup\.fa: duplicate sequence name 'chr1'"):
        plan_layout(_cfg(dup))
    a = write_fasta(tmp_path / "a.fa", {"chr1": "ACGT" * 10})
    b = write_fasta(tmp_path / "b.fa", {"chr2": "ACGT" * 10, "chr1": "ACGT" * 10})
    with pytest.raises(InputError, match=r"duplicate sequence name 'chr1' in .*a\.fa and .*b\.fa"):
        plan_layout(DataConfig(fasta=[str(a), str(b)]))


def test_non_nucleotide_character_names_file_record_and_position(tmp_path):
    seq = "ACGT" * 40
    bad = seq[:123] + "X" + seq[124:]
    fa_path = write_fasta(tmp_path / "bad.fa", {"ok": seq, "chr7": bad}, width=50)
    layout = plan_layout(_cfg(fa_path, chunk_size=100))  # names, lengths: fine before reading bases
    errors = []
    for spec in layout.chunk_specs():
        try:
            read_chunk(spec)
        except InputError as err:
            errors.append(str(err))
    assert len(errors) == 1
    assert str(fa_path) in errors[0] and "record 'chr7'" in errors[0] and "'X' at position 123" in errors[0]
    space = write_fasta(tmp_path / "space.fa", {"s": "ACGT ACGT"})
    with pytest.raises(InputError, match=r"record 's': character ' ' at position 4"):
        read_chunk(plan_layout(_cfg(space)).chunk_specs()[0])


def test_other_compressions_are_one_line(tmp_path):
    path = tmp_path / "g.fa.bz2"
    path.write_bytes(b"BZh91AY&SY" + b"\0" * 20)
    with pytest.raises(InputError, match=r"bzip2-compressed FASTA is not supported"):
        plan_layout(_cfg(path))  # plain gzip is read: tests/test_gzip_fasta.py


def test_ragged_lines_are_an_input_error(tmp_path):
    path = tmp_path / "ragged.fa"
    path.write_text(">a\nACGT\nAC\nACGT\n")
    with pytest.raises(InputError, match="ragged.fa: .*not consistent"):
        plan_layout(_cfg(path))


@pytest.mark.parametrize("line, message", [
    ("chrIII\t0\t100\ttrain", r":2: chromosome 'chrIII' is not in the FASTA"),
    ("chrI\t500\t500\ttrain", r":2: interval chrI:500-500 is outside chrI or empty; give 0 <= start < end"),
    ("chrI\t900\t100\tvalid", r":2: interval chrI:900-100 is outside chrI or empty; give 0 <= start < end"),
    ("chrI\t0\t9999999\ttrain", r":2: interval chrI:0-9999999 is outside chrI or empty; give 0 <= start < end <= 2,961,149"),
    ("chrI\t0\t100\tvalidation", r":2: split 'validation' must be one of train, valid, test"),
    ("chrI\t0\t100", r":2: expected 4 columns"),
    ("chrI\tzero\t100\ttrain", r":2: start and end must be integers"),
    ("chrII\t50\t150\ttrain", r":2: interval chrII:50-150 overlaps line 1"),
])
def test_bad_bed_lines(tmp_path, line, message):
    bed = tmp_path / "s.bed"
    bed.write_text(f"chrII\t0\t100\tvalid\n{line}\n")
    with pytest.raises(InputError, match=message) as err:
        plan_layout(DataConfig(bed=str(bed)))
    assert str(bed) in str(err.value)


def test_missing_or_empty_bed(tmp_path):
    with pytest.raises(InputError, match="BED file not found"):
        plan_layout(DataConfig(bed=str(tmp_path / "none.bed")))
    (tmp_path / "e.bed").write_text("# nothing\n")
    with pytest.raises(InputError, match="BED file has no interval"):
        plan_layout(DataConfig(bed=str(tmp_path / "e.bed")))


def test_splits_that_end_up_empty(small_fasta, tmp_path):
    with pytest.raises(InputError, match=r"valid_chroms entry 'chr2' names chr2, removed by include/exclude"):
        plan_layout(_cfg(small_fasta, valid_chroms=["chr2"], min_length=4000))
    with pytest.raises(InputError, match=r"valid_chroms entry 'chr9' matches no FASTA record"):
        plan_layout(_cfg(small_fasta, valid_chroms=["chr9"]))
    with pytest.raises(InputError, match="the train split ends up empty"):
        plan_layout(_cfg(small_fasta, include=["chr1", "chr2"], valid_chroms=["chr1"], test_chroms=["chr2"]))
    with pytest.raises(InputError, match="no record left after include"):
        plan_layout(_cfg(small_fasta, min_length=10_000))
    with pytest.raises(InputError, match="include entry 'chrX' matches no FASTA record"):
        plan_layout(_cfg(small_fasta, include=["chrX"]))
    bed = tmp_path / "s.bed"
    bed.write_text("chr1\t0\t5000\ttrain\nchrM\t0\t100\tvalid\n")
    with pytest.raises(InputError, match=r"split 'valid' ends up empty: its intervals are on chrM"):
        plan_layout(_cfg(small_fasta, bed=str(bed), exclude=["chrM"]))
    layout = plan_layout(_cfg(small_fasta, valid_chroms=["chr2"]))
    with pytest.raises(InputError, match="split 'test' is empty in this genome layout"):
        layout.check_window(100, "test")


def test_window_longer_than_every_chromosome():
    layout = plan_layout(DataConfig())
    layout.check_window(LENGTHS["chrII"] - 1, "valid")  # exactly fits: length + 1 tokens
    with pytest.raises(InputError, match=r"window length 1,072,315 .* longer than every valid sequence: "
                                         r"the longest is chrII:0-1072315 \(1,072,315 bp\)"):
        layout.check_window(LENGTHS["chrII"], "valid")
    with pytest.raises(InputError, match="longer than every train sequence"):
        layout.check_window(5_000_000, "train")


# ------------------------------------------------------------------------------- config


def test_data_config_cross_field_checks_name_the_file(tmp_path):
    src = "job.yaml"
    assert from_mapping(DataConfig, {}, source=src).valid_chroms == ["chrII"]
    cases = [
        ({"fasta": ["a.fa"], "shards": "s"}, "not both"),
        ({"shards": "s", "valid_chroms": ["chr1"]}, "valid_chroms cannot be set with shards"),
        ({"shards": "s", "chunk_size": 1000}, "chunk_size cannot be set with shards"),
        ({"bed": "x.bed", "valid_chroms": ["chrII"]}, "bed gives the splits"),
        ({"valid_chroms": ["chr1"], "test_chroms": ["chr1"]}, "chr1 listed in both"),
        ({"chunk_size": 8}, r"chunk_size must be in \[16, 268435456\], got 8"),
        ({"max_n_fraction": 1.5}, r"max_n_fraction must be in \[0, 1\], got 1.5"),
        ({"min_length": -1}, "min_length must be >= 0"),
        ({"seed": -3}, "seed must be >= 0"),
        ({"fasta": "a.fa"}, "data.fasta must be a list"),
        ({"chunk_sise": 5}, r"unknown key data.chunk_sise; valid keys in data: bed, chunk_size"),
    ]
    for mapping, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            from_mapping(DataConfig, mapping, source=src, prefix="data.")
        assert str(err.value).startswith(src)
    cfg = from_mapping(DataConfig, {"shards": "s3://b/vc", "seed": 3, "reverse_complement": True}, source=src)
    assert cfg.valid_chroms == [] and not cfg.uses_bundled_genome
    with pytest.raises(ValueError, match="not both"):
        replace(cfg, fasta=["x.fa"])


def test_shard_job_file_loads():
    from hyena_platform.data.shard_job import ShardJob

    job = load_config(ShardJob, REPO / "jobs" / "shard.yaml", ["data.chunk_size=65536"])
    assert job.data.uses_bundled_genome and job.data.valid_chroms == ["chrII"]
    assert job.data.chunk_size == 65536 and job.output and job.overwrite is False
