"""Feature scalings the linear heads choose from, and how each is applied.

Which scaling suits a linear model depends on the features, so none is right everywhere: pooled
post-activation features (non-negative, heavy-tailed) often do best as they are or row-normalised,
where standardising every column blows up rare activations; features of very different column
scales want standardising. The linear heads therefore try several and keep the one the
cross-validation prefers (see :mod:`.linear`); "auto" tries :data:`AUTO_SCALINGS`.

Every scaling is ``x -> (rows(x) - mean) / scale``:

* ``"standardise"``: rows as they are; per-column mean and standard deviation.
* ``"none"``: the raw features, only multiplied by one number.
* ``"l2"``: each row divided by its Euclidean norm.
* ``"sqrt-l2"``: signed square root of every value (``sign(x) sqrt|x|``, which tames heavy tails),
  then each row divided by its norm.

For all but "standardise", ``mean`` is 0 and ``scale`` one number (stored per column) chosen so that
the mean squared row norm equals the number of columns, as it does for standardised features: a
value of C then means about the same regularisation whatever the scaling, and one C grid serves
them all.
"""

from __future__ import annotations

import numpy as np

from ._common import standardiser

SCALINGS = ("none", "standardise", "l2", "sqrt-l2")
# What "auto" tries, in tie-break order. "l2" is left out: on the feature files measured it never won
# by more than one held-out row (sqrt-l2, which also normalises rows, did better), and every candidate
# costs a walk along the C grid.
AUTO_SCALINGS = ("none", "standardise", "sqrt-l2")
DEFAULT_SCALING = "standardise"  # when there is no cross-validation to choose one


def check_scaling(scaling) -> None:
    if scaling != "auto" and scaling not in SCALINGS:
        raise ValueError(f"scaling must be 'auto' or one of {', '.join(SCALINGS)}, got {scaling!r}")


def candidates(scaling, cross_validated: bool) -> tuple[str, ...]:
    """The scalings to try: all of them for "auto" when there are folds to judge by, else one."""
    check_scaling(scaling)
    if scaling != "auto":
        return (scaling,)
    return AUTO_SCALINGS if cross_validated else (DEFAULT_SCALING,)


def rows(name: str, X: np.ndarray) -> np.ndarray:
    """The row-wise part of a scaling (power, row norm), float32; ``X`` itself for "standardise"/"none"."""
    if name in ("standardise", "none"):
        return X
    R = np.sqrt(np.abs(X)) * np.sign(X) if name == "sqrt-l2" else np.array(X, np.float32, copy=True)
    norms = np.sqrt(np.einsum("ij,ij->i", R, R, dtype=np.float64))
    R /= np.maximum(norms, 1e-12).astype(np.float32)[:, None]
    return R


def chunk_rows(n_features: int) -> int:
    """Rows per chunk for passes over X: about 16 M values (64 MB of float32), so that wide features never
    get a full-size temporary."""
    return max(1, 16_000_000 // max(n_features, 1))


def fit(name: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of scaling ``name`` on rows X, both float32 of length D."""
    D = X.shape[1]
    step = chunk_rows(D)
    if name == "standardise":
        return standardiser(X, step)
    if name in ("l2", "sqrt-l2"):
        mean_sq = 1.0
    else:
        mean_sq = sum(float(np.einsum("ij,ij->", X[s : s + step], X[s : s + step], dtype=np.float64))
                      for s in range(0, len(X), step)) / max(len(X), 1)
    factor = np.sqrt(max(mean_sq, 1e-30) / D)
    return np.zeros(D, np.float32), np.full(D, factor, np.float32)


def apply(name: str, X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The scaled features (float32, a new array)."""
    R = rows(name, np.asarray(X, np.float32))
    return (R - mean) / scale if name == "standardise" else R / scale
