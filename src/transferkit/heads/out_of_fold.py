"""Out-of-fold probabilities of any head: every row scored by a copy of the head that did not see it.

Used by ``transferkit audit`` (label issues) and by ``train --calibrate temperature`` (the temperature
is fitted on out-of-fold logits, never on rows the head was fitted on). The head is cloned with its
*chosen* hyper-parameters (the C or k its own cross-validation picked), so each fold fits once.
Results are returned as log-probabilities: for logistic regression, the MLP and the calibrated SVM
they are the logits up to a per-row constant, which is all softmax-based calibration needs.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from ._common import LOG_FLOOR, check_folds, stratified_folds


def with_chosen_params(head):
    """An unfitted copy of a fitted ``head`` whose search grid is the value it chose (no inner search)."""
    head = getattr(head, "best_estimator_", head)  # --head auto: the head it kept
    params = head.get_params()
    fixed = {}
    if "Cs" in params and getattr(head, "C_", None) is not None:
        fixed["Cs"] = (float(head.C_),)
    if "ks" in params and getattr(head, "k_", None) is not None:
        fixed["ks"] = (int(head.k_),)
    if "scaling" in params and getattr(head, "scaling_", None) is not None:  # logreg: the scaling CV chose
        fixed["scaling"] = head.scaling_
    if "cv" in params and not isinstance(params["cv"], int):  # a predefined val fold fits no other rows
        fixed["cv"] = 3
    return clone(head).set_params(**fixed)


def out_of_fold_log_proba(head, X: np.ndarray, y: np.ndarray, n_classes: int | None = None, *, cv: int = 5,
                          random_state=42, class_names=None, setting: str = "folds", progress=None) -> np.ndarray:
    """(N, K) log-probabilities of every row from ``cv`` stratified folds; ``head`` is an unfitted
    estimator (see :func:`with_chosen_params`). ``y`` holds class numbers 0..K-1."""
    y = np.asarray(y, np.int64)
    K = int(n_classes or y.max() + 1)
    check_folds(y, cv, class_names, what="folds", setting=setting)
    out = np.full((len(y), K), LOG_FLOOR)
    folds = stratified_folds(y, cv, random_state)
    for n, (tr, te) in enumerate(folds):
        est = clone(head).fit(X[tr], y[tr])
        with np.errstate(divide="ignore"):
            logp = np.maximum(np.log(est.predict_proba(X[te])), LOG_FLOOR)
        out[np.ix_(te, np.asarray(est.classes_, np.int64))] = logp
        if progress is not None:
            progress(n + 1, len(folds))
    return out
