"""Pictures people would rather look at than read: the loss curve, a per-base score track, a
genome-browser panel (gene calls over stacked per-base tracks) and a confusion matrix.

matplotlib is imported inside each function with the non-interactive Agg backend, so importing
this module costs nothing and no display is ever needed. Files are written to a temporary name
and renamed, so a crash never leaves a truncated PNG behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _finish(plt, fig, ax, path: str | Path, *, xlabel: str, ylabel: str, title: str, legend: str) -> Path:
    """Labels, legend and grid; then the figure saved to `path` (atomically) and closed."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend, fontsize=8)
    ax.grid(alpha=0.3)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_training(
    path: str | Path,
    *,
    train: Sequence[tuple[int, float]],
    val: Sequence[tuple[int, float]],
    stage_starts: Sequence[tuple[int, int]],
    baselines: dict[str, float] | None = None,
    title: str = "HyenaDNA pretraining",
) -> Path:
    """Training and held-out loss (nats/token) by step, stage boundaries as labelled lines.

    `stage_starts` are (first step, sequence length) per stage; `baselines` maps a label (e.g.
    "k=5 Markov") to its held-out loss at the final stage, drawn as dotted horizontals.
    """
    plt = _figure()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if train:
        steps, losses = zip(*sorted(train))
        ax.plot(steps, losses, lw=1.0, color="tab:blue", alpha=0.8, label="train loss")
    if val:
        steps, losses = zip(*sorted(val))
        ax.plot(steps, losses, "o-", color="tab:red", ms=4, label="held-out loss (chrII)")
    top = ax.get_ylim()[1]
    for step, length in stage_starts:
        ax.axvline(step, color="0.6", lw=0.8, ls="--")
        ax.text(step, top, f" L={length}", va="top", ha="left", fontsize=8, color="0.35")
    for i, (label, value) in enumerate(sorted((baselines or {}).items())):
        ax.axhline(value, ls=":", lw=1.0, color=f"C{i + 2}", label=f"{label} (held-out)")
    return _finish(plt, fig, ax, path, xlabel="optimizer step", ylabel="cross-entropy (nats per base)",
                   title=title, legend="upper right")


def plot_track(
    path: str | Path,
    *,
    chrom: str,
    positions: np.ndarray,
    values: np.ndarray,
    label: str = "log P(ref base | upstream)",
    smooth: int = 50,
) -> Path:
    """Per-base score over a region, raw (light) and as a centred running mean of `smooth` bases.
    Null scores (N bases) are gaps."""
    plt = _figure()
    positions = np.asarray(positions)
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(positions, values, lw=0.4, color="0.7", label="per base")
    if smooth > 1 and values.size >= smooth:
        ax.plot(positions, running_mean(values, smooth), lw=1.2, color="tab:purple", label=f"mean of {smooth} bases")
    title = f"{label}, {chrom}:{int(positions[0]):,}-{int(positions[-1]) + 1:,}" if positions.size else label
    return _finish(plt, fig, ax, path, xlabel=f"{chrom} position (0-based)", ylabel=label, title=title,
                   legend="lower right")


def running_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Centred running mean over `width` bases; NaN (N bases) left out of each mean."""
    finite = np.isfinite(values)
    kernel = np.ones(width)
    sums = np.convolve(np.where(finite, values, 0.0), kernel, mode="same")
    counts = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def plot_browser(
    path: str | Path,
    *,
    chrom: str,
    positions: np.ndarray,
    genes: Sequence[tuple[int, int, str]],
    tracks: Sequence[tuple[str, dict[str, np.ndarray], tuple[float, float] | None]],
    smooth: int = 25,
    title: str = "",
) -> Path:
    """A genome-browser panel: the gene calls (start, end, strand) as arrows on the top row,
    then one row per track (label, {legend: per-base values}, y-limits or None), each drawn as
    a running mean of `smooth` bases, sharing the position axis."""
    plt = _figure()
    positions = np.asarray(positions)
    lo, hi = (int(positions[0]), int(positions[-1]) + 1) if positions.size else (0, 1)
    fig, axes = plt.subplots(len(tracks) + 1, 1, figsize=(11, 1.2 + 1.6 * len(tracks)), sharex=True,
                             gridspec_kw={"height_ratios": [0.6] + [1.0] * len(tracks)})
    ax = axes[0]
    for start, end, strand in genes:
        s, e = max(start, lo), min(end, hi)
        if s >= e:
            continue
        y, color = (0.65, "tab:green") if strand == "+" else (0.25, "tab:orange")
        ax.add_patch(plt.Rectangle((s, y - 0.12), e - s, 0.24, color=color, alpha=0.8))
        ax.text((s + e) / 2, y, ">" if strand == "+" else "<", ha="center", va="center", fontsize=9, color="white")
    ax.set_ylim(0, 0.9)
    ax.set_yticks([0.25, 0.65], ["genes -", "genes +"])
    ax.set_title(title or f"{chrom}:{lo:,}-{hi:,}")
    for ax, (label, series, ylim) in zip(axes[1:], tracks):
        for i, (name, values) in enumerate(series.items()):
            values = np.asarray(values, dtype=float)
            ax.plot(positions, running_mean(values, smooth) if smooth > 1 else values, lw=1.0, color=f"C{i}",
                    label=name)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_ylabel(label, fontsize=8)
        ax.legend(loc="upper right", fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1].set_xlim(lo, hi)
    axes[-1].set_xlabel(f"{chrom} position (0-based); tracks: running mean of {smooth} bases")
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_confusion(path: str | Path, matrix: np.ndarray, labels: Sequence[str], *, title: str) -> Path:
    """A confusion matrix (rows: true class, columns: predicted), cells as the fraction of the
    row with the count beneath."""
    plt = _figure()
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.5))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            ax.text(j, i, f"{rows[i, j]:.2f}\n{int(matrix[i, j]):,}", ha="center", va="center", fontsize=8,
                    color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (Prodigal)")
    ax.set_title(title, fontsize=9)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)

