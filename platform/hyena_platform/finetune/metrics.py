"""Task metrics, the same for the fine-tuned model and the k-mer baseline (scikit-learn, scipy).

Classification: accuracy, macro-F1, MCC (Matthews), AUROC (one-vs-rest macro for several
classes; NaN when a split lacks a class). Multi-label: the same over the flattened label matrix,
AUROC macro over labels. Regression: Pearson, Spearman, R^2 (mean over targets). Token tasks pass
their real positions flattened.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

# The metric that picks the best checkpoint / early stopping when the job leaves it open.
DEFAULT_METRIC = {"single_label_classification": "mcc", "multi_label_classification": "macro_f1",
                  "regression": "pearson"}
METRICS = {"single_label_classification": ("accuracy", "macro_f1", "mcc", "auroc"),
           "multi_label_classification": ("accuracy", "macro_f1", "mcc", "auroc"),
           "regression": ("pearson", "spearman", "r2")}


def compute_metrics(problem_type: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """`labels`: (N,) class ids, (N, C) 0/1 or (N, C) targets; `scores`: (N, C) probabilities or
    predictions (what hyena.heads.probabilities returns)."""
    if problem_type == "single_label_classification":
        return classification_metrics(labels, scores)
    if problem_type == "multi_label_classification":
        return multilabel_metrics(labels, scores)
    return regression_metrics(labels, scores)


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

    labels = np.asarray(labels).astype(np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(axis=1)
    C = probs.shape[1]
    out = {"accuracy": float(accuracy_score(labels, pred)),
           "macro_f1": float(f1_score(labels, pred, average="macro", labels=np.arange(C), zero_division=0)),
           "mcc": float(matthews_corrcoef(labels, pred))}
    present = np.unique(labels)
    if len(present) < 2:
        out["auroc"] = math.nan
    elif C == 2:
        out["auroc"] = float(roc_auc_score(labels, probs[:, 1]))
    else:
        # One-vs-rest over the classes present (a class absent from the split has no AUROC).
        out["auroc"] = float(np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present]))
    return out


def multilabel_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, matthews_corrcoef, roc_auc_score

    y = np.asarray(labels).astype(np.int64).reshape(len(labels), -1)
    p = np.asarray(probs, dtype=np.float64).reshape(y.shape)
    pred = (p >= 0.5).astype(np.int64)
    aucs = [roc_auc_score(y[:, j], p[:, j]) for j in range(y.shape[1]) if len(np.unique(y[:, j])) == 2]
    return {"accuracy": float((pred == y).mean()),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
            "mcc": float(matthews_corrcoef(y.ravel(), pred.ravel())),
            "auroc": float(np.mean(aucs)) if aucs else math.nan}


def regression_metrics(targets: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import r2_score

    y = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    p = np.asarray(preds, dtype=np.float64).reshape(y.shape)
    pear, spear = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: the correlation is NaN, reported as such
        for j in range(y.shape[1]):
            pear.append(pearsonr(y[:, j], p[:, j])[0] if len(y) > 1 else math.nan)
            spear.append(spearmanr(y[:, j], p[:, j])[0] if len(y) > 1 else math.nan)
    return {"pearson": float(np.mean(pear)), "spearman": float(np.mean(spear)),
            "r2": float(r2_score(y, p)) if len(y) > 1 else math.nan}


def better(metric: str, new: float, best: float | None) -> bool:
    """Every reported metric is higher-is-better; NaN never wins."""
    if new is None or not math.isfinite(new):
        return False
    return best is None or not math.isfinite(best) or new > best
