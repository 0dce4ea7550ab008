"""Label issues from out-of-fold probabilities (confident learning, Northcutt et al. 2021).

Every row gets probabilities from a head that did not see it (k-fold, see
:func:`transferkit.heads.out_of_fold.out_of_fold_log_proba`). A row is a label issue when the head's
best guess is another class, or when another class is *confidently* there: its probability reaches
that class's threshold ``t_j`` (the mean probability of class ``j`` over the rows labelled ``j``) and
beats the given class among the classes over threshold (the off-diagonal of the "confident joint").
The suggested label is that other class.

Issues are ranked by a score, higher = more suspicious:

- ``self-confidence``: ``1 - p[given]``;
- ``margin`` (normalised margin): ``(1 + max_{j != given} p[j] - p[given]) / 2``, in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORES = ("self-confidence", "margin")


@dataclass
class LabelIssues:
    rows: np.ndarray  # flagged row numbers, most suspicious first
    score: np.ndarray  # (N,) score of every row (higher = more suspicious)
    suggested: np.ndarray  # (N,) suggested class of every row (the given one where not flagged)
    thresholds: np.ndarray  # (K,) per-class confidence thresholds


def label_scores(proba: np.ndarray, y: np.ndarray, method: str = "self-confidence") -> np.ndarray:
    """Per-row suspicion score of the given labels ``y`` under ``proba`` (see the module docstring)."""
    proba = np.asarray(proba, np.float64)
    y = np.asarray(y)
    given = proba[np.arange(len(y)), y]
    if method == "self-confidence":
        return 1.0 - given
    if method == "margin":
        other = proba.copy()
        other[np.arange(len(y)), y] = -np.inf
        return (1.0 + other.max(axis=1) - given) / 2.0
    raise ValueError(f"score must be one of {', '.join(SCORES)}, got {method!r}")


def class_thresholds(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean probability of class j over the rows labelled j (1.0 for a class with no rows: never reached)."""
    K = proba.shape[1]
    t = np.ones(K)
    for j in range(K):
        rows = y == j
        if rows.any():
            t[j] = proba[rows, j].mean()
    return t


def find_label_issues(proba: np.ndarray, y: np.ndarray, method: str = "self-confidence") -> LabelIssues:
    """Flag and rank suspicious labels from out-of-fold probabilities ``proba`` (N x K) and labels ``y``."""
    proba = np.asarray(proba, np.float64)
    y = np.asarray(y, np.int64)
    score = label_scores(proba, y, method)
    t = class_thresholds(proba, y)
    above = proba >= t[None, :]
    confident = np.where(above, proba, -1.0).argmax(axis=1)
    off_diagonal = above.any(axis=1) & (confident != y)
    predicted = proba.argmax(axis=1)
    flagged = off_diagonal | (predicted != y)
    suggested = np.where(off_diagonal, confident, predicted)
    suggested = np.where(flagged, suggested, y)
    rows = np.flatnonzero(flagged)
    rows = rows[np.lexsort((rows, -score[rows]))]  # score descending, ties by row
    return LabelIssues(rows=rows, score=score, suggested=suggested, thresholds=t)
