"""Stratified k-fold cross-validation folds in NumPy, equal to scikit-learn's
``StratifiedKFold(n_splits, shuffle=True, random_state=seed)`` (same algorithm, same random stream).

Why a copy: importing scikit-learn costs 1-3 s and ~90 MB (it imports SciPy's statistics and
pandas), more than the whole fit on a typical feature file, and `transferkit train` with the
default head needs nothing else from it. ``tests/test_folds.py`` checks the folds are identical.
"""

from __future__ import annotations

import numbers

import numpy as np


def stratified_kfold(y, n_splits: int, random_state=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train rows, test rows)] for each of ``n_splits`` folds, each class spread evenly over the folds."""
    y = np.asarray(y)
    if isinstance(random_state, numbers.Integral):
        rng = np.random.RandomState(int(random_state))
    elif isinstance(random_state, np.random.RandomState):
        rng = random_state
    else:
        rng = np.random.mtrand._rand
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    _, order = np.unique(first, return_inverse=True)  # classes numbered by first appearance
    y_enc = order[inverse.ravel()]
    n_classes = len(first)
    y_sorted = np.sort(y_enc)
    allocation = np.asarray([np.bincount(y_sorted[i::n_splits], minlength=n_classes) for i in range(n_splits)])
    test_fold = np.empty(len(y), dtype="i")
    for k in range(n_classes):
        fold_of_row = np.arange(n_splits).repeat(allocation[:, k])
        rng.shuffle(fold_of_row)
        test_fold[y_enc == k] = fold_of_row
    rows = np.arange(len(y))
    return [(rows[test_fold != i], rows[test_fold == i]) for i in range(n_splits)]
