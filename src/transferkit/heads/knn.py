"""k nearest neighbours by cosine similarity, with k chosen by stratified cross-validation.

The head keeps every (unit-length) training vector, so the model file grows with the train split
(N x D float32); it needs the train split in memory and has no out-of-core mode.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from ._common import check_folds, check_xy, class_weights, json_params, n_folds, pick_best, stratified_folds

DEFAULT_KS = (1, 3, 5, 7, 11, 15, 21)


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _class_vote_weights(y_enc: np.ndarray, n_classes: int, class_weight) -> np.ndarray:
    return class_weights(y_enc, n_classes, class_weight).astype(np.float32)


def _neighbour_votes(sims: np.ndarray, y_train: np.ndarray, k_max: int) -> np.ndarray:
    """Labels of the ``k_max`` most similar training rows, most similar first: (N, k_max)."""
    k_max = min(k_max, sims.shape[1])
    idx = torch.topk(torch.from_numpy(sims), k_max, dim=1).indices.numpy()
    return y_train[idx]


def _proba_from_labels(nb: np.ndarray, k: int, n_classes: int, vote_w: np.ndarray) -> np.ndarray:
    votes = np.zeros((len(nb), n_classes))
    rows = np.repeat(np.arange(len(nb)), k)
    np.add.at(votes, (rows, nb[:, :k].ravel()), vote_w[nb[:, :k].ravel()])
    return votes / votes.sum(axis=1, keepdims=True)


class KNNHead(ClassifierMixin, BaseEstimator):
    """Cosine-similarity k-NN; ``predict_proba`` is the (class-weighted) vote share of the k neighbours.

    Parameters
    ----------
    ks : sequence of int, default (1, 3, 5, 7, 11, 15, 21); a single value skips cross-validation.
    cv : int, default 3. Best k: highest mean CV accuracy, ties to the lowest Brier score.
    class_weight : None or "balanced" (votes weighted by inverse class frequency).
    random_state : int, seeds the fold assignment.
    """

    kind = "knn"

    def __init__(self, ks=DEFAULT_KS, cv=3, class_weight=None, random_state=42):
        self.ks = ks
        self.cv = cv
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(self, X, y):
        X, y = check_xy(X, y)
        self.classes_ = np.unique(y)
        y_enc = np.searchsorted(self.classes_, y)
        K = len(self.classes_)
        ks = sorted(int(k) for k in self.ks)
        if min(ks) < 1:
            raise ValueError(f"ks must be positive, got {ks}")
        U = _unit(X)
        if len(ks) > 1 or getattr(self, "_always_cv", False):
            check_folds(y, self.cv)
            folds = stratified_folds(y_enc, self.cv, self.random_state)
            acc = np.zeros((len(folds), len(ks)))
            brier = np.zeros_like(acc)
            for f, (tr, te) in enumerate(folds):
                w = _class_vote_weights(y_enc[tr], K, self.class_weight)
                nb = _neighbour_votes(U[te] @ U[tr].T, y_enc[tr], max(ks))
                onehot = np.eye(K)[y_enc[te]]
                for j, k in enumerate(ks):
                    p = _proba_from_labels(nb, min(k, nb.shape[1]), K, w)
                    acc[f, j] = np.mean(p.argmax(1) == y_enc[te])
                    brier[f, j] = np.mean(np.sum((p - onehot) ** 2, axis=1))
            mean = acc.mean(0)
            best = pick_best(mean, brier.mean(0))
            self.cv_results_ = {
                "param": "k",
                "k": ks,
                "mean_accuracy": mean.tolist(),
                "std_accuracy": acc.std(0).tolist(),
                "mean_brier": brier.mean(0).tolist(),
                "folds": n_folds(self.cv),
            }
            self.cv_score_ = float(mean[best])
        else:
            check_folds(y, 1)
            best = 0
            self.cv_results_ = {"param": "k", "k": ks, "mean_accuracy": [0.0], "std_accuracy": [0.0], "folds": 0}
            self.cv_score_ = None
        self.k_ = min(ks[best], len(y))
        self.train_ = U
        self.train_labels_ = y_enc.astype(np.int64)
        self.vote_weights_ = _class_vote_weights(y_enc, K, self.class_weight)
        return self

    def predict_proba(self, X) -> np.ndarray:
        U = _unit(X)
        out = []
        for s in range(0, len(U), 1024):  # bounded (1024 x N) similarity blocks
            nb = _neighbour_votes(U[s : s + 1024] @ self.train_.T, self.train_labels_, self.k_)
            out.append(_proba_from_labels(nb, self.k_, len(self.classes_), self.vote_weights_))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def to_torch(self):
        from .torch_modules import CosineKNN

        return CosineKNN(self.train_, self.train_labels_, len(self.classes_), self.k_, self.vote_weights_)

    def to_state(self):
        arrays = {
            "train": self.train_,
            "train_labels": self.train_labels_,
            "vote_weights": self.vote_weights_,
            "classes": np.asarray(self.classes_).astype(np.int64),
        }
        info = {
            "params": json_params(self.get_params()),
            "k": self.k_,
            "cv_results": self.cv_results_,
            "cv_score": self.cv_score_,
        }
        return arrays, info

    @classmethod
    def from_state(cls, arrays, info):
        head = cls(**info["params"])
        head.train_, head.train_labels_ = arrays["train"], arrays["train_labels"]
        head.vote_weights_, head.classes_ = arrays["vote_weights"], arrays["classes"]
        head.k_, head.cv_results_, head.cv_score_ = info["k"], info["cv_results"], info["cv_score"]
        return head

    def describe(self) -> dict:
        return {"head": self.kind, "k": self.k_, "cv_accuracy": self.cv_score_}
