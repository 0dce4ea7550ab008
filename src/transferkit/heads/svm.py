"""Linear SVM (squared hinge, one-vs-rest) with C by cross-validation and calibrated probabilities.

The margins of an SVM are not probabilities. The cross-validation folds already give every training
row a decision value from a model that did not see it; at the chosen C, the calibration map is
fitted to those out-of-fold values (as scikit-learn's ``CalibratedClassifierCV(ensemble=False)``
does): Platt's sigmoid for two classes, ``softmax(a_j * z_j + b_j)`` (one slope and offset per
class, fitted jointly by cross-entropy) for more.
"""

from __future__ import annotations

import numpy as np

from ._common import softmax
from .linear import LinearHead


class LinearSVMHead(LinearHead):
    """Linear SVM on standardised features (LinearSVC's squared-hinge loss, intercept not penalised).

    Parameters are those of :class:`~transferkit.heads.LogisticHead`; the best C has the highest
    mean CV accuracy, ties going to the lowest mean squared hinge loss. ``cv`` folds are always run
    (even for a single C) because calibration needs their out-of-fold decision values.
    """

    kind = "linear-svm"
    loss = "squared_hinge"
    needs_oof = True
    tie_name = "mean_hinge_loss"
    _extra_arrays = ("platt",)

    def __init__(self, Cs="auto", cv=3, class_weight=None, max_iter=1000, tol=1e-5, random_state=42,
                 n_jobs=None, max_epochs=20, batch_size=256, polish_iter=30, scaling="standardise"):
        super().__init__(Cs=Cs, cv=cv, class_weight=class_weight, max_iter=max_iter, tol=tol,
                         random_state=random_state, n_jobs=n_jobs, max_epochs=max_epochs, batch_size=batch_size,
                         polish_iter=polish_iter, scaling=scaling)

    def _score(self, dec, y_enc):
        if dec.shape[1] == 1:
            pred = (dec[:, 0] > 0).astype(int)
            t = np.where(y_enc == 1, 1.0, -1.0)[:, None]
        else:
            pred = dec.argmax(1)
            t = -np.ones_like(dec)
            t[np.arange(len(y_enc)), y_enc] = 1.0
        hinge = float(np.mean(np.sum(np.maximum(0.0, 1.0 - t * dec) ** 2, axis=1)))
        return float(np.mean(pred == y_enc)), hinge

    def _finish(self, oof_dec, y_enc):
        self.platt_ = fit_platt(oof_dec, y_enc)

    def predict_proba(self, X) -> np.ndarray:
        return calibrated_proba(self.decision_function(X), self.platt_)

    def predict(self, X) -> np.ndarray:
        dec = self.decision_function(X)
        idx = (dec[:, 0] > 0).astype(int) if dec.shape[1] == 1 else dec.argmax(1)
        return self.classes_[idx]

    def to_torch(self):
        from .torch_modules import CalibratedLinear

        return CalibratedLinear(self.mean_, self.scale_, self.coef_, self.intercept_, self.platt_, self.scaling_)


def fit_platt(dec: np.ndarray, y_enc: np.ndarray) -> np.ndarray:
    """(k, 2) slopes and offsets of the calibration map.

    Two classes: Platt's sigmoid on the one decision value. More classes: softmax(a_j * z_j + b_j)
    fitted by cross-entropy on all k columns at once ("vector scaling"); per-class sigmoids that are
    normalised afterwards come out under-confident when several classes compete.
    """
    from scipy.optimize import minimize

    from .solver import lbfgs_fit, loss_and_grad

    dec = np.asarray(dec, np.float64)
    if dec.shape[1] == 1:
        W, b, _ = lbfgs_fit(dec, y_enc, 2, C=1e4, loss="binomial", max_iter=200, tol=1e-8)
        return np.array([[float(W[0, 0]), float(b[0])]], np.float32)
    k = dec.shape[1]
    s = np.full(len(y_enc), 1.0 / len(y_enc))
    y_enc = np.asarray(y_enc, np.int64)

    def fun(x):
        a, c = x[:k], x[k:]
        value, G = loss_and_grad("multinomial", dec * a + c, y_enc, s)
        return value + 1e-4 * float(c @ c), np.concatenate([(G * dec).sum(0), G.sum(0) + 2e-4 * c])

    x = minimize(fun, np.concatenate([np.ones(k), np.zeros(k)]), jac=True, method="L-BFGS-B",
                 options={"maxiter": 200, "gtol": 1e-8}).x
    return np.column_stack([x[:k], x[k:]]).astype(np.float32)


def calibrated_proba(dec: np.ndarray, platt: np.ndarray) -> np.ndarray:
    z = dec.astype(np.float64) * platt[:, 0] + platt[:, 1]
    if z.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1 - p, p])
    return softmax(z)


__all__ = ["LinearSVMHead", "calibrated_proba", "fit_platt"]
