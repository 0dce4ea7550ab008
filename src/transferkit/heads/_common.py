"""Pieces every head shares: input checks, stratified folds, class weights, the standardiser
(in one go or streamed chunk by chunk) and a NumPy softmax."""

from __future__ import annotations

import numbers
import os

import numpy as np

from ..errors import AdvisedError, TransferkitError
from .folds import stratified_kfold

LOG_FLOOR = float(np.log(1e-300))  # log of a zero probability (k-NN votes), kept finite


def check_xy(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"X must be 2-D with one row per label, got X {X.shape} and y {y.shape}")
    step = max(1, 16_000_000 // max(X.shape[1], 1)) if X.ndim == 2 else len(X)  # no full-size temporary
    if not all(np.isfinite(X[i : i + step]).all() for i in range(0, len(X), step)):
        raise TransferkitError("the features contain NaN or infinite values")
    return X, y


def check_folds(y: np.ndarray, cv, class_names=None, what: str = "cross-validation folds", setting: str = "cv") -> None:
    """One clear error when a class is too small for ``cv`` stratified folds (or, for a predefined
    split, missing from its fitting part). ``setting``: the caller's argument that sets the folds, named
    in the error (an :class:`AdvisedError`, which the CLI words as its flag)."""
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise TransferkitError("the train split has only one class; a classifier needs at least two")
    if not is_fold_count(cv):
        for tr, _ in cv.split(np.zeros(len(y)), y):
            missing = np.setdiff1d(classes, np.asarray(y)[tr])
            if len(missing):
                name = class_names[int(missing[0])] if class_names is not None else missing[0]
                raise TransferkitError(f"class {name!r} has no training example(s) outside the validation part, "
                                       "so the validation part cannot choose hyper-parameters for it")
        return
    smallest = int(counts.min())
    if smallest < cv:
        name = classes[counts.argmin()]
        if class_names is not None:
            name = class_names[int(name)]
        elif isinstance(name, np.generic):
            name = name.item()
        problem = f"class {name!r} has {smallest} training example(s), fewer than the {cv} {what}"
        if smallest >= 2:
            raise AdvisedError("{problem}; use {o[" + setting + "=@smallest]}", problem=problem, smallest=smallest)
        raise TransferkitError(f"{problem}; add images to it or remove that class")


def is_fold_count(cv) -> bool:
    return isinstance(cv, numbers.Integral)


def n_folds(cv) -> int:
    """How many folds ``cv`` makes: a fold count, or a scikit-learn splitter (``get_n_splits``)."""
    return int(cv) if is_fold_count(cv) else int(cv.get_n_splits())


def stratified_folds(y: np.ndarray, cv, random_state) -> list[tuple[np.ndarray, np.ndarray]]:
    """The same folds for every head given the same labels and seed (so `--head auto` compares fairly).

    ``cv`` is a fold count, or — as in scikit-learn's ``LogisticRegressionCV`` — a splitter such as
    ``PredefinedSplit`` whose folds are used as they are (``train`` passes the file's val split so)."""
    if not is_fold_count(cv):
        return [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(np.zeros(len(y)), y)]
    return stratified_kfold(y, cv, random_state)


def holdout(y: np.ndarray, fraction: float, random_state) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit rows, validation rows): at least one validation row per class."""
    rng = np.random.default_rng(random_state)
    fit, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = max(1, int(round(fraction * len(idx))))
        if len(idx) - n_val < 1:
            raise TransferkitError(
                f"class {c!r} has {len(idx)} training example(s); the validation part needs at least 2 per class "
                "(add images to it; a head built in Python can set validation_fraction=0 to train without one)"
            )
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def class_weights(y_enc: np.ndarray, n_classes: int, class_weight) -> np.ndarray:
    """Per-class weights: ones, or scikit-learn's "balanced" n / (n_classes * count(class)) (0 for a
    class with no rows)."""
    if class_weight is None:
        return np.ones(n_classes, np.float64)
    if class_weight != "balanced":
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    counts = np.bincount(y_enc, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y_enc) / (n_classes * np.maximum(counts, 1)), 0.0)


def sample_weights(y_enc: np.ndarray, n_classes: int, class_weight) -> np.ndarray:
    """Per-row weights: each row's :func:`class_weights`."""
    if class_weight is None:
        return np.ones(len(y_enc), np.float64)
    return class_weights(y_enc, n_classes, class_weight)[y_enc]


