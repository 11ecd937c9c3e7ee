"""The pretraining job file: strict loading, errors that name the file, the key and the choices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hyena_platform.errors import ConfigError
from hyena_platform.train.config import PretrainJob, load_job

REPO = Path(__file__).resolve().parents[1]
JOBS = [REPO / "jobs" / "pretrain.yaml", REPO / "jobs" / "pretrain_local.yaml"]

SMALL = {
    "model": {"variant": "tiny-1k", "overrides": {"d_model": 32, "d_inner": 64}},
    "train": {"steps": 20, "global_batch": 8, "micro_batch": 2, "target_length": 256, "warmup_stage_steps": 4},
    "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
}


def write(tmp_path: Path, data: dict, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def error(tmp_path: Path, data: dict, *overrides: str) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_job(path, overrides)
    message = str(info.value)
    assert message.startswith(str(path)), message  # every error names the file
    return message


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_bundled_job_files_load_and_plan(path):
    job = load_job(path)
    stages = job.stages(job.model.hyena_config().l_max)
    assert len(stages) >= 3 and stages[0].length == 64
    assert stages[-1].length <= job.model.hyena_config().l_max
    for s in stages:
        assert s.micro_batch * s.grad_accum * job.scaling.num_workers == job.train.global_batch


def test_local_job_is_small_and_the_cluster_job_is_the_recipe():
    local = load_job(REPO / "jobs" / "pretrain_local.yaml")
    assert not local.scaling.use_gpu and local.data.uses_bundled_genome
    assert local.scaling.num_workers * local.scaling.cpus_per_worker < 2  # leaves CPU for Ray Data
    recipe = load_job(REPO / "jobs" / "pretrain.yaml")
    t = recipe.train
    assert (t.lr, t.betas, t.weight_decay, t.warmup_fraction, t.min_lr_ratio, t.grad_clip) == (
        6e-4, (0.9, 0.999), 0.1, 0.01, 0.1, 1.0)
    assert recipe.scaling.use_gpu and recipe.scaling.torch_backend == "nccl"
    assert [s.length for s in recipe.stages(recipe.model.hyena_config().l_max)][::3] == [64, 512, 4096, 32768]


def test_defaults_are_the_paper_recipe():
    t = PretrainJob().train
    assert (t.lr, t.betas, t.weight_decay, t.grad_clip, t.start_length) == (6e-4, (0.9, 0.999), 0.1, 1.0, 64)


def test_set_overrides_are_parsed_as_yaml(tmp_path):
    job = load_job(write(tmp_path, SMALL), ["train.lr=3e-4", "model.overrides.n_layer=3", "scaling.num_workers=1",
                                           "train.stages=[{length: 64, steps: 2}, {length: 128, steps: 3}]",
                                           "train.steps=null"])
    assert job.train.lr == 3e-4 and job.model.hyena_config().n_layer == 3
    assert [(s.length, s.steps) for s in job.stages(1026)] == [(64, 2), (128, 3)]


@pytest.mark.parametrize("data, overrides, pattern", [
    ({**SMALL, "trian": {}}, (), r"unknown key trian; valid keys in top level: checkpoint, data, kind, model, scaling, "
                                 r"(.*, )?tracking, train"),
    (SMALL, ("train.learning_rate=1",), r"unknown key train.learning_rate; valid keys in train: .*\blr\b"),
    (SMALL, ("train.lr=fast",), r"train.lr must be a number, got str 'fast'"),
    (SMALL, ("train.precision=fp8",), r"train.precision must be one of 'auto', 'fp32', 'bf16', got 'fp8'"),
    (SMALL, ("scaling.backend=mpi",), r"scaling.backend must be one of 'auto', 'gloo', 'nccl'"),
    (SMALL, ("model.variant=tiny-2k",), r"model.variant='tiny-2k' is not a released variant; valid choices: "
                                        r"tiny-1k, tiny-1k-d256, .*large-1m"),
    (SMALL, ("model.overrides.d_modle=64",), r"model.overrides.d_modle is not a HyenaConfig field; valid fields: "
                                             r"d_model, n_layer"),
    (SMALL, ("model.overrides.d_model=-1",), r"model.overrides: HyenaConfig.d_model must be a positive integer"),
    (SMALL, ("train.target_length=2048",), r"train.target_length=2048 is longer than the model's l_max=1026"),
    (SMALL, ("train.stages=[{length: 64, steps: 2}, {length: 4096, steps: 2}]", "train.steps=null"),
     r"train.stages\[1\]: stage 1 length 4096 is longer than the model's l_max=1026"),
    (SMALL, ("train.global_batch=10",), r"train.global_batch=10 is not divisible by scaling.num_workers=2 x "
                                        r"train.micro_batch=2 = 4"),
    (SMALL, ("train.stages=[{length: 64, steps: 2, micro_batch: 3}]", "train.steps=null"),
     r"train.stages\[0\].micro_batch=3 does not divide the per-worker batch"),
    (SMALL, ("train.stages=[{length: 64, stepz: 2}]",), r"unknown key train.stages\[0\].stepz; valid keys in "
                                                        r"train.stages\[0\]: length, micro_batch, steps"),
    (SMALL, ("model.init_from=runs/x/model",), r"model.init_from and model.variant are exclusive"),
    (SMALL, ("scaling.backend=nccl",), r"scaling.backend=nccl needs scaling.use_gpu=true"),
    (SMALL, ("tracking.alias=latest",), r"tracking.alias='latest'"),
    (SMALL, ("checkpoint.name=my run",), r"checkpoint.name='my run'"),
    (SMALL, ("data.fasta=genome.fa",), r"data: fasta must be a list of strings|data.fasta must be a list"),
    (SMALL, ("data.shuffle=true",), r"unknown key data.shuffle; valid keys in data: "),
    ({"model": {}}, (), r"set model.variant \(one of tiny-1k"),
])
def test_config_errors_name_the_key_and_the_valid_choices(tmp_path, data, overrides, pattern):
    message = error(tmp_path, data, *overrides)
    assert re.search(pattern, message), message


def test_init_from_takes_the_architecture_from_the_checkpoint(tmp_path):
    data = {**SMALL, "model": {"init_from": "models:/hyenadna@candidate", "overrides": {"embed_dropout": 0.0}}}
    job = load_job(write(tmp_path, data))
    assert job.model.init_from == "models:/hyenadna@candidate"
    message = error(tmp_path, {**SMALL, "model": {"init_from": "x", "overrides": {"d_model": 64}}})
    assert "model.overrides.d_model cannot change a model loaded with model.init_from" in message


def test_run_name_defaults_to_the_job_file_name(tmp_path):
    job = load_job(write(tmp_path, SMALL, "my-pretrain.yaml"))
    assert job.run_name("jobs/my-pretrain.yaml") == "my-pretrain"
    named = load_job(write(tmp_path, SMALL), ["checkpoint.name=exp1"])
    assert named.run_name("jobs/x.yaml") == "exp1"


def test_cli_prints_one_line_errors_without_importing_ray(tmp_path):
    import subprocess
    import sys

    path = write(tmp_path, SMALL)
    code = ("import sys\nfrom hyena_platform.cli import main\n"
            f"rc = main(['pretrain', {str(path)!r}, '--set', 'train.precision=fp8'])\n"
            "print('ray' in sys.modules, 'mlflow' in sys.modules)\nsys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"hyena pretrain: error: {path}: train.precision must be one of 'auto', "
                                   "'fp32', 'bf16', got 'fp8'")
    assert proc.stdout.strip() == "False False"
