"""What the logistic-regression and linear-SVM heads share: standardised features, a log-spaced C path
walked with warm starts inside each stratified CV fold, folds solved in parallel threads, the
row-space solve for wide features, convergence bookkeeping and the NumPy-only linear decision.

Subclasses say which loss to minimise, how to score a held-out fold, and how to turn decision
values into probabilities.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from ._common import (check_folds, check_xy, json_params, n_folds, n_workers, pick_best, sample_weights, standardiser,
                      stratified_folds)

# PyTorch (the solver) is imported when fitting: a saved head predicts with NumPy alone, so
# `transferkit predict` never pays for importing torch on account of its head.

# Log-spaced, one value per decade; includes the grid of the classic Keras transfer-learning tutorial
# recipe, 0.1, 1, 10, 100, 1000, 10000.
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 9))


@contextlib.contextmanager
def torch_threads(n: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class LinearHead(ClassifierMixin, BaseEstimator):
    """Base class; see :class:`~transferkit.heads.LogisticHead` for the parameters."""

    kind = "linear"
    loss = "multinomial"
    needs_oof = False  # out-of-fold decisions are needed even for a single C (calibration)

    def __init__(self, Cs=DEFAULT_CS, cv=3, class_weight=None, max_iter=1000, tol=1e-4, random_state=42,
                 n_jobs=None, max_epochs=20, batch_size=256, polish_iter=30):
        self.Cs = Cs
        self.cv = cv
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.polish_iter = polish_iter

    # -- subclass hooks ----------------------------------------------------------------------------
    def _score(self, dec: np.ndarray, y_enc: np.ndarray) -> tuple[float, float]:
        """(accuracy, tie-break loss) of decision values on held-out rows."""
        raise NotImplementedError

    def _finish(self, oof_dec: np.ndarray | None, y_enc: np.ndarray) -> None:
        """Called after the final coefficients are set (calibration, for example)."""

    tie_name = "mean_loss"

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, X, y):
        import torch

        from .solver import RowSpace, lbfgs_fit, use_row_space

        X, y = check_xy(X, y)
        self.classes_ = np.unique(y)
        y_enc = np.searchsorted(self.classes_, y)
        K = len(self.classes_)
        Cs = sorted(float(c) for c in self.Cs)
        n, D = X.shape
        run_cv = len(Cs) > 1 or self.needs_oof or getattr(self, "_always_cv", False)
        if run_cv:
            check_folds(y, self.cv)
        elif K < 2:
            check_folds(y, 1)
        self.mean_, self.scale_ = standardiser(X)
        Xs = torch.from_numpy((X - self.mean_) / self.scale_)
        del X
        self.solver_ = "row-space L-BFGS" if use_row_space(n, D) else "L-BFGS"
        gram = None
        if self.solver_ == "row-space L-BFGS":
            gram = (Xs @ Xs.T).to(torch.float64)
            primal = None
        else:
            primal = Xs.double() if n * D <= 20_000_000 else Xs

        def features(tr, te):
            if gram is None:
                return primal[tr], (primal[te] if te is not None else None), None
            rs = RowSpace(gram[tr][:, tr])
            return rs.features(), (rs.project(gram[te][:, tr]) if te is not None else None), rs

        def path(tr, te, Cs_):
            F_tr, F_te, _ = features(tr, te)
            w = sample_weights(y_enc[tr], K, self.class_weight)
            init, scores, ties, decs, infos = None, [], [], [], []
            for C in Cs_:
                W, b, info = lbfgs_fit(F_tr, y_enc[tr], K, C, self.loss, w, init, self.max_iter, self.tol)
                init = (W, b)
                dec = (F_te @ W.to(F_te.dtype) + b.to(F_te.dtype)).numpy()
                acc, tie = self._score(dec, y_enc[te])
                scores.append(acc), ties.append(tie), decs.append(dec), infos.append(info)
            return scores, ties, decs, infos

        cpus = torch.get_num_threads()
        oof = None
        if run_cv:
            folds = stratified_folds(y_enc, self.cv, self.random_state)
            workers = n_workers(self.n_jobs, len(folds))
            with torch_threads(max(1, cpus // workers)), ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(lambda f: path(f[0], f[1], Cs), folds))
            fold_scores = np.array([r[0] for r in results])
            fold_ties = np.array([r[1] for r in results])
            infos = [i for r in results for i in r[3]]
            mean, mean_tie = fold_scores.mean(axis=0), fold_ties.mean(axis=0)
            best = pick_best(mean, mean_tie)
            k_out = results[0][2][best].shape[1]
            oof = np.zeros((n, k_out))
            for (tr, te), r in zip(folds, results):
                oof[te] = r[2][best]
        else:
            fold_scores, mean, mean_tie, infos, best = np.zeros((0, 1)), np.zeros(1), np.zeros(1), [], 0
        self.C_ = Cs[best]
        # Final fit on every row: walk the path up to the chosen C (warm starts converge faster).
        all_rows = np.arange(n)
        F, _, rs = features(all_rows, None)
        w = sample_weights(y_enc, K, self.class_weight)
        init = None
        for C in Cs[: best + 1] if run_cv else [self.C_]:
            W, b, info = lbfgs_fit(F, y_enc, K, C, self.loss, w, init, self.max_iter, self.tol)
            init = (W, b)
            infos.append(info)
        W = rs.coef(Xs, W) if rs is not None else W.to(torch.float64)
        self._set_coef(W.numpy().T, b.numpy())
        self.n_iter_ = [i.n_iter for i in infos]
        self.n_not_converged_ = int(sum(i.hit_max_iter for i in infos))
        self.n_fits_ = len(infos)
        self.cv_results_ = {
            "param": "C",
            "C": Cs,
            "mean_accuracy": [float(v) for v in mean],
            "std_accuracy": [float(v) for v in fold_scores.std(axis=0)] if fold_scores.size else [0.0],
            self.tie_name: [float(v) for v in mean_tie],
            "folds": n_folds(self.cv) if run_cv else 0,
        }
        self.cv_score_ = float(mean[best]) if run_cv else None
        # out-of-fold decisions of the rows the folds held out (every row with k folds; the val rows of a predefined split)
        held = np.unique(np.concatenate([te for _, te in folds])) if run_cv else None
        self._finish(oof[held] if run_cv else None, y_enc[held] if run_cv else y_enc)
        return self

    def fit_stream(self, source):
        """Train out of core from a :class:`~transferkit.heads.streaming.ChunkSource` (minibatch Adam)."""
        from .sgd import fit_linear_stream

        fit_linear_stream(self, source)
        return self

    def _set_coef(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept.astype(np.float32)

    # -- prediction (NumPy only) -------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # -- persistence (arrays + JSON, no pickle) ----------------------------------------------------
    _extra_arrays: tuple[str, ...] = ()

    def to_state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"mean": self.mean_, "scale": self.scale_, "coef": self.coef_, "intercept": self.intercept_,
                  "classes": np.asarray(self.classes_).astype(np.int64)}
        for name in self._extra_arrays:
            arrays[name] = getattr(self, name + "_")
        info = {"params": json_params(self.get_params()), "C": self.C_, "cv_results": self.cv_results_,
                "n_not_converged": self.n_not_converged_, "n_fits": self.n_fits_,
                "solver": getattr(self, "solver_", "L-BFGS"), "n_iter": list(getattr(self, "n_iter_", [])),
                "cv_score": getattr(self, "cv_score_", None)}
        if hasattr(self, "sgd_"):
            info["sgd"] = self.sgd_
        return arrays, info

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], info: dict):
        head = cls(**info["params"])
        head.mean_, head.scale_ = arrays["mean"], arrays["scale"]
        head.coef_, head.intercept_ = arrays["coef"], arrays["intercept"]
        head.classes_ = arrays["classes"]
        for name in cls._extra_arrays:
            setattr(head, name + "_", arrays[name])
        head.C_, head.cv_results_ = info["C"], info["cv_results"]
        head.n_not_converged_, head.n_fits_ = info["n_not_converged"], info["n_fits"]
        head.solver_ = info.get("solver", "L-BFGS")
        head.n_iter_ = info.get("n_iter", [])
        head.cv_score_ = info.get("cv_score")
        if "sgd" in info:
            head.sgd_ = info["sgd"]
        return head

    def describe(self) -> dict:
        acc = self.cv_results_.get("mean_accuracy") or []
        return {"head": self.kind, "C": self.C_, "cv_accuracy": max(acc) if self.cv_results_.get("folds") else None}
