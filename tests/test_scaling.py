"""The linear heads choose the feature scaling together with C by cross-validation; the C grid grows
past an edge where the best value sits; the choice travels in the model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.heads import LinearSVMHead, LogisticHead, TrainedModel, load_model
from transferkit.heads.scaling import SCALINGS


def magnitude_classes(n=300, n_noise=400, seed=0):
    """The class is in the overall magnitude of 5 columns; 400 columns of small-scale noise.

    Raw features win: standardising inflates the noise columns to the scale of the signal, and
    dividing rows by their norm throws the magnitude (the class) away."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    direction = np.abs(rng.standard_normal(5)) + 0.5
    amplitude = np.where(y == 1, 1.6, 1.0) * np.exp(rng.normal(0, 0.12, n))
    signal = amplitude[:, None] * direction + rng.normal(0, 0.05, (n, 5))
    noise = rng.normal(0, 0.03, (n, n_noise))
    return np.hstack([signal, noise]).astype(np.float32), y


def tiny_signal(n=300, n_noise=20, seed=0):
    """The class is in 5 columns of tiny scale; 20 columns of large-scale noise. Standardising wins."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    signal = (rng.standard_normal((n, 5)) + np.where(y == 1, 0.9, -0.9)[:, None]) * 1e-3
    noise = rng.normal(0, 30.0, (n, n_noise)) * np.exp(rng.normal(0, 1.0, n_noise))
    return np.hstack([signal, noise]).astype(np.float32), y


def cv_accuracy(head, scaling):
    return next(r["mean_accuracy"] for r in head.cv_results_["scalings"] if r["scaling"] == scaling)


def test_raw_features_are_chosen_when_they_are_better():
    X, y = magnitude_classes()
    head = LogisticHead().fit(X[:200], y[:200])
    assert head.scaling_ == "none", head.cv_results_["scalings"]
    assert cv_accuracy(head, "none") > cv_accuracy(head, "standardise") + 0.02
    assert np.mean(head.predict(X[200:]) == y[200:]) > 0.85
    raw_scale = head.scale_
    assert np.all(head.mean_ == 0) and np.all(raw_scale == raw_scale[0])  # raw: one factor, no centring


def test_standardised_features_are_chosen_when_they_are_better():
    X, y = tiny_signal()
    head = LogisticHead().fit(X[:200], y[:200])
    assert head.scaling_ == "standardise", head.cv_results_["scalings"]
    assert cv_accuracy(head, "standardise") > cv_accuracy(head, "none") + 0.05
    assert np.mean(head.predict(X[200:]) == y[200:]) > 0.8


def test_a_fixed_scaling_is_used_as_given():
    X, y = magnitude_classes()
    head = LogisticHead(scaling="l2", Cs=(0.1, 1.0)).fit(X, y)
    assert head.scaling_ == "l2" and "scalings" not in head.cv_results_
    assert LogisticHead(Cs=(1.0,)).fit(X, y).scaling_ == "standardise"  # no folds to choose by
    with pytest.raises(ValueError, match="scaling must be"):
        LogisticHead(scaling="log").fit(X, y)


def test_the_default_grid_grows_past_the_edge_where_the_best_C_sits():
    rng = np.random.default_rng(0)
    # separable and solved tightly: the CV log-loss keeps falling as C grows, so the best C is the grid's top
    X = np.vstack([rng.normal(-3, 1, (60, 4)), rng.normal(3, 1, (60, 4))]).astype(np.float32)
    y = np.repeat([0, 1], 60)
    head = LogisticHead(scaling="standardise", tol=1e-9).fit(X, y)
    Cs = head.cv_results_["C"]
    assert max(Cs) > 1e4 and max(Cs) <= 1e7 and Cs == sorted(Cs)
    # labels unrelated to the features, one class three times as common: the lowest C (predict that class) is best
    noise = rng.normal(size=(160, 30)).astype(np.float32)
    head = LogisticHead(scaling="standardise").fit(noise, (np.arange(160) % 4 == 0).astype(int))
    Cs = head.cv_results_["C"]
    assert min(Cs) < 1e-4 and min(Cs) >= 1e-7 and head.C_ <= 1e-4
    # a grid given by the user is used as it is
    assert LogisticHead(Cs=(1.0, 10.0), scaling="standardise").fit(X, y).cv_results_["C"] == [1.0, 10.0]


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("cls", [LogisticHead, LinearSVMHead])
def test_chosen_scaling_and_C_round_trip_through_the_model_file(cls, scaling, tmp_path):
    X, y = magnitude_classes(n=150, n_noise=30)
    X = X - 0.02  # a few negative values: the signed square root must keep their sign
    head = cls(Cs=(0.1, 10.0), scaling=scaling).fit(X, y)
    path = TrainedModel(head, ["a", "b"], {"model": "synthetic"}).save(tmp_path / "m.safetensors")
    loaded = load_model(path).head
    assert loaded.scaling_ == head.scaling_ == scaling and loaded.C_ == head.C_
    assert loaded.describe()["scaling"] == scaling
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    with torch.no_grad():
        t = head.to_torch().eval()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(t, head.predict_proba(X), atol=2e-5)


def test_wide_features_are_solved_exactly_in_the_row_space_for_every_scaling():
    """d >> n: each scaling's Gram matrix gives the same model as the primal solve (to the solver's tolerance)."""
    rng = np.random.default_rng(1)
    n, d = 60, 400
    y = np.arange(n) % 3
    X = np.abs(rng.standard_normal((n, d)) + 0.8 * (y[:, None] == np.arange(d) % 3)).astype(np.float32)
    from transferkit.heads import solver

    for scaling in SCALINGS:
        wide = LogisticHead(Cs=(0.3,), scaling=scaling, tol=1e-9).fit(X, y)
        assert wide.solver_ == "row-space L-BFGS"
        original = solver.use_row_space
        solver.use_row_space = lambda n_rows, n_features: False
        try:
            primal = LogisticHead(Cs=(0.3,), scaling=scaling, tol=1e-9).fit(X, y)
        finally:
            solver.use_row_space = original
        assert primal.solver_ == "L-BFGS"
        np.testing.assert_allclose(wide.predict_proba(X), primal.predict_proba(X), atol=1e-5)


def test_train_and_evaluate_show_the_chosen_scaling_and_C(tmp_path):
    from conftest import run_cli

    from transferkit.store.writer import FeatureWriter

    X, y = magnitude_classes(n=240, n_noise=60)
    split = (np.arange(len(y)) % 4 == 0).astype(np.uint8)
    attrs = {"model": "synthetic", "weights_sha256": "none", "layer": "pre_logits", "pool": "avg", "preprocess": {}}
    feats = tmp_path / "f.h5"
    with FeatureWriter(feats, feature_dim=X.shape[1], label_names=["small", "large"], attrs=attrs) as w:
        w.add(X, y, [f"r{i}" for i in range(len(y))], split)
    model = tmp_path / "m.safetensors"
    out = run_cli("train", feats, "-o", model, check=True).stdout
    head = load_model(model).head
    assert "feature scalings" in out and f"{head.scaling_} ◀ chosen" in out
    assert f"best C = {head.C_:g} on {head.scaling_} features" in out
    out = run_cli("evaluate", model, feats, check=True).stdout
    assert f"model: logreg on {head.scaling_} features, C = {head.C_:g}" in out
    out = run_cli("train", feats, "-o", model, "--scaling", "l2", "--overwrite", check=True).stdout
    assert "feature scalings" not in out and "on l2 features" in out and load_model(model).head.scaling_ == "l2"


@pytest.mark.parametrize("make, expected", [(magnitude_classes, "none"), (tiny_signal, "standardise")])
def test_large_problems_screen_scalings_on_half_a_fold(monkeypatch, make, expected):
    """Above the work threshold, scalings are compared on half of fold 1's training rows (half of each
    class); the chosen one then walks every fold around the screen's best C, so its C table is full
    k-fold cross-validation."""
    from transferkit.heads import linear
    from transferkit.heads._common import stratified_folds

    monkeypatch.setattr(linear, "SCREEN_ALL_FOLDS", 0)  # treat this small set as a large problem
    X, y = make(n=450)
    head = LogisticHead().fit(X[:360], y[:360])
    res = head.cv_results_
    assert head.scaling_ == expected, res["scalings"]
    assert res["scaling_folds"] == 1 and res["folds"] == 3
    tr0 = stratified_folds(y[:360], 3, 42)[0][0]
    assert res["scaling_train_rows"] == sum((np.sum(y[tr0] == c) + 1) // 2 for c in (0, 1))
    screened = next(r for r in res["scalings"] if r["scaling"] == expected)
    decades = [round(np.log10(c)) for c in res["C"]]  # then every fold: one C per decade around the screen's
    best = round(np.log10(screened["C"]))  # best, from two decades below it to one above (more only where
    assert decades == list(range(decades[0], decades[0] + len(decades))) and best in decades  # the best C
    if res["C"][0] < head.C_ < res["C"][-1]:  # then sits on an edge of that range)
        assert best - 2 <= decades[0] and decades[-1] <= best + 1
    assert len(res["mean_accuracy"]) == len(res["C"]) and head.C_ in res["C"]
    assert np.mean(head.predict(X[360:]) == y[360:]) > 0.8


def test_wide_features_screen_scalings_on_part_of_the_rows():
    """Features outnumbering rows: the scalings' Gram matrices are built for the screen's rows only (half
    of fold 1's training rows and its held-out rows), then the chosen scaling's on every row."""
    X, y = magnitude_classes(n=300)  # 405 columns; 200 training rows: the row-space solver
    head = LogisticHead().fit(X[:200], y[:200])
    res = head.cv_results_
    assert head.solver_ == "row-space L-BFGS"
    assert head.scaling_ == "none", res["scalings"]
    assert res["scaling_folds"] == 1 and res["scaling_train_rows"] < 200 * 2 / 3
    assert np.mean(head.predict(X[200:]) == y[200:]) > 0.85
    # the final model is the one a fixed scaling and C give (the screen changed only how they were found)
    fixed = LogisticHead(Cs=[head.C_], scaling="none").fit(X[:200], y[:200])
    np.testing.assert_allclose(head.predict_proba(X[200:]), fixed.predict_proba(X[200:]), atol=2e-3)
