"""Classifier heads: fit quality on generated and real Lite0 features, agreement with scikit-learn,
seeds, class weights, fold errors, save/load and torch round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

from transferkit.errors import TransferkitError
from transferkit.heads import (
    HEADS,
    AutoHead,
    KNNHead,
    LinearSVMHead,
    LogisticHead,
    MLPHead,
    TrainedModel,
    load_model,
    make_head,
)

FAST = {
    "logreg": {"Cs": (0.01, 1.0, 100.0)},
    "linear-svm": {"Cs": (0.01, 1.0, 100.0)},
    "mlp": {"hidden": (32,), "max_epochs": 40, "patience": 5},
    "knn": {"ks": (1, 5, 9)},
}


def data(separable: bool, n=300, d=20, k=3, seed=0):
    """Gaussian classes around random centres: far apart (separable) or overlapping, plus 10 % flipped labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * (4.0 if separable else 0.5)
    y = np.arange(n) % k
    X = centres[y] + rng.standard_normal((n, d))
    if not separable:
        flip = rng.random(n) < 0.1
        y = np.where(flip, rng.integers(0, k, n), y)
    X = (X * 2.0 + 5.0).astype(np.float32)  # not centred, not unit scale: the heads must standardise
    cut = n * 2 // 3
    return X[:cut], y[:cut], X[cut:], y[cut:]


