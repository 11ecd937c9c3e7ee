"""Scoring end to end on a real local Ray, with the model from a real MLflow registry (SQLite in
tmp_path): the held-out chromosome II of the bundled genome (1,072,315 bp), coverage, the
exactness sample, the MLflow run, the bigWig, resuming after a real SIGKILL bit for bit, the
reverse strand with a bedGraph, and a second config refused then overwritten.

Kept small for a 2-core machine: a random d_model-16 model (l_max 258), window 256, stride 192.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

import hyena
from hyena.tokenizer import SEP, Tokenizer, reverse_complement_ids

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

REPO = Path(__file__).resolve().parents[1]
CHRII = 1_072_315
W, S = 256, 192
MODEL_NAME = "hyena-score-test"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A tiny random model registered as models:/hyena-score-test@candidate in SQLite MLflow."""
    from hyena_platform import tracking

    tmp = tmp_path_factory.mktemp("registry")
    torch.manual_seed(0)
    model = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig(d_model=16, n_layer=2, l_max=W + 2)).eval()
    model.save_pretrained(tmp / "model")
    cfg = tracking.TrackingConfig(uri=f"sqlite:///{tmp}/mlflow.db", experiment="hyena-pretrain",
                                  register_as=MODEL_NAME, alias="candidate").resolved()
    run_id = tracking.start_run(cfg, run_key="test-pretrain", run_name="pretrain")
    version = tracking.register_model_dir(cfg, run_id, tmp / "model")
    tracking.end_run(cfg, run_id)
    return SimpleNamespace(tmp=tmp, uri=cfg.uri, model=model, version=version)


