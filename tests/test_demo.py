"""`hyena demo --quick` end to end on the session's local Ray (toy sizes): every step's outputs
exist and hold sensible values (registered versions with lineage, bigWig tracks over chrII, one
VEP row per ALT of the real VCF, embeddings, generated bases, pictures, the summary's numbers),
and a rerun reuses every finished step."""

import json
import warnings

import numpy as np
import pytest
from _quiet import fd2_captured, library_noise

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHRII = 1_072_315


@pytest.fixture(scope="module")
def demo(ray_cluster, tmp_path_factory):
    from ray.util.annotations import RayDeprecationWarning

    from hyena_platform.demo.run import run_demo

    workdir = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    with fd2_captured() as stderr, warnings.catch_warnings(record=True) as caught:
        # Ray's C++ core worker writes to fd 2; Ray shows its deprecation notices to users (once
        # per module): every one is recorded here.
        warnings.simplefilter("always", RayDeprecationWarning)
        result = run_demo(workdir, quick=True, echo=lines.append)
    notices = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, RayDeprecationWarning)]
    return workdir, result, lines + stderr[0].splitlines() + notices


def test_both_models_registered_with_lineage(demo):
    from hyena_platform import tracking

    _, result, _ = demo
    pre, fine = result.pretrain, result.finetune
    info = tracking.model_version("models:/hyena-demo@candidate", tracking_uri=result.tracking_uri)
    assert int(info.version) == pre.model_version and pre.run_id
    assert [s.length for s in pre.stages] == [64, 128, 256]  # the length warm-up, validated per stage
    assert all(s.val_loss is not None and s.baselines for s in pre.stages)
    genes = tracking.model_version("models:/hyena-demo-genes@candidate", tracking_uri=result.tracking_uri)
    assert int(genes.version) == fine.model_version
    assert genes.tags["base_model_name"] == "hyena-demo" and genes.tags["base_model_version"] == str(pre.model_version)
    assert genes.tags["base_model_run_id"] == pre.run_id
    assert json.loads(genes.tags["label_names"]) == list(result.labels) == ["noncoding", "CDS+", "CDS-"]
    assert fine.baseline_metrics["test"]["mcc"] is not None and "mcc" in fine.model_metrics["test"]
    assert genes.tags["strands"] == "both"  # the demo's head reads both strands (and so does its baseline)
    # Row by row on the bases the baseline scored: counts, no p-value (bases of a window are not
    # independent), the interval; the rerun reads it back.
    paired = fine.paired
    assert paired is not None and paired.metric == "mcc" and np.isnan(paired.mcnemar_p)
    assert 0 < paired.model_only + paired.baseline_only + paired.both_wrong <= paired.rows
    assert paired.low <= paired.high and abs(paired.difference) < 2


def test_tracks_are_bigwigs_over_chrII(demo):
    import pyBigWig

    _, result, _ = demo
    tracks = {**result.score.tracks, **result.score_genes.tracks}
    assert set(tracks) == {"log_prob", "bits_saved", "p_CDS+", "p_CDS-"}
    for column, path in tracks.items():
        bw = pyBigWig.open(str(path))
        try:
            assert bw.chroms() == {"chrII": CHRII}
            values = np.array(bw.values("chrII", 300_000, 305_000))  # the browser picture's region
            assert np.isfinite(values).all(), column
            if column == "log_prob":
                assert (values < 0).all()
            elif column.startswith("p_"):
                assert ((values >= 0) & (values <= 1)).all()
        finally:
            bw.close()
    manifest = json.loads(result.score.manifest.read_text())
    assert manifest["baseline"]["fit_on"] == ["chrI"] and manifest["baseline"]["order"] in (1, 2, 3)
    (chrom,) = result.score.chromosomes
    assert chrom["name"] == "chrII" and chrom["coverage"] == 1.0 and np.isfinite(chrom["mean_bits_saved"])