@pytest.mark.parametrize("kind", list(HEADS))
@pytest.mark.parametrize("separable", [True, False])
def test_each_head_learns_generated_features(kind, separable):
    X, y, Xt, yt = data(separable)
    head = make_head(kind, **FAST[kind]).fit(X, y)
    proba = head.predict_proba(Xt)
    assert proba.shape == (len(yt), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    acc = np.mean(head.predict(Xt) == yt)
    assert acc >= (0.98 if separable else 0.5), (kind, acc)  # chance is 1/3
    assert np.array_equal(head.classes_[proba.argmax(1)], head.predict(Xt)) or kind == "linear-svm"


@pytest.mark.parametrize(
    "shape,class_weight",
    [((240, 15, 3), None), ((200, 12, 2), "balanced"), ((90, 400, 4), "balanced"), ((80, 300, 2), None)],
)
def test_logreg_agrees_with_sklearn(shape, class_weight):
    """Same objective as LogisticRegression(C) on the standardised data, in the primal and row-space solves."""
    from sklearn.linear_model import LogisticRegression

    n, d, k = shape
    X, y = make_classification(n, d, n_informative=6, n_classes=k, weights=None, random_state=1)
    X = X.astype(np.float32) * 3 + 1
    if class_weight:
        keep = np.ones(n, bool)
        keep[np.flatnonzero(y == 0)[: n // (2 * k)]] = False  # make class 0 rarer
        X, y = X[keep], y[keep]
    for C in (0.05, 2.0):
        head = LogisticHead(Cs=[C], class_weight=class_weight, tol=1e-8).fit(X, y)
        Xs = ((X - head.mean_) / head.scale_).astype(np.float64)
        ref = LogisticRegression(C=C, class_weight=class_weight, tol=1e-10, max_iter=10000).fit(Xs, y)
        np.testing.assert_allclose(head.predict_proba(X), ref.predict_proba(Xs), atol=2e-4)
        assert head.solver_ == ("row-space L-BFGS" if d > 1.5 * n else "L-BFGS")


def test_linear_svm_agrees_with_liblinear():
    """Squared hinge with C as in LinearSVC; a huge intercept_scaling makes liblinear's intercept penalty vanish."""
    from sklearn.svm import LinearSVC

    X, y, Xt, _ = data(False, n=300)
    head = LinearSVMHead(Cs=[0.1], tol=1e-8).fit(X, y)
    Xs = ((X - head.mean_) / head.scale_).astype(np.float64)
    ref = LinearSVC(C=0.1, intercept_scaling=1000, tol=1e-10, max_iter=200000).fit(Xs, y)
    Xts = ((Xt - head.mean_) / head.scale_).astype(np.float64)
    np.testing.assert_allclose(head.decision_function(Xt), ref.decision_function(Xts), atol=5e-3)


def test_linear_svm_probabilities_are_calibrated():
    X, y, Xt, yt = data(False, n=600)
    head = LinearSVMHead(Cs=[1.0]).fit(X, y)
    p = head.predict_proba(Xt)
    conf = p.max(1)
    # calibrated: the mean confidence tracks the accuracy (a raw margin squashed would not)
    assert abs(conf.mean() - np.mean(p.argmax(1) == yt)) < 0.1
    assert head.platt_.shape == (3, 2) and np.all(head.platt_[:, 0] > 0)


def test_cv_path_reports_convergence():
    X, y, _, _ = data(True)
    head = LogisticHead(Cs=(0.1, 10.0, 1e4), max_iter=3, scaling="standardise").fit(X, y)
    assert head.n_not_converged_ > 0 and head.n_fits_ == 3 * 3 + 1  # folds x grid, then one final fit
    head = LogisticHead(Cs=(0.1, 10.0)).fit(X, y)
    assert head.n_not_converged_ == 0 and len(head.n_iter_) == head.n_fits_


@pytest.mark.parametrize("kind", list(HEADS))
def test_save_load_and_torch_round_trip(kind, tmp_path):
    X, y, Xt, _ = data(False, k=3)
    head = make_head(kind, **FAST[kind]).fit(X, y)
    path = TrainedModel(head, ["a", "b", "c"], {"model": "synthetic"}, {"seed": 42}).save(
        tmp_path / f"{kind}.safetensors"
    )
    loaded = load_model(path)
    assert type(loaded.head) is type(head)
    assert np.array_equal(loaded.predict_proba(Xt), head.predict_proba(Xt))
    with torch.no_grad():
        t = head.to_torch().eval()(torch.from_numpy(Xt)).numpy()
    np.testing.assert_allclose(t, head.predict_proba(Xt), atol=2e-5)
    assert path.read_bytes()[:8] and b"pickle" not in path.read_bytes()[:4096]


@pytest.mark.parametrize("kind", list(HEADS))
def test_seed_makes_results_repeatable(kind):
    X, y, Xt, _ = data(False)
    a = make_head(kind, random_state=7, **FAST[kind]).fit(X, y).predict_proba(Xt)
    b = make_head(kind, random_state=7, **FAST[kind]).fit(X, y).predict_proba(Xt)
    assert np.array_equal(a, b)
    if kind == "mlp":  # initialisation, minibatch order and validation rows follow the seed
        c = make_head(kind, random_state=8, **FAST[kind]).fit(X, y).predict_proba(Xt)
        assert not np.allclose(a, c)


def test_mlp_records_curves_and_stops_early():
    X, y, _, _ = data(False, n=450)
    head = MLPHead(hidden=(64, 32), dropout=0.2, max_epochs=200, patience=3, validation_fraction=0.2).fit(X, y)
    h = head.history_
    assert set(h) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == head.n_epochs_ for v in h.values())
    assert head.stopped_early_ and head.n_epochs_ < 200
    assert head.best_epoch_ == int(np.argmin(h["val_loss"])) + 1
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert head.n_validation_ == pytest.approx(0.2 * len(y), abs=3)
    layers = [type(m).__name__ for m in head.net_.layers]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]


def test_knn_uses_cosine_similarity():
    rng = np.random.default_rng(0)
    X = rng.random((60, 8)).astype(np.float32) + 0.1
    y = np.arange(60) % 3
    head = KNNHead(ks=[1]).fit(X, y)
    # scaling a row does not change its cosine neighbours
    assert np.array_equal(head.predict(X * 7.5), y)


@pytest.mark.parametrize("kind", ["logreg", "linear-svm", "knn"])
def test_balanced_class_weight_helps_the_rare_class(kind):
    X, y = make_classification(900, 10, n_informative=4, weights=[0.9, 0.1], class_sep=0.6, flip_y=0.05, random_state=3)
    X = X.astype(np.float32)
    grid = {"logreg": {"Cs": [1.0]}, "linear-svm": {"Cs": [1.0]}, "knn": {"ks": [15]}}[kind]
    plain = make_head(kind, **grid).fit(X[:600], y[:600])
    balanced = make_head(kind, class_weight="balanced", **grid).fit(X[:600], y[:600])
    rare = y[600:] == 1
    recall = lambda h: np.mean(h.predict(X[600:][rare]) == 1)  # noqa: E731
    assert recall(balanced) > recall(plain)


@pytest.mark.parametrize("kind", ["logreg", "linear-svm", "knn", "auto"])
def test_class_smaller_than_folds_is_one_clear_error(kind):
    X, y, _, _ = data(True)
    y = y.copy()
    y[np.flatnonzero(y == 2)[2:]] = 0  # class 2 keeps two rows
    with pytest.raises(TransferkitError, match=r"class 2 has 2 training example\(s\), fewer than the 3 .*use cv=2"):
        make_head(kind, cv=3).fit(X, y)


def test_auto_keeps_the_best_head_and_reports_every_one():
    X, y, Xt, yt = data(False, n=300)
    auto = AutoHead(head_params=FAST).fit(X, y)
    assert [r["head"] for r in auto.results_] == list(HEADS)
    scores = [r["cv_accuracy"] for r in auto.results_]
    assert all(0 < s <= 1 for s in scores) and all(r["seconds"] >= 0 for r in auto.results_)
    best = auto.results_[int(np.argmax(scores))]
    assert best["best"] and auto.best_kind_ == best["head"]
    assert np.array_equal(auto.predict_proba(Xt), auto.best_estimator_.predict_proba(Xt))


# -- real Lite0 features of generated images -------------------------------------------------------
@pytest.mark.parametrize("kind", list(HEADS))
def test_heads_on_real_lite0_features(kind, extracted, tmp_path):
    import transferkit as tk

    params = {k: v for k, v in FAST[kind].items()}
    r = tk.train(extracted.path, tmp_path / "m.safetensors", head=kind, head_params=params, cv=2)
    assert r.metrics["accuracy"] >= 0.8, r.report
    model = tk.load_model(r.path)
    assert model.training["head"] == kind
    with tk.open_features(extracted.path) as ff:
        X, _ = ff.load("test")
    assert np.array_equal(model.predict_proba(X), r.model.predict_proba(X))
    if kind == "mlp":
        assert len(model.training["history"]["val_loss"]) == model.head.n_epochs_


@pytest.mark.slow
def test_cli_train_auto_prints_the_table(extracted, tmp_path):
    from conftest import run_cli

    out = tmp_path / "auto.safetensors"
    r = run_cli(
        "train",
        extracted.path,
        "-o",
        out,
        "--head",
        "auto",
        "--cv",
        "2",
        "--C",
        "1",
        "--k",
        "3",
        "--epochs",
        "20",
        check=True,
    )
    for name in ("logreg", "linear-svm", "mlp", "knn", "◀ best", "fit time", "CV accuracy"):
        assert name in r.stdout, r.stdout
    import transferkit as tk

    model = tk.load_model(out)
    assert [row["head"] for row in model.training["auto"]] == ["logreg", "linear-svm", "mlp", "knn"]
    assert all(row["cv_accuracy"] is not None for row in model.training["auto"])  # single C / k: still scored
    bad = run_cli("train", extracted.path, "-o", out, "--head", "knn", "--max-memory", "1KB", "--overwrite")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "needs it in memory" in bad.stderr


def test_the_cli_words_a_too_small_class_with_its_flag():
    """The head's error carries the setting (cv) and the value that works; the CLI names the flag."""
    from transferkit.cli._flags import worded

    X, y, _, _ = data(True)
    y = y.copy()
    y[np.flatnonzero(y == 2)[2:]] = 0
    with pytest.raises(TransferkitError) as caught:
        make_head("logreg", cv=3).fit(X, y)
    assert worded(caught.value).endswith("fewer than the 3 cross-validation folds; use --cv 2")
