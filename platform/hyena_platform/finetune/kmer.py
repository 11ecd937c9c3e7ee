"""The k-mer baseline: k-mer frequency features (k = 1..max_k, at most 6) and a linear model from
scikit-learn, fitted on the train split, regularisation chosen on the valid split, scored with
the same metrics as the fine-tuned model. A fine-tuned model that does not beat it learned
nothing that counting k-mers did not already know.

Sequence tasks: the frequencies of every k-mer of the sequence. Token tasks: per base, the
frequencies of the k-mers in the `context` bases ending at that base (the side a causal model
sees), on a seeded sample of positions (`max_train_positions`, `max_eval_positions`).
Logistic regression (one-vs-rest for multi-label) for classification, ridge for regression.
"""

from __future__ import annotations


import numpy as np
from pydantic import Field

from hyena.tokenizer import A
from hyena_platform.config import section
from hyena_platform.finetune.examples import Split
from hyena_platform.finetune.metrics import DEFAULT_METRIC, compute_metrics

_C_GRID = (0.01, 0.1, 1.0)  # inverse regularisation of logistic regression, picked on valid
_ALPHA_GRID = (1.0, 10.0, 100.0)  # ridge


@section
class BaselineConfig:
    """The k-mer baseline fitted beside every fine-tuning run (k-mer frequencies, logistic/ridge)."""

    enabled: bool = Field(True, description="false: no baseline (not recommended: it is the bar to beat)")
    max_k: int = Field(6, description="k-mer lengths 1..max_k (4 + 16 + ... + 4^max_k features)")
    context: int = Field(96, description="token tasks: bases ending at each position whose k-mers are counted")
    max_train_positions: int = Field(20000, description="token tasks: sampled train positions")
    max_eval_positions: int = Field(50000, description="token tasks: sampled positions per evaluated split")
    seed: int = Field(0, description="position sampling (token tasks)")

    def validate(self) -> None:
        if not 1 <= self.max_k <= 6:
            raise ValueError(f"baseline.max_k must be in 1..6, got {self.max_k}")
        if self.context < self.max_k:
            raise ValueError(f"baseline.context ({self.context}) must be >= baseline.max_k ({self.max_k})")
        if self.max_train_positions < 100 or self.max_eval_positions < 100:
            raise ValueError("baseline.max_train_positions and max_eval_positions must be >= 100")


def kmer_codes(tokens: np.ndarray, k: int) -> np.ndarray:
    """(L,) code of the k-mer ENDING at each position, base 4 over A C G T; -1 where the k-mer
    has an N or starts before the sequence."""
    L = len(tokens)
    if L < k:
        return np.full(L, -1, dtype=np.int64)
    base = tokens.astype(np.int64) - A
    bad = (base < 0) | (base > 3)
    base[bad] = 0
    codes = np.zeros(L, dtype=np.int64)
    invalid = np.zeros(L, dtype=bool)
    for j in range(k):  # codes[i] = sum base[i-k+1+j] * 4^(k-1-j)
        shift = k - 1 - j
        codes[shift:] = codes[shift:] * 4 + base[: L - shift] if shift else codes * 4 + base
        invalid[shift:] |= bad[: L - shift] if shift else bad
    invalid[: k - 1] = True
    codes[invalid] = -1
    return codes


def _offsets(max_k: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([4 ** k for k in range(1, max_k + 1)])])


def sequence_features(tokens: list[np.ndarray], max_k: int):
    """CSR (N, sum 4^k): per sequence, each k's k-mer counts divided by that k's valid k-mers."""
    from scipy.sparse import coo_matrix

    offsets = _offsets(max_k)
    rows, cols, vals = [], [], []
    for i, t in enumerate(tokens):
        for k in range(1, max_k + 1):
            c = kmer_codes(t, k)
            c = c[c >= 0]
            if c.size:
                rows.append(np.full(c.size, i))
                cols.append(c + offsets[k - 1])
                vals.append(np.full(c.size, 1.0 / c.size))
    return _csr(rows, cols, vals, (len(tokens), int(offsets[-1])), coo_matrix)


