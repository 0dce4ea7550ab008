"""Temperature scaling (Guo et al. 2017): one number T that softens (T > 1) or sharpens (T < 1) the
probabilities of a trained head without changing its predictions.

Calibrated probabilities are ``softmax(log p / T)``, i.e. ``softmax(z / T)`` for a head with logits
``z`` (the per-row constant in log p cancels). T is fitted by minimising the log-loss of out-of-fold
log-probabilities (:mod:`.out_of_fold`), so it is learned on rows the head did not see.
"""

from __future__ import annotations

import numpy as np

from ._common import LOG_FLOOR, softmax

T_BOUNDS = (0.05, 20.0)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log proba / temperature)``; returns ``proba`` unchanged when the temperature is 1."""
    if temperature == 1.0:
        return proba
    with np.errstate(divide="ignore"):
        logp = np.maximum(np.log(np.asarray(proba, np.float64)), LOG_FLOOR)
    return softmax(logp / temperature).astype(np.asarray(proba).dtype, copy=False)


def nll(log_proba: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(log_proba / temperature)`` at the labels ``y``."""
    z = np.asarray(log_proba, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def fit_temperature(log_proba: np.ndarray, y: np.ndarray) -> float:
    """The T in :data:`T_BOUNDS` minimising :func:`nll` (bounded 1-D search on log T)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, np.int64)
    res = minimize_scalar(lambda s: nll(log_proba, y, float(np.exp(s))), bounds=tuple(np.log(T_BOUNDS)),
                          method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def calibrate_temperature(head, X: np.ndarray, y: np.ndarray, n_classes: int, *, cv: int = 3, random_state=42) -> dict:
    """Fit the temperature of a fitted ``head`` on out-of-fold log-probabilities of ``(X, y)``.

    Returns the record stored in the model file: the temperature, the folds, and the out-of-fold
    log-loss and ECE before and after.
    """
    from ..evaluate.calibration import expected_calibration_error
    from .out_of_fold import out_of_fold_log_proba, with_chosen_params

    logp = out_of_fold_log_proba(with_chosen_params(head), X, y, n_classes, cv=cv, random_state=random_state,
                                 setting="cv")
    T = fit_temperature(logp, y)
    before, after = softmax(logp), softmax(logp / T)
    return {"method": "temperature", "temperature": T, "folds": int(cv),
            "oof_log_loss": [nll(logp, y), nll(logp, y, T)],
            "oof_ece": [expected_calibration_error(y, before), expected_calibration_error(y, after)]}
