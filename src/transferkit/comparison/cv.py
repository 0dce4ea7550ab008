"""Paired cross-validation: every candidate is scored on the same stratified folds, so differences
between candidates can be judged against the fold-to-fold noise of those differences."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..errors import AdvisedError


def make_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    if folds < 2:
        raise AdvisedError("{o[folds]} must be at least 2, got {folds}", folds=folds)
    if counts.min() < folds:
        raise AdvisedError(
            "the smallest class has {smallest} image(s), fewer than the {folds} folds; use {o[folds=@fewer]}"
            + (" or a larger {o[sample]}" if counts.min() >= 2 else ""),
            smallest=int(counts.min()), folds=folds, fewer=max(2, int(counts.min())),
        )
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(labels)), labels))


@dataclass
class FoldScores:
    accuracy: np.ndarray  # one per fold
    macro_f1: np.ndarray
    fit_seconds: float  # total over folds: standardise + fit + predict
    not_converged: int  # folds whose solver hit max_iter


def cross_validate(X: np.ndarray, y: np.ndarray, folds, C: float = 1.0, max_iter: int = 1000,
                   seed: int = 0, progress=None) -> FoldScores:
    """The product's logistic-regression head (``train --head logreg``) at one ``C`` on standardised
    features, fitted on each fold's train part and scored on its test part.

    ``progress(done, total)`` is called after each fold."""
    from sklearn.metrics import f1_score

    from ..heads.registry import make_fixed_head

    acc, f1, not_converged = [], [], 0
    start = time.perf_counter()
    labels = np.unique(y)
    folds = list(folds)
    for i, (train, test) in enumerate(folds):
        head = make_fixed_head("logreg", Cs=[C], scaling="standardise", max_iter=max_iter, random_state=seed)
        head.fit(X[train], y[train])
        not_converged += head.n_not_converged_ > 0
        pred = head.predict(X[test])
        acc.append(float(np.mean(pred == y[test])))
        f1.append(float(f1_score(y[test], pred, labels=labels, average="macro", zero_division=0)))
        if progress is not None:
            progress(i + 1, len(folds))
    return FoldScores(np.array(acc), np.array(f1), time.perf_counter() - start, not_converged)


def corrected_paired_ttest(a: np.ndarray, b: np.ndarray, n_train: int, n_test: int) -> tuple[float, float]:
    """Mean of ``a - b`` over folds and its two-sided p-value by the corrected resampled t-test
    (Nadeau & Bengio, 2003): the variance of the mean is inflated by ``n_test / n_train`` because
    k-fold training sets overlap, which a plain paired t-test ignores (it is far too optimistic)."""
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    k = len(d)
    mean = float(d.mean())
    var = float(d.var(ddof=1)) if k > 1 else 0.0
    if var <= 0:
        return mean, (1.0 if mean == 0 else 0.0)
    t = mean / math.sqrt((1 / k + n_test / n_train) * var)
    return mean, float(2 * stats.t.sf(abs(t), df=k - 1))
