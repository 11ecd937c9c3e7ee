"""Variant effect job files and every bad input: one clear one-line error before any work starts.

No Ray: each error comes from `plan_job` (or the CLI around it), which runs before Ray starts
and before the output directory exists; every test checks that nothing was written.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pysam
import pytest
import yaml

from hyena_platform.cli import main
from hyena_platform.errors import ConfigError, HyenaPlatformError, InputError
from hyena_platform.vep.config import job_from_mapping
from hyena_platform.vep.plan import plan_job

REPO = Path(__file__).resolve().parents[1]
VCF = REPO / "tests/assets/vep/o395_vs_n16961_chrII.vcf"


def mapping(model_dir: Path, out: Path, vcf_path: Path | str = VCF, **sections) -> dict:
    base = {"model": {"uri": str(model_dir)}, "vcf": {"path": str(vcf_path)}, "output": {"path": str(out)},
            "tracking": {"log_run": False}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return base


def plan_error(model_dir: Path, tmp_path: Path, vcf_path: Path | str = VCF, **sections) -> HyenaPlatformError:
    out = tmp_path / "out"
    with pytest.raises(HyenaPlatformError) as info:
        plan_job(job_from_mapping(mapping(model_dir, out, vcf_path, **sections), source="vep.yaml"), source="vep.yaml")
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    assert not out.exists()  # nothing was written: the error came before any work
    return info.value


def write_vcf(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def asset_text(**replace: str) -> str:
    text = VCF.read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def test_plan_reads_every_record_in_order_and_chunks_them(model_dir, tmp_path):
    plan = plan_job(job_from_mapping(mapping(model_dir, tmp_path / "o", output={"chunk_size": 30},
                                             vcf={"info_fields": ["STRAINS", "SRC"]})))
    assert plan.records == 82 and plan.rows == 84 and [c.records for c in plan.chunks] == [30, 30, 22]
    assert plan.sorted and plan.flank == (258 - 2 - 64) // 2
    t = plan.chunks[0].table
    assert t.column("record").to_pylist() == list(range(30)) and t.column("info.SRC")[0].as_py() == "hand"
    assert plan.info == {"STRAINS": "string", "SRC": "string"}


def test_window_longer_than_l_max(model_dir, tmp_path):
    err = plan_error(model_dir, tmp_path, window={"flank": 200})
    assert isinstance(err, ConfigError)
    assert "vep.yaml: window: 2 x flank 200 + max_allele 64 = 464 bases, more than this model's l_max - 2 = 256" in str(err)
    assert "use window.flank <= 96" in str(err)


def test_missing_file_garbage_and_truncated_vcf(model_dir, tmp_path):
    assert "file not found" in str(plan_error(model_dir, tmp_path, tmp_path / "nope.vcf"))
    garbage = write_vcf(tmp_path / "garbage.vcf", "hello\nworld\n")
    assert "not a readable VCF or BCF" in str(plan_error(model_dir, tmp_path, garbage))
    cut = write_vcf(tmp_path / "cut.vcf", VCF.read_text()[:2500])  # ends inside a record
    assert f"vcf.path {cut}: the file ends in the middle of a line" in str(plan_error(model_dir, tmp_path, cut))
    bad = write_vcf(tmp_path / "bad.vcf", asset_text(**{"chrII\t95297\t": "chrII\tabc\t"}))
    err = str(plan_error(model_dir, tmp_path, bad))
    assert f"vcf.path {bad}: cannot read record 10 " in err and "malformed after record 9" in err
    gz = tmp_path / "full.vcf.gz"
    pysam.tabix_compress(str(VCF), str(gz))
    half = tmp_path / "half.vcf.gz"
    half.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    err = str(plan_error(model_dir, tmp_path, half))
    assert f"vcf.path {half}: the file is truncated (no BGZF EOF marker" in err


def test_contig_naming_mismatch_names_both_spellings_and_the_option(model_dir, tmp_path):
    renamed = write_vcf(tmp_path / "ucsc.vcf", asset_text(**{"chrII\t": "II\t", "ID=chrII,": "ID=II,"}))
    err = str(plan_error(model_dir, tmp_path, renamed))
    assert "record 1 (II:1): contig 'II' is spelled 'chrII' in the FASTA" in err
    assert "vcf.chr_prefix: add" in err
    plan = plan_job(job_from_mapping(mapping(model_dir, tmp_path / "o", renamed, vcf={"chr_prefix": "add"})))
    assert plan.records == 82 and plan.chunks[0].table.column("contig")[0].as_py() == "chrII"
    mapped = plan_job(job_from_mapping(mapping(model_dir, tmp_path / "o", renamed, vcf={"rename": {"II": "chrII"}})))
    assert mapped.rows == 84


def test_contig_missing_from_the_fasta(model_dir, tmp_path):
    text = asset_text() + "chrIII\t10\tx\tA\tG\t.\tPASS\tSRC=hand\n"
    err = str(plan_error(model_dir, tmp_path, write_vcf(tmp_path / "extra.vcf", text)))
    assert "record 83 (chrIII:10): contig 'chrIII' is not in the FASTA" in err and "chrI, chrII" in err


def test_vcf_of_another_assembly_stops_after_the_sample(model_dir, tmp_path, bundled_genome):
    """The same VCF against an 'assembly' whose chrII holds other bases (chrI's first 1.07 Mb)."""
    import pyfaidx

    other = tmp_path / "other.fa"
    seq = str(pyfaidx.Fasta(str(bundled_genome))["chrI"][:1_072_315])
    other.write_text(">chrII\n" + "\n".join(seq[i:i + 70] for i in range(0, len(seq), 70)) + "\n")
    err = str(plan_error(model_dir, tmp_path, data={"fasta": [str(other)]}, vcf={"ref_check_sample": 40}))
    assert "of the first 40 records have a REF that differs from" in err
    assert "probably for another assembly" in err and "data.fasta" in err


def test_ref_mismatch_fail_names_the_record(model_dir, tmp_path):
    err = str(plan_error(model_dir, tmp_path, vcf={"on_ref_mismatch": "fail"}))
    assert "record 70 (chrII:1050401): REF C differs from the FASTA (A)" in err
    assert "vcf.on_ref_mismatch: flag" in err


def test_unknown_info_field_and_unknown_key(model_dir, tmp_path):
    err = plan_error(model_dir, tmp_path, vcf={"info_fields": ["AF"]})
    assert "vcf.info_fields: 'AF' is not an INFO field" in str(err) and "SRC, STRAINS" in str(err)
    with pytest.raises(ConfigError, match="unknown key vcf.paht; valid keys in vcf: "):
        job_from_mapping(mapping(model_dir, tmp_path / "o", vcf={"paht": "x"}))


def test_cli_prints_one_line_and_exits_non_zero(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    job = tmp_path / "vep.yaml"
    job.write_text(yaml.safe_dump(mapping(model_dir, out, tmp_path / "missing.vcf.gz")))
    assert main(["vep", str(job)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hyena vep: error: vcf.path ") and "Traceback" not in err
    assert not out.exists()
    assert main(["vep", str(job), "--set", f"vcf.path={VCF}", "--set", "window.flank=500"]) == 2
    assert "window.flank <= 96" in capsys.readouterr().err and not out.exists()


def test_plain_gzip_vcf_gets_the_bgzip_command(model_dir, tmp_path):
    gz = tmp_path / "plain.vcf.gz"
    with gzip.open(gz, "wt") as f:
        f.write(VCF.read_text())
    err = str(plan_error(model_dir, tmp_path, gz))
    assert f"gunzip -c {gz} | bgzip > {tmp_path / 'plain.bgz.vcf.gz'}" in err  # never overwrites its input


def test_input_error_types(model_dir, tmp_path):
    assert isinstance(plan_error(model_dir, tmp_path, tmp_path / "nope.vcf"), InputError)


def test_output_directory_of_someone_else_is_never_touched(model_dir, tmp_path):
    """A directory holding a user's file is refused before any work, --overwrite included."""
    from hyena_platform.vep import run_vep

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(HyenaPlatformError, match="not written by `hyena vep`|not empty"):
            run_vep(job_from_mapping(mapping(model_dir, out)), overwrite=overwrite)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
