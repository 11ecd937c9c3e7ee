"""The k-mer baseline: k-mer frequency features (k = 1..max_k, at most 6) and a linear model from
scikit-learn, fitted on the train split, regularisation chosen on the valid split, scored with
the same metrics as the fine-tuned model. A fine-tuned model that does not beat it learned
nothing that counting k-mers did not already know.

Sequence tasks: the frequencies of every k-mer of the sequence. Token tasks: per base, the
frequencies of the k-mers in the `context` bases ending at that base (the side a causal model
sees), on a seeded sample of positions (`max_train_positions`, `max_eval_positions`). When the
model reads both strands (task.strands: both), it sees the bases after each base too, and so
does the baseline: a second block of the same features for the `context` bases starting at the
base (within the example), computed by `token_features` on the reversed examples at mirrored
positions, its columns put back in forward k-mer order (`two_sided_token_features`).
Logistic regression (one-vs-rest for multi-label) for classification, ridge for regression.

The fit takes seconds, not minutes (docs/performance.md, bench/bench_kmer_baseline.py): float32
features, one BLAS/OpenMP thread (L-BFGS's small dense steps spend more time waking threads than
computing: 5-10x slower on a shared 2-core machine with the library's default threads), and the
inverse regularisation C walked upward over half-decades from 1e-5, each fit warm-started from
the last, stopping once the valid metric has fallen twice in a row (small C fits in tens of
iterations; the 5,460 scaled k-mer features want strong regularisation: C ~ 1e-4 on the gene task).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from hyena.tokenizer import A
from hyena_platform.config import section
from hyena_platform.finetune.examples import Split
from hyena_platform.finetune.metrics import DEFAULT_METRIC, compute_metrics
from hyena_platform.finetune.paired import ScoredRows

# Inverse regularisation of logistic regression, walked upward and picked on valid (stops early).
_C_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
_GRID_PATIENCE = 2  # grid values past the best whose valid metric fell, before stopping
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


def two_sided_token_features(tokens: list[np.ndarray], picks: np.ndarray, max_k: int, context: int):
    """CSR (n, 2 x sum 4^k): [left | right] blocks for `picks`. Left: `token_features` (k-mers
    ending in the `context` bases ending at the position). Right: k-mers starting in the `context`
    bases starting at it, inside the example: the left features of the reversed example at the
    mirrored position, whose columns (reversed k-mers) are mapped back to the forward k-mers."""
    from scipy.sparse import hstack

    left = token_features(tokens, picks, max_k, context)
    lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    mirrored = np.stack([picks[:, 0], lengths[picks[:, 0]] - 1 - picks[:, 1]], axis=1)
    right = token_features([t[::-1] for t in tokens], mirrored, max_k, context)
    return hstack([left, right[:, _reversed_kmer_columns(max_k)]], format="csr")


def _reversed_kmer_columns(max_k: int) -> np.ndarray:
    """Column of each k-mer read backwards (an involution: it also maps back)."""
    out = []
    for k in range(1, max_k + 1):
        digits = (np.arange(4 ** k)[:, None] // 4 ** np.arange(k)[None, :]) % 4  # least significant first
        out.append(digits @ 4 ** np.arange(k)[::-1] + _offsets(max_k)[k - 1])
    return np.concatenate(out)


def describe(task_type: str, strands: str, max_k: int, context: int) -> str:
    """What the baseline counts, in words (the run's table and the model card say it)."""
    if task_type == "sequence":
        return f"k-mer frequencies of the whole sequence, k = 1..{max_k}"
    if strands == "both":
        return f"k-mers of the {context} bases on each side of each base (two blocks), k = 1..{max_k}"
    return f"k-mers of the {context} bases ending at each base, k = 1..{max_k}"


def _csr(rows, cols, vals, shape, coo_matrix):
    if not rows:
        return coo_matrix(shape, dtype=np.float32).tocsr()
    # float32 and int32 indices: half the memory of the defaults, and faster products in the fit.
    return coo_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows).astype(np.int32),
                                                                 np.concatenate(cols).astype(np.int32))),
                      shape=shape).tocsr()


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
    # warm_start: each C of the walk starts from the previous C's solution (one-vs-rest refits).
    clf = LogisticRegression(C=strength, max_iter=500, warm_start=True)
    if problem_type == "multi_label_classification":
        clf = OneVsRestClassifier(clf)
    return make_pipeline(scale, clf)


