"""LogME and H-score against references computed independently: by hand, by the marginal Gaussian
likelihood, by a generic optimiser, and by scikit-learn's Ledoit-Wolf estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from transferkit.comparison import hscore, logme
from transferkit.comparison.logme import log_evidence, maximise_evidence, spectrum


def marginal_log_likelihood(F, y, alpha, beta):
    """y ~ N(0, 1/beta I + 1/alpha F F'): the evidence with the weights integrated out, directly."""
    n = len(y)
    C = np.eye(n) / beta + F @ F.T / alpha
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * (n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(C, y))


def test_evidence_by_hand():
    # F = [[1], [0]], y = [1, 0], alpha = beta = 1: C = diag(2, 1), so
    # log p = -log(2 pi) - 1/2 log 2 - 1/2 * (1/2).
    sp = spectrum(np.array([[1.0], [0.0]]), np.array([[1.0], [0.0]]))
    assert log_evidence(sp, 0, 1.0, 1.0) == pytest.approx(-math.log(2 * math.pi) - 0.5 * math.log(2) - 0.25, abs=1e-12)


@pytest.mark.parametrize("n, d", [(30, 5), (8, 20), (12, 12)])
def test_closed_form_matches_marginal_gaussian(n, d):
    rng = np.random.default_rng(n * 100 + d)
    F = rng.normal(size=(n, d))
    y = (rng.random(n) < 0.5).astype(float)
    sp = spectrum(F, y[:, None])
    for alpha, beta in ((0.7, 2.3), (5.0, 0.1), (1e-3, 40.0)):
        assert log_evidence(sp, 0, alpha, beta) == pytest.approx(marginal_log_likelihood(F, y, alpha, beta), rel=1e-9)


@pytest.mark.parametrize("n, d", [(40, 6), (10, 25)])
def test_fixed_point_is_the_maximum(n, d):
    rng = np.random.default_rng(7 + d)
    F = rng.normal(size=(n, d))
    y = (F[:, 0] + 0.8 * rng.normal(size=n) > 0).astype(float)
    alpha, beta, best = maximise_evidence(spectrum(F, y[:, None]), 0)

    def f(log_a, log_b):
        return marginal_log_likelihood(F, y, math.exp(log_a), math.exp(log_b))

    la, lb, h = math.log(alpha), math.log(beta), 1e-4
    assert best == pytest.approx(f(la, lb), rel=1e-9)
    # stationary: the numeric gradient in (log alpha, log beta) vanishes
    assert abs((f(la + h, lb) - f(la - h, lb)) / (2 * h)) < 1e-4
    assert abs((f(la, lb + h) - f(la, lb - h)) / (2 * h)) < 1e-4
    # a maximum: nothing on a grid around it is higher
    grid = [f(la + da, lb + db) for da in np.linspace(-1, 1, 9) for db in np.linspace(-1, 1, 9)]
    assert max(grid) <= best + 1e-9
    # and a generic optimiser started elsewhere finds the same value
    opt = minimize(
        lambda v: -f(*v), x0=[0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000}
    )
    assert -opt.fun == pytest.approx(best, abs=1e-6)


def test_logme_is_mean_per_sample_evidence_over_classes():
    rng = np.random.default_rng(3)
    F = rng.normal(size=(36, 4))
    labels = rng.integers(0, 3, 36)
    expected = []
    for k in range(3):
        y = (labels == k).astype(float)
        opt = minimize(
            lambda v, y=y: -marginal_log_likelihood(F, y, math.exp(v[0]), math.exp(v[1])),
            x0=[0.0, 0.0],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000},
        )
        expected.append(-opt.fun / len(y))
    assert logme(F, labels) == pytest.approx(np.mean(expected), abs=1e-7)


def test_logme_ignores_a_global_feature_scale():
    rng = np.random.default_rng(4)
    F = rng.normal(size=(50, 8))
    labels = rng.integers(0, 2, 50)
    assert logme(1000.0 * F, labels) == pytest.approx(logme(F, labels), abs=1e-6)


def graded_features(rng, labels, strength, d=64, n_classes=4):
    F = rng.normal(size=(len(labels), d))
    F[:, :n_classes] += strength * np.eye(n_classes)[labels]
    return F


@pytest.mark.parametrize("score", [logme, hscore])
def test_ranking_puts_informative_features_first(score):
    rng = np.random.default_rng(5)
    for n in (300, 40):  # more samples than dimensions, and fewer
        labels = rng.integers(0, 4, n)
        values = [score(graded_features(rng, labels, s), labels) for s in (3.0, 1.0, 0.0)]
        assert values[0] > values[1] > values[2], (n, values)


def reference_hscore(F, y):
    from sklearn.covariance import LedoitWolf

    F = F - F.mean(0)
    F = F / F.std(0)
    cov = LedoitWolf(assume_centered=True).fit(F).covariance_
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    means = np.stack([F[inverse == k].mean(0) for k in range(len(classes))])
    between = (means * (counts / len(F))[:, None]).T @ means
    return np.trace(np.linalg.solve(cov, between))


@pytest.mark.parametrize("n, d", [(60, 12), (20, 50)])
def test_hscore_matches_the_dense_formula(n, d):
    rng = np.random.default_rng(n + d)
    labels = rng.integers(0, 3, n)
    F = graded_features(rng, labels, 1.0, d=d, n_classes=3)
    assert hscore(F, labels) == pytest.approx(reference_hscore(F, labels), rel=1e-8)


def test_logme_refuses_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        logme(np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="expected features"):
        logme(np.zeros((3, 2)), np.array([0, 1]))
