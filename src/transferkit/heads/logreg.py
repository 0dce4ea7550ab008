"""Logistic regression on standardised features, with C chosen by stratified k-fold cross-validation.

Behaves like a scikit-learn classifier (hyper-parameters in ``__init__``, ``fit`` returns self,
learned state ends in ``_``). Each fold walks the C grid from strong to weak regularisation with
warm starts; folds run in parallel threads (the solver spends its time in BLAS, which releases the
GIL). Fits that hit ``max_iter`` are counted in ``n_not_converged_`` and reported, not hidden.

Prediction needs only NumPy and the learned arrays, so a saved head loads without scikit-learn
objects and without pickle.
"""

from __future__ import annotations

import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from ..errors import TransferkitError

# Log-spaced, one value per decade; includes the seeds' grid 0.1, 1, 10, 100, 1000, 10000.
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 9))


def check_folds(y: np.ndarray, cv: int, class_names=None) -> None:
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise TransferkitError("the train split has only one class; a classifier needs at least two")
    smallest = int(counts.min())
    if smallest < cv:
        name = classes[counts.argmin()].item()
        if class_names is not None:
            name = repr(class_names[int(name)])
        hint = f"use --cv {smallest}" if smallest >= 2 else "add images to it or remove that class"
        raise TransferkitError(
            f"class {name} has {smallest} training example(s), fewer than the {cv} cross-validation folds; {hint}"
        )


class LogisticHead(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression with cross-validated C.

    Parameters
    ----------
    Cs : sequence of float, default one per decade from 1e-4 to 1e4
        Inverse regularisation strengths to try.
    cv : int, default 3
        Number of stratified folds. The best C has the highest mean CV accuracy; ties go to the
        lowest mean CV log-loss.
    class_weight : None or "balanced"
    max_iter, tol : L-BFGS stopping rules.
    random_state : int, seeds the fold assignment.
    n_jobs : int or None, folds run in parallel (None: one per fold, at most the CPUs).
    """

    kind = "logreg"

    def __init__(self, Cs=DEFAULT_CS, cv=3, class_weight=None, max_iter=1000, tol=1e-4, random_state=42, n_jobs=None):
        self.Cs = Cs
        self.cv = cv
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- fitting ---------------------------------------------------------------------------------
    def _model(self, C: float) -> LogisticRegression:
        return LogisticRegression(C=C, max_iter=self.max_iter, tol=self.tol, class_weight=self.class_weight, warm_start=True)

    def _path(self, X_tr, y_tr, X_te, y_te, Cs):
        mean, scale = _standardiser(X_tr)
        X_tr, X_te = (X_tr - mean) / scale, (X_te - mean) / scale
        model, scores, losses, not_converged = None, [], [], 0
        for C in Cs:
            model = model.set_params(C=C) if model is not None else self._model(C)
            model.fit(X_tr, y_tr)
            not_converged += int(np.max(model.n_iter_) >= self.max_iter)
            scores.append(float(np.mean(model.predict(X_te) == y_te)))
            losses.append(float(log_loss(y_te, model.predict_proba(X_te), labels=model.classes_)))
        return scores, losses, not_converged

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be 2-D with one row per label, got X {X.shape} and y {y.shape}")
        Cs = sorted(float(c) for c in self.Cs)
        self.classes_ = np.unique(y)
        n_jobs = self.n_jobs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if len(Cs) > 1:
                check_folds(y, self.cv)
                folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state).split(X, y)
                results = Parallel(n_jobs=n_jobs or self.cv, prefer="threads")(
                    delayed(self._path)(X[tr], y[tr], X[te], y[te], Cs) for tr, te in folds
                )
                fold_scores = np.array([r[0] for r in results])
                fold_losses = np.array([r[1] for r in results])
                not_converged = sum(r[2] for r in results)
                mean, mean_loss = fold_scores.mean(axis=0), fold_losses.mean(axis=0)
                # Best mean accuracy; ties (common on easy data) go to the lowest CV log-loss, which
                # keeps probabilities calibrated instead of picking the strongest regularisation.
                tied = np.flatnonzero(mean >= mean.max() - 1e-12)
                best = int(tied[np.argmin(mean_loss[tied])])
            else:
                fold_scores, mean, mean_loss, not_converged, best = np.zeros((0, 1)), np.zeros(1), np.zeros(1), 0, 0
            self.C_ = Cs[best]
            self.mean_, self.scale_ = _standardiser(X)
            final = self._model(self.C_).fit((X - self.mean_) / self.scale_, y)
        self.n_not_converged_ = not_converged + int(np.max(final.n_iter_) >= self.max_iter)
        self.n_fits_ = fold_scores.size + 1
        self.cv_results_ = {
            "C": Cs,
            "mean_accuracy": [float(v) for v in mean],
            "std_accuracy": [float(v) for v in fold_scores.std(axis=0)] if fold_scores.size else [0.0],
            "mean_log_loss": [float(v) for v in mean_loss],
            "folds": int(self.cv),
        }
        coef, intercept = final.coef_, final.intercept_
        if coef.shape[0] == 1:  # binary: express the sigmoid as a two-class softmax
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept.astype(np.float32)
        return self

    # -- prediction (NumPy only) -----------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        z = self.decision_function(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def to_torch(self):
        """A ``torch.nn.Module`` mapping features (N, D) to class probabilities (N, K), for export."""
        from .torch_modules import LinearSoftmax

        return LinearSoftmax(self.mean_, self.scale_, self.coef_, self.intercept_)

    # -- persistence (arrays + JSON, no pickle) --------------------------------------------------
    def to_state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {
            "mean": self.mean_, "scale": self.scale_, "coef": self.coef_,
            "intercept": self.intercept_, "classes": self.classes_.astype(np.int64),
        }
        params = self.get_params()
        params["Cs"] = [float(c) for c in params["Cs"]]
        info = {"params": params, "C": self.C_, "cv_results": self.cv_results_,
                "n_not_converged": self.n_not_converged_, "n_fits": self.n_fits_}
        return arrays, info

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], info: dict) -> "LogisticHead":
        head = cls(**info["params"])
        head.mean_, head.scale_ = arrays["mean"], arrays["scale"]
        head.coef_, head.intercept_ = arrays["coef"], arrays["intercept"]
        head.classes_ = arrays["classes"]
        head.C_, head.cv_results_ = info["C"], info["cv_results"]
        head.n_not_converged_, head.n_fits_ = info["n_not_converged"], info["n_fits"]
        return head

    def describe(self) -> dict:
        return {"head": self.kind, "C": self.C_, "cv_accuracy": max(self.cv_results_["mean_accuracy"]) if self.cv_results_["mean_accuracy"] else None}


def _standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64)
    std[std < 1e-12] = 1.0  # constant features stay put instead of dividing by zero
    return mean.astype(np.float32), std.astype(np.float32)
