"""Is the model's lead over the k-mer baseline more than chance? Both score the same test rows
(every test sequence; for token tasks the bases the baseline sampled), so they are compared row
by row instead of by two numbers that each carry their own sampling noise:

- classification (single-label): how many rows only the model got right, only the baseline, and
  neither; for sequence tasks, McNemar's exact test on the rows where they disagree (a binomial
  test of the two discordant counts; McNemar 1947). Bases of one window are not independent,
  so token tasks get the counts without a p-value;
- every problem type: a 95% paired bootstrap interval of the selection metric's difference
  (model - baseline), resampling whole examples (Efron & Tibshirani 1993; for token tasks the
  windows, so that correlated bases move together).

A lead whose interval includes zero is within the noise of the test split.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from hyena_platform.finetune.metrics import compute_metrics

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class ScoredRows:
    """The test rows a comparison pairs: labels, one model's scores, each row's example."""

    labels: np.ndarray  # (N,) class ids or (N, C) labels/targets
    scores: np.ndarray  # (N, C) probabilities or predictions
    groups: np.ndarray  # (N,) example of each row (resampled together)


@dataclass(frozen=True)
class PairedComparison:
    metric: str
    rows: int
    difference: float  # model - baseline on the whole test split
    low: float  # the bootstrap interval of the difference
    high: float
    model_only: int = -1  # single-label classification: rows only the model got right, ...
    baseline_only: int = -1
    both_wrong: int = -1
    mcnemar_p: float = math.nan  # sequence tasks only (independent rows)

    def lines(self) -> list[str]:
        """The counts and the test (classification), then the interval and what it says."""
        first = []
        if self.model_only >= 0:
            first.append(f"right only by the model {self.model_only:,}, only by the k-mer baseline "
                         f"{self.baseline_only:,}, by neither {self.both_wrong:,} of {self.rows:,}")
        if math.isfinite(self.mcnemar_p):
            first.append(f"McNemar p = {self.mcnemar_p:.3g}")
        verdict = "above the baseline" if self.low > 0 else "below the baseline" if self.high < 0 else \
            "not distinguishable from the baseline"
        second = (f"{self.metric} difference {self.difference:+.4f} ({LEVEL:.0%} paired bootstrap of the "
                  f"examples: {self.low:+.4f} to {self.high:+.4f}): {verdict}")
        return (["; ".join(first)] if first else []) + [second]

    def to_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items() if k != "metric"}

    @classmethod
    def from_metrics(cls, metric: str, logged: dict[str, float]) -> PairedComparison | None:
        """Read back what `to_metrics` logged (None if nothing was)."""
        if "difference" not in logged:
            return None
        ints = ("rows", "model_only", "baseline_only", "both_wrong")
        return cls(metric=metric, **{k: int(v) if k in ints else v for k, v in logged.items()})


def compare(problem_type: str, metric: str, model: ScoredRows, baseline: ScoredRows, *, sequence_task: bool,
            resamples: int = RESAMPLES, seed: int = 0) -> PairedComparison:
    """Compare two scorings of the same rows (labels and groups must agree)."""
    assert len(model.labels) == len(baseline.labels) and np.array_equal(model.groups, baseline.groups)
    assert np.array_equal(model.labels, baseline.labels)
    # Every row has a class: a token task labels every base (background class), padding is masked.
    assert problem_type != "single_label_classification" or (model.labels >= 0).all()
    score = metric_function(problem_type, metric)
    difference = score(model.labels, model.scores) - score(baseline.labels, baseline.scores)
    diffs = []
    for rows in bootstrap_rows(model.groups, resamples, seed):
        diffs.append(score(model.labels[rows], model.scores[rows]) - score(baseline.labels[rows], baseline.scores[rows]))
    diffs = np.asarray(diffs)
    diffs = diffs[np.isfinite(diffs)]
    tail = (1 - LEVEL) / 2
    low, high = (np.quantile(diffs, [tail, 1 - tail]) if diffs.size else (math.nan, math.nan))
    out = PairedComparison(metric=metric, rows=len(model.labels), difference=float(difference), low=float(low),
                           high=float(high))
    if problem_type != "single_label_classification":
        return out
    right_m = model.scores.argmax(axis=1) == model.labels
    right_b = baseline.scores.argmax(axis=1) == baseline.labels
    m_only, b_only = int((right_m & ~right_b).sum()), int((right_b & ~right_m).sum())
    return replace(out, model_only=m_only, baseline_only=b_only, both_wrong=int((~right_m & ~right_b).sum()),
                   mcnemar_p=mcnemar_exact(m_only, b_only) if sequence_task else math.nan)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant counts b and c against Binomial(b + c, 1/2)."""
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def bootstrap_rows(groups: np.ndarray, resamples: int, seed: int):
    """Row indices of `resamples` bootstrap draws of whole groups (with replacement)."""
    order = np.argsort(groups, kind="stable")
    _, starts, counts = np.unique(groups[order], return_index=True, return_counts=True)
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        pick = rng.integers(0, len(starts), len(starts))
        n = counts[pick]
        within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        yield order[np.repeat(starts[pick], n) + within]


def metric_function(problem_type: str, metric: str):
    """labels, scores -> the metric; MCC and accuracy of single-label classification from the
    confusion matrix (a thousand resamples of tens of thousands of bases stay fast)."""
    if problem_type == "single_label_classification" and metric in ("mcc", "accuracy"):
        return _mcc if metric == "mcc" else _accuracy
    return lambda labels, scores: compute_metrics(problem_type, labels, scores)[metric]


def _accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    return float((scores.argmax(axis=1) == labels).mean())


def _mcc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Multiclass MCC (Gorodkin 2004) as scikit-learn computes it (0 when undefined)."""
    k = scores.shape[1]
    confusion = np.bincount(labels.astype(np.int64) * k + scores.argmax(axis=1), minlength=k * k).reshape(k, k)
    t, p = confusion.sum(axis=1).astype(np.float64), confusion.sum(axis=0).astype(np.float64)
    s, c = float(confusion.sum()), float(np.trace(confusion))
    denominator = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return 0.0 if denominator == 0 else (c * s - t @ p) / denominator


def save_rows(rows: ScoredRows, path) -> None:
    """An .npz of the rows (no pickles: plain arrays)."""
    np.savez(path, labels=rows.labels, scores=rows.scores, groups=rows.groups)


def load_rows(path) -> ScoredRows:
    with np.load(path, allow_pickle=False) as f:
        return ScoredRows(labels=f["labels"], scores=f["scores"], groups=f["groups"])
