"""One laptop recipe: jobs/pretrain_local.yaml and `hyena demo` train exactly
hyena_platform.train.recipe.LAPTOP_RECIPE (the runs behind it are in docs/training.md)."""

from __future__ import annotations

from pathlib import Path

from hyena_platform.train.recipe import laptop_recipe

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("model", "data", "train", "scaling")


def recipe_job():
    from hyena_platform.train.config import job_from_mapping

    return job_from_mapping(laptop_recipe(), source="LAPTOP_RECIPE")


def test_pretrain_local_yaml_is_the_recipe():
    from hyena_platform.train.config import load_job

    job, recipe = load_job(REPO / "jobs" / "pretrain_local.yaml"), recipe_job()
    for name in SECTIONS:
        assert getattr(job, name) == getattr(recipe, name), f"jobs/pretrain_local.yaml {name}: differs from LAPTOP_RECIPE"


def test_the_demo_pretrains_the_recipe_on_the_bundled_genome(tmp_path):
    from hyena_platform.demo.jobs import build_jobs
    from hyena_platform.demo.run import VCF

    pre = build_jobs(tmp_path, genes_bed=tmp_path / "genes.bed", regions_bed=tmp_path / "regions.bed", vcf=VCF).pretrain
    recipe = recipe_job()
    assert pre.model == recipe.model and pre.train == recipe.train and pre.scaling == recipe.scaling
    assert pre.data.reverse_complement and pre.data.valid_chroms == ["chrII"] and pre.data.uses_bundled_genome


def test_the_recipe_is_the_released_tiny_architecture_and_fits_two_cores():
    job = recipe_job()
    cfg = job.model.hyena_config()
    assert (cfg.d_model, cfg.n_layer, cfg.embed_dropout) == (128, 2, 0.0)
    stages = job.stages(cfg.l_max)
    assert [s.length for s in stages] == [64, 128, 256, 512, 1024] and stages[-1].end_step == job.train.steps
    assert job.scaling.num_workers * job.scaling.cpus_per_worker < 2  # a CPU left for Ray Data
    # 600 steps cost the CPU time of 400 float32 steps only with bf16 matrix products (1.55x less CPU per
    # step, docs/training.md): the step count and the precision go together.
    assert (job.train.steps, job.train.precision) == (600, "bf16")