def n_workers(n_jobs, n_tasks: int) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:  # one per task (3 folds on 2 cores keep both busy to the end), at most 2 per core
        return max(1, min(n_tasks, 2 * cpus))
    if n_jobs < 0:
        return max(1, min(n_tasks, cpus + 1 + n_jobs))
    return max(1, min(n_tasks, n_jobs))


class RunningStats:
    """Column mean and standard deviation accumulated chunk by chunk (float64, shifted sums).

    Feeding the whole array at once gives the same numbers as feeding it in chunks (to rounding),
    which is what makes the out-of-core path comparable with the in-memory one.
    """

    def __init__(self):
        self.n = 0
        self.shift = None
        self.s1 = None
        self.s2 = None

    def update(self, X: np.ndarray) -> "RunningStats":
        X = np.asarray(X)
        if not len(X):
            return self
        if self.shift is None:
            self.shift = X[0].astype(np.float64)
            self.s1 = np.zeros_like(self.shift)
            self.s2 = np.zeros_like(self.shift)
        d = X - self.shift.astype(X.dtype)  # shifted by the first row: small values, little cancellation
        self.s1 += d.sum(axis=0, dtype=np.float64)
        self.s2 += np.square(d).sum(axis=0, dtype=np.float64)
        self.n += len(X)
        return self

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        m = self.s1 / self.n
        var = np.maximum(self.s2 / self.n - m * m, 0.0)
        std = np.sqrt(var)
        std[std < 1e-6 * max(1.0, float(np.abs(self.shift + m).max()))] = 1.0  # constant columns stay put
        return (self.shift + m).astype(np.float32), std.astype(np.float32)


def standardiser(X: np.ndarray, chunk_rows: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    stats = RunningStats()
    for start in range(0, len(X), chunk_rows):
        stats.update(X[start : start + chunk_rows])
    return stats.result()


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def log_loss(y_enc: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba[np.arange(len(y_enc)), y_enc], 1e-15, 1.0)
    return float(-np.mean(np.log(p)))


def pick_best(mean_acc: np.ndarray, tie_loss: np.ndarray) -> int:
    """Highest mean accuracy; ties (common on easy data) go to the lowest tie-break loss."""
    mean_acc = np.asarray(mean_acc)
    tied = np.flatnonzero(mean_acc >= mean_acc.max() - 1e-12)
    return int(tied[np.argmin(np.asarray(tie_loss)[tied])])


def pick_within_noise(mean_acc, tie_loss, n_val: int) -> int:
    """The lowest tie-break loss among the candidates whose mean accuracy is within one standard error
    (``sqrt(a (1 - a) / n_val)`` at the best accuracy a, over ``n_val`` held-out rows) of the best; on
    equal losses, the first. Accuracy differences inside that band are noise, and the loss tells
    apart what accuracy cannot: a C so small that every score is nearly uniform can still rank the
    classes right, but its probabilities are useless."""
    mean_acc = np.asarray(mean_acc, np.float64)
    a = float(mean_acc.max())
    band = np.sqrt(max(a * (1.0 - a), 0.0) / max(n_val, 1))
    tied = np.flatnonzero(mean_acc >= a - band - 1e-12)
    return int(tied[np.argmin(np.asarray(tie_loss)[tied])])


def json_params(params: dict) -> dict:
    """get_params() made JSON-safe (tuples -> lists, numpy scalars -> Python)."""
    out = {}
    for k, v in params.items():
        if k == "cv" and v is not None and not is_fold_count(v):  # a splitter: its kind and fold count
            v = {"splitter": type(v).__name__, "n_splits": n_folds(v)}
        elif isinstance(v, (tuple, list)):
            v = [x.item() if isinstance(x, np.generic) else x for x in v]
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out