def test_vep_has_one_row_per_alt_of_every_vcf_record(demo):
    import pyarrow.dataset as pads

    from hyena_platform.demo.run import VCF

    _, result, _ = demo
    records = [line.split("\t") for line in VCF.read_text().splitlines() if not line.startswith("#")]
    table = pads.dataset(str(result.vep.parquet), format="parquet").to_table()
    assert len(set(table.column("record").to_pylist())) == len(records) == result.vep.records == 82
    assert table.num_rows == sum(len(r[4].split(",")) for r in records) == result.vep.rows
    scores = np.array([s for s in table.column("score").to_pylist() if s is not None])
    assert scores.size == result.vep.scored > 70 and np.isfinite(scores).all()


def test_embeddings_and_generated_bases(demo):
    _, result, _ = demo
    assert result.embedding_shape == (6, 32)  # 6 genes of chrII x d_model of the quick model
    assert -1 <= result.embedding_cosine <= 1
    gen = result.generated
    assert len(gen.bases) == 40 and set(gen.bases) <= set("ACGT")
    assert gen.path.read_text().splitlines()[1] == gen.bases
    assert np.isfinite(gen.mean_log_likelihood) and gen.mean_log_likelihood < 0


def test_pictures_are_png_files_logged_to_mlflow(demo):
    from hyena_platform import tracking

    _, result, _ = demo
    assert set(result.pictures) == {"loss curve", "genome browser", "confusion matrix"}
    for path in result.pictures.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    client = tracking.client(result.tracking_uri)
    for run_id in (result.pretrain.run_id, result.finetune.run_id, result.score.run_id):
        names = {a.path for a in client.list_artifacts(run_id, "plots")}
        assert names >= {"plots/loss.png", "plots/browser.png", "plots/confusion.png"}
    # The confusion matrix counts every scored base of the region once.
    assert result.confusion.shape == (3, 3) and result.confusion.sum() == result.score_genes.chromosomes[0]["scored_bases"]


def test_summary_names_each_number(demo):
    workdir, result, lines = demo
    summary = (workdir / "summary.txt").read_text()
    chrom = result.score.chromosomes[0]
    for needle in ("k=1 ppl", "perplexity", "models:/hyena-demo@candidate = models:/hyena-demo/",
                   "models:/hyena-demo-genes@candidate", "mcc*", "the bar to beat",
                   f"the head's MCC is {result.finetune.model_metrics['test']['mcc']:.4f}, the k-mer baseline's "
                   f"{result.finetune.baseline_metrics['test']['mcc']:.4f}",
                   f"{chrom['mean_bits_saved']:+.4f} bits per base", f"{chrom['perplexity']:.4f}",
                   f"{result.vep.scored} scored", f"mean cosine similarity between them {result.embedding_cosine:.4f}",
                   f"{result.generated.mean_log_likelihood:.4f} per base", "confusion.png", "browser.png",
                   "mlflow ui --backend-store-uri sqlite:///", "test, row by row: right only by the model",
                   f"MLFLOW_TRACKING_URI={result.tracking_uri} mlflow models serve -m models:/hyena-demo@candidate",
                   "--host 127.0.0.1"):
        assert needle in summary, needle
    # Our progress only: no line per pool actor from Ray's core worker (max_restarts with
    # constructor arguments in the object store), no library INFO or WARNING.
    paired = result.finetune.paired  # the verdict in words follows the paired interval, not the bare gap
    word = "beats" if paired.low > 0 else "is below" if paired.high < 0 else "is level (within the noise"
    assert f"the head {word}" in summary.replace("\n   ", " "), summary
    assert library_noise("\n".join(lines)) == [], lines
    assert [line[:5] for line in lines if line.startswith("[")] == [f"[{i}/7]" for i in range(1, 8)]
    assert any("step" in line for line in lines) and any("chunks]" in line for line in lines)


def test_rerun_reuses_every_step(demo):
    from hyena_platform.demo.run import run_demo

    workdir, first, _ = demo
    again = run_demo(workdir, quick=True, echo=lambda line: None)
    assert again.pretrain.reused and again.pretrain.model_version == first.pretrain.model_version
    assert again.finetune.reused and again.finetune.model_version == first.finetune.model_version
    assert again.finetune.paired == first.finetune.paired
    assert again.score.chunks_scored == again.score_genes.chunks_scored == 0
    assert again.vep.chunks_scored == 0 and again.embed.chunks_embedded == 0
    assert again.generated.bases == first.generated.bases  # seeded