def job_mapping(registry, out: Path, **sections) -> dict:
    base = {
        "model": {"uri": f"models:/{MODEL_NAME}@candidate"},
        "target": {"regions": ["chrII"]},
        "window": {"size": W, "stride": S, "probabilities": True},
        "compute": {"replicas": 2, "cpus_per_replica": 0.75, "batch_size": 16, "writers": 1,
                    "cpus_per_writer": 0.25},
        "output": {"path": str(out), "chunk_size": 65536, "track": "log_prob", "track_format": "bigwig",
                   "bin_size": 10000},
        "tracking": {"uri": registry.uri, "experiment": "hyena-score"},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return base


def score(registry, out: Path, **sections):
    from hyena_platform.score import job_from_mapping, run_score

    return run_score(job_from_mapping(job_mapping(registry, out, **sections)))


@pytest.fixture(scope="module")
def chrII(ray_cluster, registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("scores") / "chrII"
    t0 = time.perf_counter()
    result = score(registry, out)
    print(f"\nchrII scored in {time.perf_counter() - t0:.1f} s: {result.timings}")
    return result


@pytest.fixture(scope="module")
def sequence(bundled_genome) -> dict[str, np.ndarray]:
    """chrII's token ids, read independently of the platform (pyfaidx + Tokenizer)."""
    import pyfaidx

    fa = pyfaidx.Fasta(str(bundled_genome), as_raw=True)
    return {"chrII": np.asarray(Tokenizer().encode(str(fa["chrII"][:])), dtype=np.uint8)}


def read_scores(out: Path):
    import pyarrow.dataset as pads

    return pads.dataset(out / "scores", format="parquet", partitioning="hive").to_table().sort_by("pos")


def test_chrII_end_to_end_coverage(chrII, sequence):
    import json

    manifest = json.loads(chrII.manifest.read_text())
    assert manifest["status"] == "complete"
    assert manifest["model"]["resolved_uri"] == f"models:/{MODEL_NAME}/1"
    (chrom,) = manifest["chromosomes"]
    assert chrom["name"] == "chrII" and chrom["bases"] == chrom["length"] == CHRII
    assert chrom["coverage"] == 1.0
    assert chrII.chunks_total == chrII.chunks_scored == 17
    table = read_scores(chrII.output)
    assert table.num_rows == CHRII
    np.testing.assert_array_equal(table["pos"].to_numpy(), np.arange(CHRII))  # each position once
    assert set(table["chrom"].to_pylist()) == {"chrII"}
    ref = np.array(table["ref"].to_pylist())
    assert "".join(ref[:50]) == "".join("ACGTN"[i - 7] for i in sequence["chrII"][:50])
    is_n = sequence["chrII"] == 11
    assert chrom["n_bases"] == int(is_n.sum())
    for name in ("log_prob", "entropy", "p_a", "p_t"):
        np.testing.assert_array_equal(table[name].is_null().to_numpy(zero_copy_only=False), is_n)
    lp = table["log_prob"].to_numpy(zero_copy_only=False)
    assert np.all(lp[~is_n] <= 0) and np.isfinite(lp[~is_n]).all()
    assert abs(chrom["mean_log_likelihood"] - float(np.nanmean(lp.astype(np.float64)))) < 1e-9


def test_sampled_positions_equal_a_direct_forward_over_their_exact_context(chrII, registry, sequence):
    from hyena_platform.score.tiling import tile

    table = read_scores(chrII.output)
    lp = table["log_prob"].to_numpy(zero_copy_only=False)
    x = sequence["chrII"]
    stream = np.concatenate([[SEP], x]).astype(np.int64)
    rng = np.random.default_rng(7)
    sample = {0, 1, 255, 256, 65535, 65536, 65537, CHRII - 1, *rng.integers(0, CHRII, 24).tolist()}
    checked = 0
    for p in sorted(sample):
        if x[p] == 11:
            continue
        c0 = p // 65536 * 65536
        blocks = tile(c0, min(c0 + 65536, CHRII), W, S)
        a = int(blocks[(blocks[:, 0] <= p) & (p < blocks[:, 1])][0, 2])
        assert a == 0 or p - a + 1 >= W - S  # the context guarantee, checked independently
        with torch.inference_mode():
            logits = registry.model(torch.from_numpy(stream[a: p + 1])[None]).logits.float()
        direct = torch.log_softmax(logits[0, -1], -1)[int(x[p])].item()
        assert abs(lp[p] - direct) <= 1e-5, (p, lp[p], direct)
        checked += 1
    assert checked >= 25


def test_mlflow_scoring_run_is_linked_to_the_model_version(chrII, registry):
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    run = c.get_run(chrII.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["hyena.model_name"] == MODEL_NAME
    assert run.data.tags["hyena.model_version"] == "1"
    metrics = run.data.metrics
    mll = chrII.chromosomes[0]["mean_log_likelihood"]
    assert metrics["mean_log_likelihood.chrII"] == pytest.approx(mll)
    assert metrics["perplexity.chrII"] == pytest.approx(np.exp(-mll))
    assert metrics["bases_per_s"] > 0 and metrics["model_s"] > 0
    assert {a.path for a in c.list_artifacts(chrII.run_id)} >= {"_manifest.json", "bins.parquet"}
    version = c.get_model_version(MODEL_NAME, "1")
    assert version.tags[f"hyena.scoring_run.{chrII.run_id}"] == str(chrII.output)


def test_bigwig_track_and_bins_match_the_parquet_scores(chrII):
    import pyarrow.parquet as pq
    import pyBigWig

    lp = read_scores(chrII.output)["log_prob"].to_numpy(zero_copy_only=False)
    bw = pyBigWig.open(str(chrII.track))
    assert bw.isBigWig() and bw.chroms() == {"chrII": CHRII}
    for start, end in ((0, 1000), (65000, 67000), (CHRII - 500, CHRII)):
        np.testing.assert_array_equal(np.array(bw.values("chrII", start, end), np.float32), lp[start:end])
    assert bw.stats("chrII", type="mean", exact=True)[0] == pytest.approx(float(np.nanmean(lp)), rel=1e-5)
    bw.close()
    bins = pq.read_table(chrII.bins).to_pydict()
    assert len(bins["start"]) == (CHRII + 9999) // 10000
    assert bins["mean_log_prob"][3] == pytest.approx(float(np.nanmean(lp[30000:40000].astype(np.float64))))
    assert sum(bins["bases"]) == CHRII


def test_rerun_resumes_with_nothing_to_do(chrII, registry):
    files = sorted((chrII.output / "scores").rglob("*.parquet"))
    before = {f: f.read_bytes() for f in files}
    again = score(registry, chrII.output)
    assert again.chunks_scored == 0 and again.run_id == chrII.run_id
    assert {f: f.read_bytes() for f in files} == before


def test_killed_run_resumes_to_the_same_bytes(chrII, registry, ray_cluster, tmp_path):
    out = tmp_path / "killed"
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(job_mapping(registry, out)))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, "-m", "hyena_platform.cli", "score", str(job)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("scores/*/*.parquet"))) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)  # the scoring driver, mid-run
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    import json

    written = len(list(out.glob("scores/*/*.parquet")))
    assert 3 <= written < 17
    assert json.loads((out / "_manifest.json").read_text())["status"] == "running"
    resumed = score(registry, out, compute={"replicas": 1})  # replicas do not change the scores
    assert resumed.chunks_scored == 17 - written
    manifest = json.loads(resumed.manifest.read_text())
    assert [a["status"] for a in manifest["attempts"]] == ["running", "complete"]
    reference = sorted(p.relative_to(chrII.output) for p in (chrII.output / "scores").rglob("*.parquet"))
    assert sorted(p.relative_to(out) for p in (out / "scores").rglob("*.parquet")) == reference
    for rel in reference:
        assert (out / rel).read_bytes() == (chrII.output / rel).read_bytes(), rel
    assert resumed.track.read_bytes() == chrII.track.read_bytes()
    assert resumed.bins.read_bytes() == chrII.bins.read_bytes()


