"""`hyena vep` end to end on the session's real local Ray, with the model from a real MLflow
registry (SQLite in tmp_path): the real V. cholerae variants of tests/assets/vep against the
bundled N16961 reference, scores checked against a direct computation, the Parquet and the
bgzip + tabix VCF in input order, the MLflow run's lineage, resuming a lost chunk bit for bit,
and another config refused in the same directory.

Kept small for a 2-core machine: a random d_model-16 model (l_max 114: flank 48, max_allele 16).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyfaidx
import pysam
import pytest
import torch

import hyena
from hyena_platform.errors import InputError
from test_vep_scorer import direct

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
VCF = REPO / "tests/assets/vep/o395_vs_n16961_chrII.vcf"
FLANK, MAX_ALLELE = 48, 16
MODEL_NAME = "hyena-vep-test"
COLUMNS = ["record", "alt_index", "chrom", "pos", "id", "ref", "alt", "score_fwd", "score_rc", "score",
           "ref_match", "reason", "norm_pos", "norm_ref", "norm_alt", "context_left", "context_right",
           "info.STRAINS"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from hyena_platform import tracking

    tmp = tmp_path_factory.mktemp("vep-registry")
    torch.manual_seed(0)
    model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2,
                                                        l_max=2 * FLANK + MAX_ALLELE + 2)).eval()
    model.save_pretrained(tmp / "model")
    cfg = tracking.TrackingConfig(uri=f"sqlite:///{tmp}/mlflow.db", experiment="hyena-pretrain",
                                  register_as=MODEL_NAME, alias="candidate").resolved()
    run_id = tracking.start_run(cfg, run_key="test-pretrain", run_name="pretrain")
    tracking.register_model_dir(cfg, run_id, tmp / "model")
    tracking.end_run(cfg, run_id)
    return SimpleNamespace(tmp=tmp, uri=cfg.uri, model=model)


def job(registry, out: Path, **sections):
    from hyena_platform.vep import job_from_mapping

    return job_from_mapping(job_dict(registry, out, **sections))


def job_dict(registry, out: Path, **sections) -> dict:
    base = {
        "model": {"uri": f"models:/{MODEL_NAME}@candidate"},
        "vcf": {"path": str(VCF), "info_fields": ["STRAINS"]},
        "window": {"max_allele": MAX_ALLELE},
        "compute": {"replicas": 1, "cpus_per_replica": 0.75, "batch_size": 32, "writers": 1, "cpus_per_writer": 0.25},
        "output": {"path": str(out), "chunk_size": 30},
        "tracking": {"uri": registry.uri},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return base


@pytest.fixture(scope="module")
def result(ray_cluster, registry, tmp_path_factory):
    from hyena_platform.vep import run_vep

    return run_vep(job(registry, tmp_path_factory.mktemp("vep") / "out"))


def table(result):
    from hyena_platform.vep.output import read_results

    return read_results(result.output).to_pylist()


def test_parquet_holds_every_alt_in_input_order(result):
    rows = table(result)
    assert list(rows[0]) == COLUMNS
    assert len(rows) == 84 and result.rows == 84 and result.scored == 79
    assert [(r["record"], r["alt_index"]) for r in rows] == sorted((r["record"], r["alt_index"]) for r in rows)
    with pysam.VariantFile(str(VCF)) as vin:
        expected = [(rec.pos, rec.id, alt) for rec in vin for alt in (rec.alts or (None,))]
    assert [(r["pos"], r["id"], r["alt"]) for r in rows] == expected
    assert result.reasons == {"symbolic": 1, "breakend": 1, "star": 1, "missing_alt": 1, "ref_mismatch": 1}
    by_id = {(r["id"], r["alt_index"]): r for r in rows}
    assert by_id[("hand_ref_mismatch", 0)]["ref_match"] is False
    assert by_id[("v11", 0)]["info.STRAINS"] == "Inaba,O395" and by_id[("v11", 1)]["norm_alt"] == "TG"
    assert by_id[("hand_contig_start", 0)]["context_left"] == 0
    assert by_id[("hand_contig_end", 0)]["context_right"] == 0
    assert all((r["score"] is None) == (r["reason"] is not None) for r in rows)


def test_scores_match_a_direct_computation_with_the_library(result, registry, bundled_genome):
    chrii = str(pyfaidx.Fasta(str(bundled_genome))["chrII"][:]).upper()
    rows = {r["id"]: r for r in table(result) if r["alt_index"] == 0}
    for ident in ("v2", "v5", "hand_contig_start", "hand_contig_end"):  # SNVs, MNV, contig edges
        r = rows[ident]
        fwd, rc = direct(registry.model, chrii, r["norm_pos"], r["norm_ref"], r["norm_alt"], FLANK)
        assert r["score_fwd"] == pytest.approx(fwd, abs=1e-3) and r["score_rc"] == pytest.approx(rc, abs=1e-3)
    indels = [r for r in rows.values() if r["reason"] is None and len(r["norm_ref"]) != len(r["norm_alt"])][:3]
    assert len(indels) == 3
    for r in indels:
        fwd, rc = direct(registry.model, chrii, r["norm_pos"], r["norm_ref"], r["norm_alt"], FLANK)
        assert r["score"] == pytest.approx((fwd + rc) / 2, abs=1e-3), r["id"]


def test_vcf_is_bgzipped_tabix_indexed_in_input_order_with_scores(result):
    rows = table(result)
    assert result.vcf.name == "variants.vcf.gz" and result.index.name == "variants.vcf.gz.tbi"
    with pysam.VariantFile(str(VCF)) as vin, pysam.VariantFile(str(result.vcf)) as vout:
        assert "STRAINS" in vout.header.info and "HYENA_VEP" in vout.header.info
        pairs = list(zip(vin, vout))
        assert len(pairs) == 82 and len(list(pysam.VariantFile(str(result.vcf)))) == 82
        for a, b in pairs:
            assert (a.chrom, a.pos, a.id, a.ref, a.alts) == (b.chrom, b.pos, b.id, b.ref, b.alts)
            assert dict(a.info) == {k: v for k, v in b.info.items() if not k.startswith("HYENA_")}
    out = {(rec.id): rec for rec in pysam.VariantFile(str(result.vcf))}
    v11 = [r for r in rows if r["id"] == "v11"]
    assert out["v11"].info["HYENA_VEP"] == pytest.approx([r["score"] for r in v11], abs=1e-5)
    assert out["v11"].info["HYENA_VEP_RC"] == pytest.approx([r["score_rc"] for r in v11], abs=1e-5)
    assert out["hand_star"].info["HYENA_VEP_SKIP"] == ("star",) and "HYENA_VEP" not in out["hand_star"].info
    assert out["hand_ref_mismatch"].info["HYENA_REF_MISMATCH"] is True
    assert "HYENA_REF_MISMATCH" not in out["v2"].info
    with pysam.TabixFile(str(result.vcf)) as tbx:  # the index answers region queries
        hits = [line.split("\t")[2] for line in tbx.fetch("chrII", 95_000, 95_500)]
    assert hits == ["v7", "v8", "v9", "v10", "v11", "v12"]


def test_manifest_and_mlflow_run_carry_the_model_lineage(result, registry):
    import json

    from mlflow import MlflowClient

    manifest = json.loads(result.manifest.read_text())
    assert manifest["format"] == "hyena-vep" and manifest["status"] == "complete"
    assert manifest["counts"]["scored"] == 79 and manifest["window"]["flank"] == FLANK
    assert manifest["model"]["resolved_uri"] == f"models:/{MODEL_NAME}/1"
    c = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    run = c.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["hyena.job"] == "vep"
    assert run.data.tags["hyena.model_name"] == MODEL_NAME and run.data.tags["hyena.model_version"] == "1"
    assert run.data.metrics["variants_scored"] == 79 and run.data.metrics["skipped.star"] == 1
    assert c.get_model_version(MODEL_NAME, "1").tags[f"hyena.vep_run.{result.run_id}"] == str(result.output)


def test_a_lost_chunk_is_rescored_bit_for_bit_and_other_configs_are_refused(result, registry):
    from hyena_platform.vep import run_vep

    before = table(result)
    (result.output / "variants" / "part-000001.parquet").unlink()
    again = run_vep(job(registry, result.output))
    assert again.chunks_scored == 1 and again.chunks_total == 3
    assert table(again) == before
    assert again.run_id == result.run_id  # the same MLflow run, reopened
    with pytest.raises(InputError, match="holds results of a different model or config"):
        run_vep(job(registry, result.output, window={"flank": 20}))
    assert table(again) == before


def test_cli_on_a_finished_job_resumes_and_rewrites_the_vcf(result, registry, tmp_path, capsys):
    import yaml

    from hyena_platform.cli import main

    path = tmp_path / "vep.yaml"
    path.write_text(yaml.safe_dump(job_dict(registry, result.output)))
    assert main(["vep", str(path)]) == 0
    out = capsys.readouterr().out
    assert "82 records, 84 ALT alleles: 79 scored, skipped: breakend 1, missing_alt 1, ref_mismatch 1" in out
    assert "every chunk was already scored" in out and "variants.vcf.gz  (+ variants.vcf.gz.tbi)" in out
