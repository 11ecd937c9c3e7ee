"""The row-by-row comparison of a fine-tuned model with its k-mer baseline
(hyena_platform.finetune.paired): the job's bootstrap, whose MCC comes from a confusion matrix,
against the same bootstrap scoring each resample with scikit-learn's matthews_corrcoef (what
finetune.metrics uses for the table), on the same rows and the same draws.

    .venv/bin/python bench/bench_paired.py            # ~1 minute on 2 cores

Rows: 4-class sequence test split (1,600 rows, the species job's) and a 3-class token split
(50,000 bases in 4,189 windows, the gene job's); predictions drawn at the two jobs' accuracies.
Prints seconds per comparison (1,000 resamples) for both, the ratio, and that both give the same
interval; no assertion.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hyena_platform.finetune.paired import LEVEL, RESAMPLES, ScoredRows, bootstrap_rows, compare

CASES = {"species (1,600 sequences, 4 classes)": (1_600, 1_600, 4, 0.988, 0.986, True),
         "genes (50,000 bases, 4,189 windows, 3 classes)": (50_000, 4_189, 3, 0.77, 0.75, False)}


def rows_for(n: int, k: int, accuracy: float, rng: np.random.Generator, labels: np.ndarray,
             group_of: np.ndarray) -> ScoredRows:
    pred = np.where(rng.random(n) < accuracy, labels, (labels + rng.integers(1, k, n)) % k)
    return ScoredRows(labels=labels, scores=np.eye(k, dtype=np.float32)[pred], groups=group_of)


def sklearn_interval(model: ScoredRows, base: ScoredRows, mcc) -> tuple[float, float]:
    """The baseline: the job's draws (paired.bootstrap_rows, same seed), each scored with `mcc`."""
    diffs = [mcc(model.labels[r], model.scores[r]) - mcc(base.labels[r], base.scores[r])
             for r in bootstrap_rows(model.groups, RESAMPLES, 0)]
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return float(low), float(high)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    from sklearn.metrics import matthews_corrcoef

    def sklearn_mcc(labels, scores):
        return float(matthews_corrcoef(labels, scores.argmax(axis=1)))

    for name, (n, groups, k, acc_model, acc_base, sequence) in CASES.items():
        rng = np.random.default_rng(0)
        labels = rng.integers(0, k, n)
        group_of = np.sort(rng.integers(0, groups, n)) if not sequence else np.arange(n)
        model, base = (rows_for(n, k, a, rng, labels, group_of) for a in (acc_model, acc_base))
        ours_s, ours = timed(lambda: compare("single_label_classification", "mcc", model, base,
                                             sequence_task=sequence))
        base_s, (low, high) = timed(lambda: sklearn_interval(model, base, sklearn_mcc))
        same = np.allclose([ours.low, ours.high], [low, high], atol=1e-12)
        print(f"{name}: confusion matrix {ours_s:.2f} s, scikit-learn {base_s:.2f} s, "
              f"{base_s / ours_s:.1f}x; interval {ours.low:+.4f} to {ours.high:+.4f} (same: {same})")


if __name__ == "__main__":
    main()
