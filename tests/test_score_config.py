"""Scoring job files and every bad input: one clear one-line error before any work starts.

No Ray here: each error is raised by `plan_job`/`check_output`, which run before Ray starts; the
tests also check that the output directory was never created.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import hyena
from hyena_platform.errors import ConfigError, HyenaPlatformError, InputError
from hyena_platform.score.config import job_from_mapping, load_job
from hyena_platform.result_set import fingerprint
from hyena_platform.score.chunk_files import check_output, write_manifest
from hyena_platform.score.plan import plan_job

REPO = Path(__file__).resolve().parents[1]
CHRII = 1_072_315


def mapping(model_dir: Path, out: Path, **sections) -> dict:
    base = {
        "model": {"uri": str(model_dir)},
        "target": {"regions": ["chrII:0-50000"]},
        "window": {"size": 256, "stride": 128},
        "output": {"path": str(out)},
        "tracking": {"log_run": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return base


def plan_error(model_dir: Path, tmp_path: Path, **sections) -> HyenaPlatformError:
    out = tmp_path / "out"
    with pytest.raises(HyenaPlatformError) as info:
        job = job_from_mapping(mapping(model_dir, out, **sections), source="score.yaml")
        plan_job(job, source="score.yaml")
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    assert not out.exists()  # nothing was written: the error came before any work
    return info.value


@pytest.mark.parametrize("regions,match", [
    (["chrIII"], "unknown chromosome 'chrIII'"),
    (["chrII:1000-2000", "chrX:0-10"], "unknown chromosome 'chrX'"),
    (["chrII:1000000-1100000"], "outside chrII"),
    (["chrII:500-400"], "is empty"),
    (["chrII:0-5000", "chrII:4000-6000"], "overlaps"),
])
def test_unknown_or_outside_regions(model_dir, tmp_path, regions, match):
    err = plan_error(model_dir, tmp_path, target={"regions": regions})
    assert isinstance(err, InputError) and match in str(err)


def test_unknown_chromosome_in_include_and_bed(model_dir, tmp_path):
    err = plan_error(model_dir, tmp_path, data={"include": ["chrZ"]}, target={"regions": []})
    assert "'chrZ' matches no FASTA record" in str(err)
    bed = tmp_path / "r.bed"
    bed.write_text("chrII\t100\t200\nchrII\t5000\t2000000\n")
    err = plan_error(model_dir, tmp_path, target={"regions": [], "bed": str(bed)})
    assert f"{bed}:2" in str(err) and "outside chrII" in str(err)


def test_window_larger_than_the_models_l_max(model_dir, tmp_path):
    err = plan_error(model_dir, tmp_path, window={"size": 300, "stride": 100})
    assert isinstance(err, ConfigError)
    assert "window.size=300 is larger than this model's l_max - 2 = 256" in str(err)


def test_stride_larger_than_the_window(model_dir, tmp_path):
    err = plan_error(model_dir, tmp_path, window={"size": 128, "stride": 129})
    assert "window.stride=129 is larger than window.size=128" in str(err)
    # the default window (l_max - 2 = 256) with a larger stride, found once the model is known
    err = plan_error(model_dir, tmp_path, window={"size": None, "stride": 300})
    assert "window.stride=300 is larger than the window (256" in str(err)


def test_unreadable_model_uris(model_dir, tmp_path):
    err = plan_error(model_dir, tmp_path, model={"uri": str(tmp_path / "nope")})
    assert "no such checkpoint directory" in str(err)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    err = plan_error(model_dir, tmp_path, model={"uri": str(tmp_path / "junk")})
    assert "cannot load a checkpoint" in str(err)
    err = plan_error(model_dir, tmp_path, model={"uri": "models:/hyena"})
    assert "not a registered-model URI" in str(err)
    err = plan_error(model_dir, tmp_path, model={"uri": "models:/hyena@prod"},
                     tracking={"uri": f"sqlite:///{tmp_path}/none.db"})
    assert "no MLflow store" in str(err)
    assert not (tmp_path / "none.db").exists()


def test_output_with_other_results_is_refused_unless_overwrite(model_dir, tmp_path):
    out = tmp_path / "out"
    first = plan_job(job_from_mapping(mapping(model_dir, out)))
    write_manifest(out, {"status": "complete", "fingerprint": fingerprint(first.identity),
                         "identity": first.identity, "model": first.model.describe()})
    assert check_output(out, first.identity, overwrite=False)["status"] == "complete"  # same job: resume
    other = plan_job(job_from_mapping(mapping(model_dir, out, window={"stride": 64})))
    with pytest.raises(InputError, match=r"holds results of a different model or config \(window: "):
        check_output(out, other.identity, overwrite=False)
    torch.manual_seed(1)
    hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2, l_max=258)).save_pretrained(tmp_path / "m2")
    retrained = plan_job(job_from_mapping(mapping(tmp_path / "m2", out)))
    with pytest.raises(InputError, match=rf"\(model: {model_dir} \(sha256 \w+...\) -> {tmp_path / 'm2'} "):
        check_output(out, retrained.identity, overwrite=False, model_uri=str(tmp_path / "m2"))
    # the same weights from another directory are the same model: the job resumes
    import shutil

    shutil.copytree(model_dir, tmp_path / "copy")
    moved = plan_job(job_from_mapping(mapping(tmp_path / "copy", out)))
    assert check_output(out, moved.identity, overwrite=False) is not None
    assert check_output(out, other.identity, overwrite=True) is None
    assert not (out / "_manifest.json").exists()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty"):
        check_output(out, other.identity, overwrite=False)


def test_a_track_of_a_column_the_job_does_not_write(model_dir, tmp_path):
    err = plan_error(model_dir, tmp_path, output={"track": "log_prob_mean"})
    assert "output.track='log_prob_mean' is not a column this job writes" in str(err)
    assert "log_prob, entropy" in str(err)


def test_config_errors_name_the_key(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown key window.strid"):
        job_from_mapping(mapping(model_dir, tmp_path, window={"strid": 3}), source="s.yaml")
    # Scoring's data section is its own type: training-only keys are unknown, with the reason.
    with pytest.raises(ConfigError, match=r"s.yaml: unknown key data.shards; valid keys in data: exclude, fasta, "
                                          r"include, index_cache, min_length; this job reads FASTA directly"):
        job_from_mapping(mapping(model_dir, tmp_path, data={"shards": "x"}), source="s.yaml")
    with pytest.raises(ConfigError, match="unknown key data.max_n_fraction;.*shapes training splits or windows"):
        job_from_mapping(mapping(model_dir, tmp_path, data={"max_n_fraction": 0.5}), source="s.yaml")
    with pytest.raises(ConfigError, match="unknown key data.bed;.*give the regions in target.bed"):
        job_from_mapping(mapping(model_dir, tmp_path, data={"bed": "x.bed"}), source="s.yaml")
    with pytest.raises(ConfigError, match="missing required key model"):
        job_from_mapping({"output": {"path": "x"}}, source="s.yaml")
    with pytest.raises(ConfigError, match="compute.precision"):
        job_from_mapping(mapping(model_dir, tmp_path, compute={"precision": "fp16"}), source="s.yaml")
    # bf16 is valid on CPU too (AVX512-BF16 / AMX); fp32 stays the default.
    job = job_from_mapping(mapping(model_dir, tmp_path, compute={"precision": "bf16"}), source="s.yaml")
    assert job.compute.precision == "bf16" and job.compute.device == "cpu"
    assert job_from_mapping(mapping(model_dir, tmp_path), source="s.yaml").compute.precision == "fp32"


@pytest.mark.parametrize("name", ["score.yaml", "score_local.yaml"])
def test_job_files_load(name):
    job = load_job(REPO / "jobs" / name)
    assert job.model.uri.startswith("models:/")
    assert job.compute.replicas >= 1


def test_local_job_scores_chrII_of_the_bundled_genome():
    from hyena_platform.score.plan import resolve_targets

    job = load_job(REPO / "jobs" / "score_local.yaml")
    regions = resolve_targets(job.data, job.target)
    assert [(r.chrom, r.start, r.end) for r in regions] == [("chrII", 0, CHRII)]


def test_cli_prints_one_line_and_exits_2(model_dir, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(mapping(model_dir, tmp_path / "out")))
    proc = subprocess.run([sys.executable, "-m", "hyena_platform.cli", "score", str(job),
                           "--set", "target.regions=[chrII:0-2000000]"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("hyena score: error: target.regions[0]: region chrII:0-2000000 is outside chrII")
    assert not (tmp_path / "out").exists()
