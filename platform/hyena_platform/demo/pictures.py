"""The demo's pictures (matplotlib, hyena_platform.plots): the loss curve with the k-mer
baselines, a genome-browser panel over a stretch of chrII, the gene head's confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hyena_platform.demo.jobs import TRACK_REGION


def loss_curve(workdir: Path, pre) -> Path:
    from hyena_platform import tracking
    from hyena_platform.plots import plot_training

    cfg = tracking.TrackingConfig(uri=pre.tracking_uri, experiment=pre.experiment).resolved()
    train = tracking.metric_history(cfg, pre.run_id, "train/loss")
    val = tracking.metric_history(cfg, pre.run_id, "val/loss")
    starts, step = [], 0
    for stage in pre.stages:
        starts.append((step, stage.length))
        step = stage.end_step
    last = pre.stages[-1] if pre.stages else None
    baselines = {f"k={k} Markov": bits * np.log(2) for k, bits in (last.baselines if last else {}).items()}
    return plot_training(workdir / "plots" / "loss.png", train=train, val=val, stage_starts=starts,
                         baselines=baselines, title=f"{pre.model_name} v{pre.model_version}: loss by step")


def region_columns(scores_dir: Path, columns: list[str], region: tuple[str, int, int] = TRACK_REGION):
    """(positions, {column: values}) of a region of a scoring output, in position order."""
    import pyarrow.dataset as pads

    from hyena_platform.score.chunk_files import partition_dir

    chrom, start, end = region
    table = pads.dataset(str(partition_dir(scores_dir, chrom)), format="parquet").to_table(
        columns=["pos", *columns], filter=(pads.field("pos") >= start) & (pads.field("pos") < end)).sort_by("pos")
    return table.column("pos").to_numpy(), {c: table.column(c).to_numpy(zero_copy_only=False).astype(float)
                                            for c in columns}


def browser_panel(workdir: Path, lm_scores: Path, gene_scores: Path, genes, kmer_order: int) -> Path:
    """Gene calls, log P, bits saved over the k-mer chain, and the coding probability per strand
    over TRACK_REGION."""
    from hyena_platform.plots import plot_browser

    chrom, start, end = TRACK_REGION
    pos, lm = region_columns(lm_scores, ["log_prob", "bits_saved"])
    pos_g, coding = region_columns(gene_scores, ["p_CDS+", "p_CDS-"])
    assert np.array_equal(pos, pos_g), "both scorings cover the region base for base"
    calls = [(s, e, strand) for c, s, e, strand in genes if c == chrom and e > start and s < end]
    tracks = [
        ("log2 P(base)\n(bits)", {"language model": lm["log_prob"] / np.log(2)}, None),
        (f"bits saved over\norder-{kmer_order} k-mers", {"model - k-mer chain": lm["bits_saved"]}, None),
        ("P(coding)", {"CDS + strand": coding["p_CDS+"], "CDS - strand": coding["p_CDS-"]}, (0, 1)),
    ]
    return plot_browser(workdir / "plots" / "browser.png", chrom=chrom, positions=pos, genes=calls, tracks=tracks,
                        title=f"{chrom}:{start:,}-{end:,}: Prodigal genes and the models' per-base tracks")


def confusion(workdir: Path, matrix: np.ndarray, labels: tuple[str, ...], title: str) -> Path:
    from hyena_platform.plots import plot_confusion

    return plot_confusion(workdir / "plots" / "confusion.png", matrix, labels, title=title)