def test_reverse_strand_regions_from_bed_with_bedgraph(ray_cluster, registry, sequence, tmp_path):
    bed = tmp_path / "regions.bed"
    bed.write_text("track name=test\nchrII\t1060000\t1072315\tend\nchrII\t40000\t52000\tmiddle\n")
    out = tmp_path / "rc"
    result = score(registry, out, target={"regions": [], "bed": str(bed)}, compute={"replicas": 1},
                   window={"reverse_strand": True, "probabilities": False},
                   output={"track": "log_prob_mean", "track_format": "bedgraph", "chunk_size": 8192})
    table = read_scores(out)
    pos = table["pos"].to_numpy()
    np.testing.assert_array_equal(pos, np.concatenate([np.arange(40000, 52000), np.arange(1060000, CHRII)]))
    x = sequence["chrII"]
    rc = reverse_complement_ids(x)
    rc_stream = np.concatenate([[SEP], rc]).astype(np.int64)
    lp_rc = dict(zip(pos.tolist(), table["log_prob_rc"].to_numpy(zero_copy_only=False).tolist()))
    from hyena_platform.score.tiling import rc_interval, tile

    for p in (40000, 45123, 51999, 1060000, 1066001, CHRII - 2, CHRII - 1):
        if x[p] == 11:
            continue
        start, end = (40000, 52000) if p < 52000 else (1060000, CHRII)  # the BED region of p
        c0 = p // 8192 * 8192  # its chunk: the region cut at multiples of 8192
        r0, r1 = rc_interval(max(c0, start), min(c0 + 8192, end), CHRII)
        q = CHRII - 1 - p
        blocks = tile(r0, r1, W, S)
        a = int(blocks[(blocks[:, 0] <= q) & (q < blocks[:, 1])][0, 2])
        with torch.inference_mode():
            logits = registry.model(torch.from_numpy(rc_stream[a: q + 1])[None]).logits.float()
        direct = torch.log_softmax(logits[0, -1], -1)[int(rc[q])].item()
        assert abs(lp_rc[p] - direct) <= 1e-5, p
    # the bedGraph holds the two-strand mean at every non-N scored position
    lines = [line.split("\t") for line in result.track.read_text().splitlines()[1:]]
    assert result.track.name == "log_prob_mean.bedGraph"
    mean = table["log_prob_mean"].to_numpy(zero_copy_only=False)
    ok = ~np.isnan(mean)
    assert len(lines) == int(ok.sum())
    got = np.array([float(v) for *_, v in lines])
    np.testing.assert_allclose(got, mean[ok], rtol=1e-5)
    assert [int(s) for _, s, _, _ in lines[:2]] == [40000, 40001]

    # the same directory with another config is refused before any work; --overwrite replaces it
    from hyena_platform.errors import InputError

    mtime = (out / "_manifest.json").stat().st_mtime_ns
    with pytest.raises(InputError, match="different model or config"):
        score(registry, out, target={"regions": ["chrII:40000-41000"]})
    assert (out / "_manifest.json").stat().st_mtime_ns == mtime
    replaced = score(registry, out, target={"regions": ["chrII:40000-41000"]}, compute={"replicas": 1},
                     output={"overwrite": True})
    assert read_scores(out).num_rows == 1000 and replaced.chunks_scored == 1


def test_an_actor_pool_larger_than_the_cluster_is_refused(ray_cluster, registry, tmp_path):
    from hyena_platform.errors import ConfigError

    with pytest.raises(ConfigError, match=r"= 3\.25 CPUs, but the Ray cluster has 2"):
        score(registry, tmp_path / "big", compute={"replicas": 3, "cpus_per_replica": 1.0})
    assert not list((tmp_path / "big").glob("scores/*/*.parquet"))


@pytest.mark.parametrize("uri", [f"models:/{MODEL_NAME}@nope", f"models:/{MODEL_NAME}/7", "models:/nobody@candidate"])
def test_unknown_registered_models_are_one_line_errors_before_work(registry, tmp_path, uri):
    from hyena_platform.errors import InputError

    with pytest.raises(InputError, match="not found in the model registry") as info:
        score(registry, tmp_path / "out", model={"uri": uri})
    assert "\n" not in str(info.value) and uri in str(info.value)
    assert not (tmp_path / "out").exists()


