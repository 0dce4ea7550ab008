"""`--head auto`: fit every candidate head on the same stratified CV folds and keep the best.

Each candidate tunes its own hyper-parameter (C, k) on the folds, so its score is the mean CV
accuracy at its chosen value; the MLP is trained once per fold to get its score. Ties go to the
earlier candidate (logreg first: the cheapest and best-calibrated). The selector is used like
scikit-learn's ``GridSearchCV``: the winner is ``best_estimator_``, already refitted on every row,
and the table of scores and times is ``results_``.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

DEFAULT_CANDIDATES = ("logreg", "linear-svm", "mlp", "knn")


def cv_summary(head) -> tuple[float | None, float | None, str]:
    """(mean CV accuracy, its std across folds, the chosen hyper-parameter) of a fitted head."""
    res = getattr(head, "cv_results_", {}) or {}
    if not res.get("folds"):
        return None, None, ""
    param = res.get("param")
    mean = res["mean_accuracy"]
    if param is None:
        return mean[0], res["std_accuracy"][0], ""
    values = res[param]
    chosen = {"C": getattr(head, "C_", None), "k": getattr(head, "k_", None)}[param]
    i = values.index(chosen) if chosen in values else int(np.argmax(mean))
    return mean[i], res["std_accuracy"][i], f"{param}={chosen:g}"


class AutoHead(ClassifierMixin, BaseEstimator):
    """Try ``candidates`` with ``cv`` folds; ``best_estimator_`` is the winner, ``results_`` the table."""

    kind = "auto"

    def __init__(self, candidates=DEFAULT_CANDIDATES, cv=3, class_weight=None, random_state=42, n_jobs=None,
                 head_params=None):
        self.candidates = candidates
        self.cv = cv
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.head_params = head_params

    def fit(self, X, y, progress=None):
        from .registry import make_fixed_head as make_head

        results, heads = [], []
        for kind in self.candidates:
            if progress:
                progress(kind)
            extra = dict((self.head_params or {}).get(kind, {}))
            head = make_head(kind, cv=self.cv, class_weight=self.class_weight, random_state=self.random_state,
                             n_jobs=self.n_jobs, **extra)
            if kind == "mlp":
                head.set_params(cv=self.cv)  # scored on the same folds as the others
            else:
                head._always_cv = True  # scored on the folds even when given a single C or k
            start = time.perf_counter()
            head.fit(X, y)
            seconds = time.perf_counter() - start
            mean, std, chosen = cv_summary(head)
            results.append({"head": kind, "cv_accuracy": mean, "cv_std": std, "chosen": chosen,
                            "seconds": round(seconds, 3)})
            heads.append(head)
        scores = [r["cv_accuracy"] if r["cv_accuracy"] is not None else -1.0 for r in results]
        best = int(np.argmax(scores))  # first of the ties
        for i, r in enumerate(results):
            r["best"] = i == best
        self.results_ = results
        self.best_estimator_ = heads[best]
        self.best_kind_ = results[best]["head"]
        self.classes_ = heads[best].classes_
        return self

    def predict_proba(self, X):
        return self.best_estimator_.predict_proba(X)

    def predict(self, X):
        return self.best_estimator_.predict(X)

    def to_torch(self):
        return self.best_estimator_.to_torch()
