"""A small neural-network head: the classic Keras transfer-learning tutorial's head (Dense, BatchNorm, Dropout 0.5,
softmax, Adam), with early stopping and its training curves kept in the model file.

A stratified ``validation_fraction`` of the train split is held out; after every epoch the loss and
accuracy on the rows trained on (averaged over the epoch's minibatches, in training mode, as Keras
reports them) and on the validation rows (evaluation mode) are appended to ``history_``. Training
stops when the validation loss has not improved for ``patience`` epochs, and the weights of the
best epoch are kept. The same loop trains from memory or streams chunks from a feature file
(:meth:`MLPHead.fit_stream`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from ._common import check_folds, check_xy, holdout, json_params, n_folds, sample_weights, softmax, stratified_folds
from .streaming import ArraySource
from .torch_modules import MLPNet, Softmax, torch_threads


def _hidden(hidden) -> tuple[int, ...]:
    if isinstance(hidden, (int, np.integer)):
        hidden = (int(hidden),)
    if isinstance(hidden, str):
        hidden = tuple(int(h) for h in hidden.replace(" ", "").split(",") if h)
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden sizes must be positive, got {hidden}")
    return hidden


class MLPHead(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron on standardised features (PyTorch), trained with Adam.

    Parameters
    ----------
    hidden : int, sequence of int or "512,128", default (256,)
        Width of each hidden layer; () is a softmax regression trained by Adam.
    dropout : float, default 0.5
    batch_norm : bool, default True
    lr, weight_decay : Adam's step size and L2 weight decay.
    batch_size : int, default 64
    max_epochs : int, default 100
    patience : int, default 10 (epochs without a lower validation loss before stopping)
    validation_fraction : float, default 0.1 (0: no validation part, train ``max_epochs`` epochs)
    class_weight : None or "balanced" (weights the loss)
    cv : None or int. If set, ``fit`` first trains one network per stratified fold to measure
        ``cv_score_`` (used by ``--head auto``), then the final network on every row.
    random_state : int, seeds initialisation, minibatch order and the validation part.
    """

    kind = "mlp"

    def __init__(
        self,
        hidden=(256,),
        dropout=0.5,
        batch_norm=True,
        lr=1e-3,
        weight_decay=0.0,
        batch_size=64,
        max_epochs=100,
        patience=10,
        validation_fraction=0.1,
        class_weight=None,
        cv=None,
        random_state=42,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.cv = cv
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, X, y):
        X, y = check_xy(X, y)
        source = ArraySource(X, y)
        if self.cv:
            check_folds(y, self.cv)
            y_enc = np.searchsorted(np.unique(y), y)
            scores = []
            for tr, te in stratified_folds(y_enc, self.cv, self.random_state):
                fold = MLPHead(**{**self.get_params(), "cv": None}).fit(X[tr], y[tr])
                scores.append(float(np.mean(fold.predict(X[te]) == y[te])))
            self.cv_results_ = {
                "param": None,
                "mean_accuracy": [float(np.mean(scores))],
                "std_accuracy": [float(np.std(scores))],
                "folds": n_folds(self.cv),
            }
            self.cv_score_ = float(np.mean(scores))
        else:
            self.cv_results_, self.cv_score_ = {"folds": 0}, None
        return self._fit_source(source)

    def fit_stream(self, source):
        """Train from a :class:`~transferkit.heads.streaming.FileSource` (chunks streamed each epoch)."""
        self.cv_results_, self.cv_score_ = {"folds": 0}, None
        return self._fit_source(source)

    def _fit_source(self, source):
        from .sgd import scaling_stream

        start = time.perf_counter()
        y = source.labels
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            check_folds(y, 1)
        y_enc = np.searchsorted(self.classes_, y)
        K = len(self.classes_)
        hidden = _hidden(self.hidden)
        if self.validation_fraction and self.validation_fraction > 0:
            fit_pos, val_pos = holdout(y_enc, self.validation_fraction, self.random_state)
        else:
            fit_pos, val_pos = np.arange(len(y)), np.zeros(0, np.int64)
        mean, scale = scaling_stream(source, "standardise")
        weights = torch.as_tensor(sample_weights(y_enc, K, self.class_weight), dtype=torch.float32)
        rng = np.random.default_rng(self.random_state)
        # Small layers: one thread is faster than several waking up for every tiny matrix product.
        work = self.batch_size * source.n_features * max(hidden or (K,))
        threads = 1 if work < 50_000_000 else torch.get_num_threads()
        with torch.random.fork_rng(devices=[]), torch_threads(threads):
            torch.manual_seed(int(self.random_state))
            net = MLPNet(source.n_features, hidden, K, float(self.dropout), bool(self.batch_norm))
            net.mean.copy_(torch.from_numpy(mean))
            net.scale.copy_(torch.from_numpy(scale))
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            hist = {"train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": []}
            best = (np.inf, None, 0)
            bad = 0
            for epoch in range(int(self.max_epochs)):
                net.train()
                tot_loss = tot_correct = seen = 0.0
                for X, _, pos in source.chunks(fit_pos, rng):
                    X = torch.from_numpy(X)
                    yb_all = torch.from_numpy(y_enc[pos])
                    for s in range(0, len(pos), self.batch_size):
                        xb, yb, wb = (
                            X[s : s + self.batch_size],
                            yb_all[s : s + self.batch_size],
                            weights[pos[s : s + self.batch_size]],
                        )
                        if len(yb) < 2 and self.batch_norm:
                            continue  # BatchNorm cannot train on a single row
                        logits = net(xb)
                        loss = (torch.nn.functional.cross_entropy(logits, yb, reduction="none") * wb).sum() / wb.sum()
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        tot_loss += float(loss.detach()) * len(yb)
                        tot_correct += float((logits.argmax(1) == yb).sum())
                        seen += len(yb)
                hist["train_loss"].append(tot_loss / max(seen, 1))
                hist["train_accuracy"].append(tot_correct / max(seen, 1))
                if len(val_pos):
                    vl, va = self._evaluate(net, source, val_pos, y_enc, weights)
                    hist["val_loss"].append(vl)
                    hist["val_accuracy"].append(va)
                    if vl < best[0] - 1e-7:
                        best, bad = (vl, {k: v.clone() for k, v in net.state_dict().items()}, epoch), 0
                    else:
                        bad += 1
                        if bad >= self.patience:
                            break
            if best[1] is not None:
                net.load_state_dict(best[1])
        net.eval()
        self.net_ = net
        self.history_ = hist
        self.n_epochs_ = len(hist["train_loss"])
        self.best_epoch_ = int(best[2]) + 1 if best[1] is not None else self.n_epochs_
        self.stopped_early_ = self.n_epochs_ < int(self.max_epochs)
        self.n_validation_ = int(len(val_pos))
        self.seconds_ = time.perf_counter() - start
        return self

    @staticmethod
    def _evaluate(net, source, positions, y_enc, weights) -> tuple[float, float]:
        net.eval()
        loss = correct = wsum = 0.0
        with torch.no_grad():
            for X, _, pos in source.chunks(positions):
                logits = net(torch.from_numpy(X))
                yb, wb = torch.from_numpy(y_enc[pos]), weights[pos]
                loss += float((torch.nn.functional.cross_entropy(logits, yb, reduction="none") * wb).sum())
                wsum += float(wb.sum())
                correct += float((logits.argmax(1) == yb).sum())
        net.train()
        return loss / max(wsum, 1e-12), correct / max(len(positions), 1)

    # -- prediction --------------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        with torch.no_grad():
            return self.net_(torch.from_numpy(X)).numpy()

    def predict_proba(self, X) -> np.ndarray:
        return softmax(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def to_torch(self):
        import copy

        return Softmax(copy.deepcopy(self.net_).eval())

    # -- persistence -------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        arrays["classes"] = np.asarray(self.classes_).astype(np.int64)
        params = json_params(self.get_params())
        params["hidden"] = list(_hidden(self.hidden))
        info = {
            "params": params,
            "history": self.history_,
            "n_epochs": self.n_epochs_,
            "best_epoch": self.best_epoch_,
            "stopped_early": self.stopped_early_,
            "n_validation": self.n_validation_,
            "cv_results": self.cv_results_,
            "cv_score": self.cv_score_,
            "n_features": int(self.net_.mean.shape[0]),
        }
        return arrays, info

    @classmethod
    def from_state(cls, arrays, info):
        head = cls(**info["params"])
        head.classes_ = arrays["classes"]
        net = MLPNet(
            info["n_features"], _hidden(head.hidden), len(head.classes_), float(head.dropout), bool(head.batch_norm)
        )
        net.load_state_dict(
            {k.removeprefix("net."): torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")}
        )
        head.net_ = net.eval()
        head.history_, head.n_epochs_, head.best_epoch_ = info["history"], info["n_epochs"], info["best_epoch"]
        head.stopped_early_, head.n_validation_ = info["stopped_early"], info["n_validation"]
        head.cv_results_, head.cv_score_ = info["cv_results"], info["cv_score"]
        return head

    def describe(self) -> dict:
        h = self.history_
        return {
            "head": self.kind,
            "hidden": list(_hidden(self.hidden)),
            "epochs": self.n_epochs_,
            "best_epoch": self.best_epoch_,
            "val_accuracy": h["val_accuracy"][self.best_epoch_ - 1] if h["val_accuracy"] else None,
            "cv_accuracy": self.cv_score_,
        }