def independent_kmer_log2(train: np.ndarray, x: np.ndarray, positions: np.ndarray, order: int) -> np.ndarray:
    """log2 P_kmer of x[p] given up to `order` bases before p on the chromosome, from counts of
    `train` made here with sliding windows (additive smoothing 1 over the 5 symbols A C G T N)."""
    from numpy.lib.stride_tricks import sliding_window_view

    sym, xs = train.astype(np.int64) - 7, x.astype(np.int64) - 7
    tables = []
    for j in range(order + 1):
        w = sliding_window_view(sym, j + 1)
        ctx = (w[:, :j] * 5 ** np.arange(j - 1, -1, -1)).sum(axis=1) if j else np.zeros(len(w), np.int64)
        counts = np.bincount(ctx * 5 + w[:, j], minlength=5 ** (j + 1)).reshape(-1, 5).astype(np.float64)
        tables.append(np.log2((counts + 1) / (counts.sum(axis=1, keepdims=True) + 5)))
    out = []
    for p in positions:
        j = min(order, int(p))
        ctx = int((xs[p - j:p] * 5 ** np.arange(j - 1, -1, -1)).sum()) if j else 0
        out.append(tables[j][ctx, xs[p]])
    return np.array(out)


def test_bits_saved_is_model_minus_kmer_log2_and_a_run_without_it_is_unchanged(
        ray_cluster, registry, sequence, bundled_genome, tmp_path):
    import json

    import pyfaidx
    import pyBigWig

    from hyena_platform.score.tiling import tile

    regions = {"target": {"regions": ["chrII:0-2000", "chrII:100000-102000"]}}
    with_bits = score(registry, tmp_path / "bits", **regions, baseline={"bits_saved": True, "order": 3,
                                                                        "fit_on": ["chrI"]})
    plain = score(registry, tmp_path / "plain", **regions)
    table, base = read_scores(with_bits.output), read_scores(plain.output)
    # Without the switch: the same columns as ever, the same scores, no baseline in the identity.
    assert base.column_names == ["pos", "ref", "log_prob", "entropy", "p_a", "p_c", "p_g", "p_t", "chrom"]
    assert table.column_names == base.column_names[:-1] + ["bits_saved", "chrom"]
    np.testing.assert_array_equal(table["log_prob"].to_numpy(), base["log_prob"].to_numpy())
    assert "baseline" not in json.loads(plain.manifest.read_text())["identity"]

    pos = table["pos"].to_numpy()
    x = sequence["chrII"]
    chrI = np.asarray(Tokenizer().encode(str(pyfaidx.Fasta(str(bundled_genome), as_raw=True)["chrI"][:])),
                      dtype=np.uint8)
    kmer = independent_kmer_log2(chrI, x, pos, 3)
    lp = table["log_prob"].to_numpy().astype(np.float64)
    np.testing.assert_allclose(table["bits_saved"].to_numpy(), lp / np.log(2) - kmer, rtol=0, atol=2e-5)
    # ... and the model's log P there is a direct forward over each base's exact context.
    stream = np.concatenate([[SEP], x]).astype(np.int64)
    for i in (0, 1, 5, 1999, 2000, 2500, 3999):
        p, c0 = int(pos[i]), (0 if pos[i] < 2000 else 100_000)
        blocks = tile(c0, c0 + 2000, W, S)
        a = int(blocks[(blocks[:, 0] <= p) & (p < blocks[:, 1])][0, 2])
        with torch.inference_mode():
            logits = registry.model(torch.from_numpy(stream[a: p + 1])[None]).logits.float()
        direct = torch.log_softmax(logits[0, -1], -1)[int(x[p])].item() / np.log(2)
        assert abs(table["bits_saved"][i].as_py() - (direct - kmer[i])) <= 2e-5, (p,)

    manifest = json.loads(with_bits.manifest.read_text())
    assert manifest["baseline"]["order"] == 3 and manifest["baseline"]["fit_on"] == ["chrI"]
    assert manifest["baseline"]["fit_bases"] == len(chrI) and manifest["identity"]["baseline"]["order"] == 3
    (chrom,) = manifest["chromosomes"]
    assert chrom["mean_bits_saved"] == pytest.approx(float(np.mean(lp / np.log(2) - kmer)), abs=1e-4)
    bw = pyBigWig.open(str(with_bits.tracks["bits_saved"]))
    try:
        np.testing.assert_allclose(bw.values("chrII", 100_000, 100_050), table["bits_saved"].to_numpy()[2000:2050],
                                   rtol=0, atol=1e-6)
    finally:
        bw.close()
    from mlflow import MlflowClient

    params = MlflowClient(tracking_uri=registry.uri).get_run(with_bits.run_id).data.params
    assert params["baseline.resolved_order"] == "3" and params["baseline.resolved_fit_on"] == "chrI"
