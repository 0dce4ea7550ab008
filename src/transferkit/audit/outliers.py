"""Outliers: rows far from their nearest neighbours.

The score of a row is its mean cosine distance (1 - similarity) to its ``k`` nearest other rows. A
row is an outlier when its score is far above the typical one: more than ``z`` robust standard
deviations (1.4826 x the median absolute deviation) above the median score. A robust spread, so that
the outliers themselves do not widen the bar they are measured against.
"""

from __future__ import annotations

import numpy as np

DEFAULT_Z = 3.0


def knn_distance(similarity: np.ndarray) -> np.ndarray:
    """Mean cosine distance to the neighbours in ``similarity`` (N x k, -inf entries ignored)."""
    sim = np.where(np.isfinite(similarity), similarity, np.nan)
    with np.errstate(invalid="ignore"):
        d = 1.0 - np.nanmean(sim, axis=1) if sim.shape[1] else np.zeros(len(sim))
    return np.nan_to_num(d, nan=0.0).astype(np.float64)


def outlier_rows(score: np.ndarray, z: float = DEFAULT_Z) -> tuple[np.ndarray, float]:
    """(rows above the bar, most distant first; the bar)."""
    if not len(score):
        return np.zeros(0, np.int64), float("nan")
    med = float(np.median(score))
    spread = 1.4826 * float(np.median(np.abs(score - med)))
    bar = med + z * spread if spread > 0 else float("inf")
    rows = np.flatnonzero(score > bar)
    return rows[np.lexsort((rows, -score[rows]))], bar
