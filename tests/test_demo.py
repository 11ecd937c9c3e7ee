"""`hyena demo` at reduced size (a few training steps), end to end on the session's local Ray:
the registered version, the chrII track, the pictures, the summary, and reuse on a rerun."""

import json

import pytest

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(ray_cluster, tmp_path_factory):
    from hyena_platform.demo import run_demo

    workdir = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    result = run_demo(workdir, quick=True, echo=lines.append)
    return workdir, result, lines


def test_registered_version_with_alias_and_tags(demo):
    from hyena_platform import tracking

    workdir, result, _ = demo
    info = tracking.model_version("models:/hyena-demo@candidate", tracking_uri=result.tracking_uri)
    assert int(info.version) == result.pretrain.model_version
    assert result.pretrain.run_id
    # The warm-up ran every stage 64 -> 1024 and validated each on chrII.
    assert [s.length for s in result.pretrain.stages] == [64, 128, 256, 512, 1024]
    assert all(s.val_loss is not None and s.baselines for s in result.pretrain.stages)


def test_track_covers_chromosome_two(demo):
    import pyBigWig

    workdir, result, _ = demo
    manifest = json.loads(result.score.manifest.read_text())
    assert manifest["status"] == "complete"
    chrom = next(c for c in result.score.chromosomes if c["name"] == "chrII")
    assert chrom["bases"] == 1_072_315
    bw = pyBigWig.open(str(result.score.track))
    try:
        assert bw.chroms() == {"chrII": 1_072_315}
        values = bw.values("chrII", 300_000, 300_100)
        assert all(v < 0 for v in values)  # log-probabilities
    finally:
        bw.close()


def test_pictures_are_png_files_logged_to_mlflow(demo):
    from hyena_platform import tracking

    workdir, result, _ = demo
    assert set(result.pictures) == {"loss curve", "score track"}
    for path in result.pictures.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    client = tracking.client(result.tracking_uri)
    names = {a.path for a in client.list_artifacts(result.pretrain.run_id, "plots")}
    assert names == {"plots/loss.png", "plots/track.png"}


def test_summary_names_every_output(demo):
    workdir, result, lines = demo
    summary = (workdir / "summary.txt").read_text()
    for needle in ("k=1 ppl", "models:/hyena-demo@candidate", "log_prob.bw", "loss.png", "track.png",
                   "mlflow ui --backend-store-uri sqlite:///"):
        assert needle in summary, needle
    assert any(line.startswith("[1/3]") for line in lines) and any("step" in line for line in lines)


def test_rerun_reuses_training_and_scores(demo):
    from hyena_platform.demo import run_demo

    workdir, first, _ = demo
    again = run_demo(workdir, quick=True, echo=lambda line: None)
    assert again.pretrain.reused and again.pretrain.model_version == first.pretrain.model_version
    assert again.score.bases_scored == 0 and again.score.chunks_scored == 0
