"""The demo's job settings, without running them (tests/test_demo.py runs the quick demo): the
fine-tuning step is the gene recipe's task (both strands) and baseline, --quick trains on one worker, and the batch jobs'
actor pools do not restart on a local Ray (no per-actor line from Ray's core worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyena_platform.demo.jobs import build_jobs
from hyena_platform.demo.run import VCF


def jobs(tmp_path: Path, quick: bool):
    return build_jobs(tmp_path, genes_bed=tmp_path / "genes.bed", regions_bed=tmp_path / "regions.bed", vcf=VCF,
                      quick=quick)


def test_the_demo_fine_tunes_the_gene_task_beside_the_recipes_baseline(tmp_path):
    import yaml

    recipe = yaml.safe_load((Path(__file__).resolve().parents[1] / "jobs" / "finetune_genes.yaml").read_text())
    fine = jobs(tmp_path, quick=False).finetune
    assert fine.task.type == recipe["task"]["type"] and fine.data.strand_labels
    assert (fine.data.train_chroms, fine.data.test_chroms) == (("chrI",), ("chrII",))
    assert fine.baseline.enabled and fine.baseline.max_k == recipe["baseline"]["max_k"]
    assert fine.baseline.context == recipe["baseline"]["context"]
    # Both strands (the model and so its baseline), the recipe's windows, both cores.
    assert fine.task.strands == "both" and fine.data.window == recipe["data"]["window"]
    assert fine.train.precision == "bf16" and fine.scaling.num_workers == 2


def test_the_gene_head_is_scored_as_trained_and_log_p_in_float32(tmp_path):
    built = jobs(tmp_path, quick=False)
    assert built.score_genes.compute.precision == "bf16" and built.score_lm.compute.precision == "fp32"
    # One window per base beyond the first: a stride of three quarters of the window.
    assert built.score_lm.window.stride * 4 == built.score_lm.window.size * 3


def test_quick_pretrains_on_one_worker_with_the_length_warm_up(tmp_path):
    full, quick = jobs(tmp_path, quick=False), jobs(tmp_path, quick=True)
    assert quick.pretrain.scaling.num_workers == 1 and full.pretrain.scaling.num_workers == 2
    assert quick.pretrain.train.start_length < quick.pretrain.train.target_length  # still a warm-up
    assert quick.finetune.baseline.max_train_positions <= 2000
    assert quick.finetune.scaling.num_workers == 1 and quick.finetune.task.strands == "both"


def test_local_actor_pools_do_not_restart(monkeypatch):
    from hyena_platform.ray_setup import actor_pool_options, on_cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert actor_pool_options(None) == {"max_restarts": 0} and not on_cluster(None)
    assert actor_pool_options("10.0.0.5:6379") == {} and on_cluster("auto")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert actor_pool_options(None) == {}


@pytest.mark.parametrize("quick", [False, True])
def test_every_batch_job_runs_on_the_local_ray(tmp_path, quick):
    built = jobs(tmp_path, quick)
    assert all(job.address is None for job in (built.score_lm, built.score_genes, built.vep, built.embed))
