"""bench/gpu_check.py, the one-command GPU check, exercised on CPU: its argument parsing, the GPU
job it would submit, and a tiny dry run of every section (--cpu-smoke)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("bench_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_arguments(gpu_check):
    args = gpu_check.parse_args([])
    assert args.sections == list(gpu_check.SECTIONS) and not args.cpu_smoke and args.loss_tol == 0.05
    args = gpu_check.parse_args(["--sections", "train, long", "--steps", "7", "--cpu-smoke"])
    assert args.sections == ["train", "long"] and args.steps == 7 and args.cpu_smoke
    with pytest.raises(SystemExit) as err:
        gpu_check.parse_args(["--sections", "train,gpus"])
    assert err.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_refuses_without_gpu_and_names_the_fix(gpu_check):
    with pytest.raises(SystemExit, match="no CUDA GPU visible.*--cpu-smoke"):
        gpu_check.run(gpu_check.parse_args(["--sections", "train"]))


def test_gpu_ray_job_is_valid_one_worker_nccl(gpu_check, tmp_path):
    from hyena_platform.train.config import load_job

    job = load_job(gpu_check.REPO / "jobs" / "pretrain_smoke.yaml", gpu_check.ray_job_overrides(tmp_path, True))
    assert job.scaling.num_workers == 1 and job.scaling.use_gpu and job.scaling.torch_backend == "nccl"
    assert job.scaling.gpus_per_worker == 1 and job.train.precision == "auto"
    assert job.checkpoint.storage_path == str(tmp_path / "runs") and str(tmp_path) in job.tracking.uri
    cpu = load_job(gpu_check.REPO / "jobs" / "pretrain_smoke.yaml", gpu_check.ray_job_overrides(tmp_path, False))
    assert not cpu.scaling.use_gpu and cpu.scaling.torch_backend == "gloo"


def test_op_classes(gpu_check):
    assert gpu_check.classify_op("aten::_fft_r2c") == "fft"
    assert gpu_check.classify_op("aten::addmm") == "gemm" and gpu_check.classify_op("aten::bmm") == "gemm"
    assert gpu_check.classify_op("aten::gelu") == "other"


def test_cpu_smoke_of_the_model_sections(gpu_check, tmp_path, capsys):
    out = tmp_path / "check.json"
    code = gpu_check.main(["--cpu-smoke", "--sections", "train,score,long,profile", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    import json

    result = json.loads(out.read_text())
    assert result["ok"] and len(result["checks"]) == 5
    numbers = result["numbers"]
    assert len(numbers["train"]["fp32"]["losses"]) == 3
    assert numbers["score"]["max_abs_logp_diff"] < 0.05  # bf16 on CPU, random tiny model
    assert set(numbers["long"]) == {"fp32 auto", "fp32 low-memory", "bf16 auto", "bf16 low-memory"}
    assert numbers["profile"]["fft"] > 0 and numbers["profile"]["gemm"] > 0
    assert "[PASS] bf16 close to fp32" in printed


@pytest.mark.integration
def test_cpu_smoke_of_the_ray_section(gpu_check, ray_cluster, capsys):
    report = gpu_check.run(gpu_check.parse_args(["--cpu-smoke", "--sections", "ray"]))
    printed = capsys.readouterr().out
    assert report.ok, printed
    assert report.numbers["ray"]["steps"] == 6 and report.numbers["ray"]["model_uri"].startswith("models:/")
