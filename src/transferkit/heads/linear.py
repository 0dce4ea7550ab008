"""What the logistic-regression and linear-SVM heads share: the feature scaling and C chosen together
by stratified cross-validation, a log-spaced C path walked with warm starts inside each fold, folds
solved in parallel threads, the row-space solve for wide features, convergence bookkeeping and the
NumPy-only linear decision.

How the settings are chosen (all on the train split, same folds for every candidate):

1. For each candidate scaling (:mod:`.scaling`), every fold walks the C grid from strong to weak
   regularisation, each fit warm-started from the previous C. With the default grid (``Cs="auto"``,
   one value per decade from 1e-4 to 1e4) the walk stops early once the mean CV tie-break loss
   (log-loss for logistic regression) has risen at two C values in a row while the mean CV accuracy
   gained nothing beyond one standard error over its best before them: past its optimum the loss
   only grows, and the weakly regularised end of the path is where fits are slowest. If the best C
   sits on an edge of the grid, the grid is extended by up to three decades past that edge. Large
   problems (and wide features, whose Gram matrices are the cost) first compare the scalings on half
   of fold 1's training rows, then walk the chosen one on every fold near the C preferred there.
2. Each scaling's best C: among the C values whose mean CV accuracy is within one standard error
   of the best (``sqrt(a (1 - a) / n_held_out)``), the lowest mean tie-break loss; accuracy
   differences inside that band are noise, and the loss tells apart what accuracy cannot (see
   :func:`~._common.pick_within_noise`).
3. Between scalings, the same rule on each scaling's best C; equal losses go to the earlier scaling
   in :data:`~.scaling.AUTO_SCALINGS`.

Subclasses say which loss to minimise, how to score a held-out fold, and how to turn decision
values into probabilities. Fitting needs NumPy and SciPy only (no PyTorch).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import scaling as scalings
from ._common import (
    check_folds,
    check_xy,
    json_params,
    n_workers,
    pick_within_noise,
    sample_weights,
    stratified_folds,
)
from .estimator import ClassifierBase

# Log-spaced, one value per decade; includes the grid of the classic Keras transfer-learning tutorial
# recipe, 0.1, 1, 10, 100, 1000, 10000.
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 9))
EXTRA_DECADES = 3  # how far the default grid is extended past an edge where the best C sits
SCREEN_ALL_FOLDS = 100_000_000  # above this much work per solver iteration, scalings are screened on one fold
# Large problems: every fold then walks the screen's C values from SCREEN_BEFORE_BEST before the screen's best
# to SCREEN_PAST_BEST past it (and further where the best then sits on an edge: the walk grows).
SCREEN_BEFORE_BEST, SCREEN_PAST_BEST = 2, 1
CV_TOL_FACTOR = 100.0
TIGHT_TOL = 1e-6  # below this gradient tolerance the solve is in float64 (float32 gradients cannot meet it)


class LinearHead(ClassifierBase):
    """Base class; see :class:`~transferkit.heads.LogisticHead` for the parameters."""

    kind = "linear"
    loss = "multinomial"
    needs_oof = False  # out-of-fold decisions are needed even for a single C (calibration)

    def __init__(self, Cs="auto", cv=3, class_weight=None, max_iter=1000, tol=1e-5, random_state=42,
                 n_jobs=None, max_epochs=20, batch_size=256, polish_iter=30, scaling="auto"):
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
        self.scaling = scaling

    # -- subclass hooks ----------------------------------------------------------------------------
    def _score(self, dec: np.ndarray, y_enc: np.ndarray) -> tuple[float, float]:
        """(accuracy, tie-break loss) of decision values on held-out rows."""
        raise NotImplementedError

    def _finish(self, oof_dec: np.ndarray | None, y_enc: np.ndarray) -> None:
        """Called after the final coefficients are set (calibration, for example)."""

    tie_name = "mean_loss"

    # -- fitting -----------------------------------------------------------------------------------
    def _grid(self) -> tuple[list[float], bool]:
        """(sorted C values, whether the grid is the adaptive default)."""
        if isinstance(self.Cs, str):
            if self.Cs != "auto":
                raise ValueError(f"Cs must be 'auto' or a sequence of positive numbers, got {self.Cs!r}")
            return list(DEFAULT_CS), True
        Cs = sorted(float(c) for c in self.Cs)
        if not Cs or min(Cs) <= 0:
            raise ValueError(f"Cs must be positive numbers, got {self.Cs!r}")
        return Cs, False

    def fit(self, X, y):
        from threadpoolctl import threadpool_limits

        # BLAS runs one thread; the parallelism is ours (folds in threads, the final fit's rows and the
        # Gram matrix's columns in blocks), which stays fast when other processes share the cores.
        with threadpool_limits(1, "blas"):
            return self._fit(X, y)

    def _fit(self, X, y):
        from .scaled import Primal, Wide
        from .solver import lbfgs_fit, use_row_space

        X, y = check_xy(X, y)
        self.classes_ = np.unique(y)
        y_enc = np.searchsorted(self.classes_, y)
        K = len(self.classes_)
        Cs, adaptive = self._grid()
        n, D = X.shape
        run_cv = len(Cs) > 1 or adaptive or self.needs_oof or getattr(self, "_always_cv", False)
        if run_cv:
            check_folds(y, self.cv)
        elif K < 2:
            check_folds(y, 1)
        names = scalings.candidates(self.scaling, run_cv)
        params = {s: scalings.fit(s, X) for s in names}
        wide = use_row_space(n, D)
        self.solver_ = "row-space L-BFGS" if wide else "L-BFGS"
        dtype = np.float64 if self.tol < TIGHT_TOL else np.float32
        w_all = sample_weights(y_enc, K, self.class_weight)
        folds = stratified_folds(y_enc, self.cv, self.random_state) if run_cv else []
        work = (n if wide else D) * n * K  # per solver iteration, about
        # Large problems (and wide ones, where the Gram matrices are the cost) compare the scalings on a part
        # of the rows first; see below.
        large = run_cv and (work > SCREEN_ALL_FOLDS or wide) and len(names) > 1
        if large:
            tr0, te0 = folds[0]
            screen_rows = np.sort(tr0[np.argsort(y_enc[tr0], kind="stable")][::2])  # half of each class
        gram_threads = n_workers(self.n_jobs, os.cpu_count() or 1)
        shared = None
        if wide:  # Gram matrices of every scaling tried; only of the screen's rows when screening
            shared = Wide(names, X, params, gram_threads, np.union1d(screen_rows, te0) if large else None)

        def problem(s):
            return shared.for_scaling(s) if wide else Primal(s, X, *params[s], dtype)

        # Fits inside the folds stop at CV_TOL_FACTOR x tol (1e-3 by default): a held-out fold's accuracy does
        # not move with the last digits of the optimum (measured: the same best C and accuracy to 0.05 points on
        # the 100-class benchmark, 2.4x fewer iterations). The final fit on every row, the model that is kept,
        # uses tol itself (1e-5 by default, ten times scikit-learn's 1e-4): at weak regularisation on many
        # classes a fit stopped at 1e-4 is still far from its optimum, and that costs accuracy (measured on real
        # 100-class features, C = 10: test accuracy 0.924 at 1e-4, 0.938 at 1e-5, 0.940 at 1e-7).
        fit_one = lambda F, rows, C, init, threads=1, tol=self.tol * CV_TOL_FACTOR: lbfgs_fit(  # noqa: E731
            F, y_enc[rows], K, C, self.loss, w_all[rows], init, self.max_iter, tol, threads)
        final_threads = 1 if work < 4_000_000 else n_workers(self.n_jobs, os.cpu_count() or 1)

        def walk(s, fold_list, grid, grow, pool=None, threads=1):
            prob = problem(s)
            data = [(tr, te, *prob.fold(tr, te)) for tr, te in fold_list]
            del prob  # the folds' copies are all a walk needs
            fit = lambda F, rows, C, init: fit_one(F, rows, C, init, threads)  # noqa: E731
            return self._walk(grid, grow, data, y_enc, fit, infos, pool)

        infos, screen = [], {}
        if run_cv:
            if large:
                # Large problems: every scaling walks the grid on half of fold 1's training rows (held-out
                # rows as they are), one scaling at a time (memory), each fit's rows in blocks; the chosen
                # scaling then walks every fold near the C the screen preferred, from SCREEN_BEFORE_BEST
                # decades below it to SCREEN_PAST_BEST above (further, if that is where the best C then
                # sits: the walk grows past an edge). Its first fit starts cold: about as many iterations as
                # warm-started steps up from 1e-4 would take for that one alone.
                screen = {s: walk(s, [(screen_rows, te0)], Cs, adaptive, threads=final_threads) for s in names}
                n_val = len(te0)
            else:  # small problems: every scaling on every fold, one fit per thread
                with ThreadPoolExecutor(n_workers(self.n_jobs, len(names) * len(folds))) as pool:
                    if len(names) == 1:
                        screen = {names[0]: walk(names[0], folds, Cs, adaptive, pool)}
                    else:
                        screen = dict(zip(names, pool.map(lambda s: walk(s, folds, Cs, adaptive), names)))
                n_val = sum(len(te) for _, te in folds)
            best_of = {s: pick_within_noise(t["acc"].mean(0), t["tie"].mean(0), n_val) for s, t in screen.items()}
            chosen = names[pick_within_noise([screen[s]["acc"].mean(0)[best_of[s]] for s in names],
                                             [screen[s]["tie"].mean(0)[best_of[s]] for s in names], n_val)]
            if large:
                if wide:  # the full Gram matrix of the chosen scaling only
                    shared = None  # (the screen's go first)
                    shared = Wide([chosen], X, params, gram_threads)
                at = best_of[chosen]
                grid = screen[chosen]["C"][max(0, at - SCREEN_BEFORE_BEST) : at + SCREEN_PAST_BEST + 1]
                table = walk(chosen, folds, grid, adaptive, threads=final_threads)
            else:
                table = screen[chosen]
            acc, tie = table["acc"].mean(0), table["tie"].mean(0)
            best = pick_within_noise(acc, tie, sum(len(te) for _, te in folds))
            std = table["acc"].std(0)
        else:
            chosen, best, acc, std, tie = names[0], 0, np.zeros(1), np.zeros(1), np.zeros(1)
            table = {"C": Cs}
        self.scaling_ = chosen
        self.mean_, self.scale_ = params[chosen]
        self.C_ = table["C"][best]
        # Final fit on every row at the chosen C, started from the mean of the folds' solutions there
        # (close to the optimum: a fraction of the iterations of a cold start). In the row space the
        # folds' coordinates differ from the final ones, so there it starts from zero.
        init = None
        if run_cv and not wide:
            init = tuple(np.mean([fold[best][i] for fold in table["params"]], axis=0) for i in (0, 1))
        prob = problem(chosen)
        W, b, info = fit_one(prob.full(), np.arange(n), self.C_, init, final_threads, self.tol)
        infos.append(info)
        W = prob.coef(W, X)
        b = prob.intercept(W, b)
        del prob
        self._set_coef(W.T, b)
        self.n_iter_ = [i.n_iter for i in infos]
        self.n_not_converged_ = int(sum(i.hit_max_iter for i in infos))
        self.n_fits_ = len(infos)
        self.cv_results_ = {
            "param": "C",
            "C": [float(c) for c in table["C"]],
            "mean_accuracy": [float(v) for v in acc],
            "std_accuracy": [float(v) for v in std],
            self.tie_name: [float(v) for v in tie],
            "folds": len(folds),
            "scaling": chosen,
        }
        if len(screen) > 1:
            self.cv_results_["scaling_folds"] = 1 if large else len(folds)
            if large:
                self.cv_results_["scaling_train_rows"] = len(screen_rows)
            self.cv_results_["scalings"] = [
                {"scaling": s, "C": float(t["C"][best_of[s]]),
                 "mean_accuracy": float(t["acc"].mean(0)[best_of[s]]),
                 "std_accuracy": float(t["acc"].std(0)[best_of[s]]),
                 self.tie_name: float(t["tie"].mean(0)[best_of[s]]), "n_C": len(t["C"])}
                for s, t in screen.items()]
        self.cv_score_ = float(acc[best]) if run_cv else None
        if run_cv:  # out-of-fold decisions of the rows the folds held out (every row with k folds)
            held = np.concatenate([te for _, te in folds])
            oof = np.concatenate([fold[best] for fold in table["dec"]])
            order = np.argsort(held, kind="stable")
            self._finish(oof[order], y_enc[held[order]])
        else:
            self._finish(None, y_enc)
        return self

    def _walk(self, Cs, grow, data, y_enc, fit_one, infos, pool=None) -> dict:
        """The folds of ``data`` [(train rows, held-out rows, their features)] along the C path, with
        warm starts, in lockstep so that the path can stop early and grow (``grow``). Returns the C
        values and, per fold and C, accuracy and tie-break loss (arrays folds x C), held-out decisions
        and (W, b). With a ``pool``, the folds of one C run in parallel."""
        inits = [None] * len(data)
        n_val = sum(len(d[1]) for d in data)
        out = {"C": [], "acc": [[] for _ in data], "tie": [[] for _ in data], "dec": [[] for _ in data],
               "params": [[] for _ in data]}

        def one(i, C):
            tr, te, F_tr, F_te = data[i]
            W, b, info = fit_one(F_tr, tr, C, inits[i])
            infos.append(info)
            dec = F_te @ W.astype(F_te.dtype) + b.astype(F_te.dtype)
            return (W, b), dec, self._score(dec, y_enc[te])

        def step(C, at):
            out["C"].insert(at, C)
            results = (pool.map if pool else map)(lambda i: one(i, C), range(len(data)))
            for i, (params, dec, (acc, tie)) in enumerate(results):
                inits[i] = params
                for key, v in (("acc", acc), ("tie", tie), ("dec", dec), ("params", params)):
                    out[key][i].insert(at, v)

        def means():
            return np.mean(out["acc"], axis=0), np.mean(out["tie"], axis=0)

        def past_optimum() -> bool:
            # the loss rose twice in a row, and the last two C values gained no accuracy beyond the noise
            # band (one standard error) over the best before them
            acc, tie = means()
            if len(acc) < 3 or not tie[-1] > tie[-2] > tie[-3]:
                return False
            a = float(acc[:-2].max())
            return max(acc[-2:]) <= a + np.sqrt(max(a * (1.0 - a), 0.0) / max(n_val, 1))

        for C in Cs:
            step(C, len(out["C"]))
            if grow and past_optimum():
                break
        if grow:
            for direction in (+1, -1):
                for _ in range(EXTRA_DECADES):
                    edge = len(out["C"]) - 1 if direction > 0 else 0
                    if pick_within_noise(*means(), n_val) != edge or (direction > 0 and past_optimum()):
                        break
                    step(out["C"][edge] * 10.0 ** direction, edge + 1 if direction > 0 else 0)
        return {**out, "acc": np.array(out["acc"]), "tie": np.array(out["tie"])}

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
        scaled = scalings.apply(getattr(self, "scaling_", "standardise"), X, self.mean_, self.scale_)
        return scaled @ self.coef_.T + self.intercept_

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
                "cv_score": getattr(self, "cv_score_", None), "scaling": self.scaling_}
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
        head.scaling_ = info.get("scaling", "standardise")  # files from before the choice: standardised
        if "sgd" in info:
            head.sgd_ = info["sgd"]
        return head

    def describe(self) -> dict:
        acc = self.cv_results_.get("mean_accuracy") or []
        return {"head": self.kind, "scaling": self.scaling_, "C": self.C_,
                "cv_accuracy": max(acc) if self.cv_results_.get("folds") else None}