def token_features(tokens: list[np.ndarray], picks: np.ndarray, max_k: int, context: int):
    """CSR (n, sum 4^k) for `picks` (n, 2) = (example, position): k-mers inside the example that
    end in [position - context + 1, position], frequencies per k."""
    from scipy.sparse import coo_matrix

    offsets = _offsets(max_k)
    lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    g = starts[picks[:, 0]] + picks[:, 1]  # global position
    idx = g[:, None] - np.arange(context)[None, :]  # (n, context)
    rows_all = np.broadcast_to(np.arange(len(picks))[:, None], idx.shape)
    rows, cols, vals = [], [], []
    for k in range(1, max_k + 1):
        codes = np.concatenate([kmer_codes(t, k) for t in tokens])  # -1 across example starts too
        inside = idx - (k - 1) >= starts[picks[:, 0]][:, None]
        c = codes[np.clip(idx, 0, None)]
        ok = inside & (c >= 0)
        n_ok = np.maximum(ok.sum(axis=1), 1)
        rows.append(rows_all[ok])
        cols.append(c[ok] + offsets[k - 1])
        vals.append((1.0 / n_ok)[rows_all[ok]])
    return _csr(rows, cols, vals, (len(picks), int(offsets[-1])), coo_matrix)


def _csr(rows, cols, vals, shape, coo_matrix):
    if not rows:
        return coo_matrix(shape).tocsr()
    return coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape).tocsr()


def sample_positions(split: Split, limit: int, seed: int) -> np.ndarray:
    """(n, 2) uniform sample (without replacement) of (example, position) over all real bases."""
    lengths = np.array([len(t) for t in split.tokens], dtype=np.int64)
    total = int(lengths.sum())
    flat = np.sort(np.random.default_rng(seed).choice(total, size=min(limit, total), replace=False))
    ends = np.cumsum(lengths)
    example = np.searchsorted(ends, flat, side="right")
    return np.stack([example, flat - (ends[example] - lengths[example])], axis=1)


def position_labels(split: Split, picks: np.ndarray) -> np.ndarray:
    return np.array([split.labels[e][p] for e, p in picks], dtype=np.int64)


def _model(problem_type: str, strength: float):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler(with_mean=False)  # sparse-friendly; puts k = 1 and k = 6 on one scale
    if problem_type == "regression":
        return make_pipeline(scale, Ridge(alpha=strength))
    clf = LogisticRegression(C=strength, max_iter=500)
    if problem_type == "multi_label_classification":
        clf = OneVsRestClassifier(clf)
    return make_pipeline(scale, clf)


def _scores(model, problem_type: str, X) -> np.ndarray:
    if problem_type == "regression":
        p = model.predict(X)
        return p.reshape(len(p), -1)
    return model.predict_proba(X)


def run_baseline(task, splits: dict[str, Split], cfg: BaselineConfig) -> dict[str, dict[str, float]]:
    """Fit on train, choose the regularisation on valid, return split -> metrics (valid, test)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    def features(split: Split, limit: int, seed: int):
        if task.task == "sequence":
            return sequence_features(split.tokens, cfg.max_k), split.labels
        picks = sample_positions(split, limit, seed)
        return token_features(split.tokens, picks, cfg.max_k, cfg.context), position_labels(split, picks)

    X_tr, y_tr = features(splits["train"], cfg.max_train_positions, cfg.seed)
    evaluated = {s: features(splits[s], cfg.max_eval_positions, cfg.seed + 1 + i)
                 for i, s in enumerate(("valid", "test"))}
    metric = DEFAULT_METRIC[task.problem_type]
    grid = _ALPHA_GRID if task.problem_type == "regression" else _C_GRID
    y_fit = y_tr[:, 0] if task.problem_type == "regression" and y_tr.shape[1] == 1 else y_tr
    best, best_value = None, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for strength in grid:
            model = _model(task.problem_type, strength).fit(X_tr, y_fit)
            value = compute_metrics(task.problem_type, evaluated["valid"][1], _scores(model, task.problem_type,
                                                                                     evaluated["valid"][0]))[metric]
            if best is None or (np.isfinite(value) and value > best_value):
                best, best_value = model, value
    out = {s: compute_metrics(task.problem_type, y, _scores(best, task.problem_type, X)) for s, (X, y) in evaluated.items()}
    out["train"] = {"examples": float(X_tr.shape[0]), "features": float(X_tr.shape[1])}
    return out