def _set_strength(model, problem_type: str, strength: float) -> None:
    last = model.steps[-1][1]
    if problem_type == "regression":
        last.set_params(alpha=strength)
    elif problem_type == "multi_label_classification":
        last.estimator.set_params(C=strength)
    else:
        last.set_params(C=strength)


def _scores(model, problem_type: str, X) -> np.ndarray:
    if problem_type == "regression":
        p = model.predict(X)
        return p.reshape(len(p), -1)
    return model.predict_proba(X)


def choose_model(problem_type: str, metric: str, train: tuple, valid: tuple):
    """Fit on `train` (X, y) along the regularisation grid, from strongest to weakest, and keep
    the model with the best `metric` on `valid`; stop once the metric has fallen below the best
    _GRID_PATIENCE times since the best. Returns (model, its strength, the valid metric)."""
    import copy

    grid = sorted(_ALPHA_GRID, reverse=True) if problem_type == "regression" else _C_GRID
    model = _model(problem_type, grid[0])
    best, best_strength, best_value, worse = None, None, -np.inf, 0
    for strength in grid:
        _set_strength(model, problem_type, strength)
        model.fit(*train)
        value = compute_metrics(problem_type, valid[1], _scores(model, problem_type, valid[0]))[metric]
        if best is None or (np.isfinite(value) and value > best_value):
            best, best_strength, best_value, worse = copy.deepcopy(model), strength, value, 0
        elif not value >= best_value:  # fell (or NaN); a tie (a constant guess at tiny C) walks on
            worse += 1
            if worse >= _GRID_PATIENCE:
                break
    return best, best_strength, best_value


def run_baseline(task, splits: dict[str, Split], cfg: BaselineConfig,
                 strands: str = "forward") -> dict[str, Any]:
    """Fit on train, choose the regularisation on valid, return split -> metrics (valid, test),
    "train": the fit's examples, features, chosen strength and seconds (features and fit), and
    "test_rows": the scored test rows (finetune.paired compares the model's with them).
    `strands` both: token features of both sides of each base (the model's view)."""
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    def features(split: Split, picks: np.ndarray | None):
        if task.task == "sequence":
            return sequence_features(split.tokens, cfg.max_k), split.labels
        counts = two_sided_token_features if strands == "both" else token_features
        return counts(split.tokens, picks, cfg.max_k, cfg.context), position_labels(split, picks)

    t0 = time.perf_counter()
    token = task.task == "token"
    X_tr, y_tr = features(splits["train"], sample_positions(splits["train"], cfg.max_train_positions, cfg.seed)
                          if token else None)
    picks = {s: evaluated_picks(splits[s], cfg, s) if token else None for s in ("valid", "test")}
    evaluated = {s: features(splits[s], picks[s]) for s in ("valid", "test")}
    y_fit = y_tr[:, 0] if task.problem_type == "regression" and y_tr.shape[1] == 1 else y_tr
    with warnings.catch_warnings(), threadpool_limits(limits=1):  # one thread: see the module docstring
        warnings.simplefilter("ignore", ConvergenceWarning)
        best, strength, _ = choose_model(task.problem_type, DEFAULT_METRIC[task.problem_type], (X_tr, y_fit),
                                         evaluated["valid"])
        scores = {s: _scores(best, task.problem_type, X) for s, (X, _) in evaluated.items()}
    out: dict[str, Any] = {s: compute_metrics(task.problem_type, evaluated[s][1], scores[s]) for s in evaluated}
    out["train"] = {"examples": float(X_tr.shape[0]), "features": float(X_tr.shape[1]), "strength": float(strength),
                    "fit_seconds": time.perf_counter() - t0}
    test_labels = np.asarray(evaluated["test"][1])
    out["test_rows"] = ScoredRows(labels=test_labels, scores=scores["test"].astype(np.float32),
                                groups=picks["test"][:, 0] if token else np.arange(len(test_labels)))
    return out


def evaluated_picks(split: Split, cfg: BaselineConfig, name: str) -> np.ndarray:
    """(n, 2) (example, position): the bases of a token task's valid or test split the baseline
    scores; the model's test scores are paired with the baseline's on the same bases."""
    return sample_positions(split, cfg.max_eval_positions, cfg.seed + 1 + ("valid", "test").index(name))
