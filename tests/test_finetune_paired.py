"""The paired comparison of the model with the k-mer baseline on the same test rows
(hyena_platform.finetune.paired) and the rows each side hands it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyena_platform.finetune.loop import paired_rows
from hyena_platform.finetune.paired import (
    PairedComparison,
    ScoredRows,
    _mcc,
    bootstrap_rows,
    compare,
    load_rows,
    mcnemar_exact,
    save_rows,
)


def one_hot(pred: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[pred]


def rows(labels, pred, k=3, groups=None) -> ScoredRows:
    labels = np.asarray(labels)
    return ScoredRows(labels=labels, scores=one_hot(np.asarray(pred), k),
                      groups=np.arange(len(labels)) if groups is None else np.asarray(groups))


def test_confusion_matrix_mcc_equals_scikit_learns():
    from sklearn.metrics import matthews_corrcoef

    rng = np.random.default_rng(0)
    for k, n in ((2, 50), (4, 300), (3, 7)):
        labels = rng.integers(0, k, n)
        pred = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, n))
        assert _mcc(labels, one_hot(pred, k)) == pytest.approx(matthews_corrcoef(labels, pred), abs=1e-12)
    assert _mcc(np.zeros(5, int), one_hot(np.zeros(5, int), 3)) == 0.0  # one class only: undefined -> 0


def test_counts_mcnemar_and_a_clear_lead():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    model_pred = labels.copy()
    baseline_pred = labels.copy()
    baseline_pred[:60] = (labels[:60] + 1) % 3  # 60 only the baseline gets wrong
    model_pred[60:65] = (labels[60:65] + 1) % 3  # 5 only the model gets wrong
    model_pred[65:70] = baseline_pred[65:70] = (labels[65:70] + 2) % 3  # 5 both
    out = compare("single_label_classification", "mcc", rows(labels, model_pred), rows(labels, baseline_pred),
                  sequence_task=True, resamples=300)
    assert (out.model_only, out.baseline_only, out.both_wrong, out.rows) == (60, 5, 5, 400)
    assert out.mcnemar_p == pytest.approx(mcnemar_exact(60, 5)) and out.mcnemar_p < 1e-10
    from sklearn.metrics import matthews_corrcoef
    assert out.difference == pytest.approx(matthews_corrcoef(labels, model_pred) - matthews_corrcoef(labels, baseline_pred))
    assert 0 < out.low < out.difference < out.high
    assert out.lines()[-1].endswith("above the baseline")


def test_equal_scorings_are_not_distinguishable():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    pred = np.array([0, 1, 2, 1, 1, 2, 0, 0])
    out = compare("single_label_classification", "mcc", rows(labels, pred), rows(labels, pred),
                  sequence_task=True, resamples=50)
    assert (out.model_only, out.baseline_only, out.difference, out.low, out.high) == (0, 0, 0.0, 0.0, 0.0)
    assert out.mcnemar_p == 1.0 and out.lines()[-1].endswith("not distinguishable from the baseline")


def test_token_rows_get_counts_but_no_p_value_and_regression_only_the_interval():
    labels = np.array([0, 1, 1, 0, 1, 0])
    groups = np.array([0, 0, 0, 1, 1, 1])
    out = compare("single_label_classification", "accuracy", rows(labels, labels, 2, groups),
                  rows(labels, 1 - labels, 2, groups), sequence_task=False, resamples=50)
    assert out.model_only == 6 and math.isnan(out.mcnemar_p) and out.difference == 1.0
    y = np.linspace(0, 1, 40)[:, None]
    reg = compare("regression", "pearson", ScoredRows(y, y + 0.01, np.arange(40)),
                  ScoredRows(y, y[::-1], np.arange(40)), sequence_task=True, resamples=50)
    assert reg.model_only == -1 and math.isnan(reg.mcnemar_p) and reg.difference == pytest.approx(2.0)
    assert len(reg.lines()) == 1 and reg.lines()[0].startswith("pearson difference +2.0000")
    # A row without a class (IGNORE_INDEX) never reaches the comparison: the data layer gives
    # every base one and padding is masked, so one here is a bug upstream, refused.
    unlabelled = labels.copy()
    unlabelled[[1, 4]] = -100
    with pytest.raises(AssertionError):
        compare("single_label_classification", "mcc", rows(unlabelled, labels, 2, groups),
                rows(unlabelled, 1 - labels, 2, groups), sequence_task=False, resamples=20)


def test_bootstrap_draws_whole_groups():
    groups = np.array([3, 3, 1, 3, 2, 2, 1])  # unsorted, uneven sizes
    for drawn in bootstrap_rows(groups, 30, seed=0):
        picked = groups[drawn]
        sizes = {g: int((groups == g).sum()) for g in (1, 2, 3)}
        for g in np.unique(picked):  # every drawn group comes whole, possibly several times
            assert (picked == g).sum() % sizes[g] == 0
        assert len(np.unique(drawn[picked == 3])) == 3 or (picked == 3).sum() == 0
        assert sum((picked == g).sum() // sizes[g] for g in sizes) == 3  # as many groups as there are


def test_rows_and_comparison_round_trip(tmp_path):
    r = rows([0, 2, 1], [0, 1, 1])
    save_rows(r, tmp_path / "r.npz")
    back = load_rows(tmp_path / "r.npz")
    assert all(np.array_equal(getattr(r, f), getattr(back, f)) for f in ("labels", "scores", "groups"))
    out = compare("single_label_classification", "mcc", r, r, sequence_task=True, resamples=10)
    assert PairedComparison.from_metrics("mcc", out.to_metrics()) == out
    assert PairedComparison.from_metrics("mcc", {}) is None


class _Split:
    def __init__(self, tokens, labels):
        self.tokens, self.labels = tokens, labels

    def __len__(self):
        return len(self.tokens)


def test_model_rows_follow_the_baselines_order_whatever_the_workers_order():
    """Two workers gather their rows rank-major (examples 0, 2, 4, then 1, 3); the paired rows
    are in example order (sequence tasks) or at the baseline's (example, position) picks."""
    lengths = [5, 3, 4, 2, 6]
    split = _Split([np.zeros(n) for n in lengths], None)
    examples = np.array([0, 2, 4, 1, 3])
    # Token rows: each real base, the score encodes (example, position).
    token_scores = np.concatenate([np.stack([np.full(lengths[e], e), np.arange(lengths[e])], 1) for e in examples])
    token_labels = token_scores[:, 0] * 10 + token_scores[:, 1]
    picks = np.array([[0, 4], [1, 0], [3, 1], [4, 5], [2, 2]])
    out = paired_rows(split, token_labels, token_scores, examples, picks, "token")
    assert out.scores.tolist() == picks.tolist() and out.groups.tolist() == [0, 1, 3, 4, 2]
    assert out.labels.tolist() == [4, 10, 31, 45, 22]
    assert paired_rows(split, token_labels, token_scores, examples, None, "token") is None
    seq = paired_rows(split, examples * 2, np.stack([examples, examples], 1), examples, None, "sequence")
    assert seq.labels.tolist() == [0, 2, 4, 6, 8] and seq.groups.tolist() == [0, 1, 2, 3, 4]
