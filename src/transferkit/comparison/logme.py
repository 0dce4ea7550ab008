"""LogME: the log maximum evidence of a Bayesian linear model on top of fixed features.

You, Liu, Wang and Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
ICML 2021. Implemented here from the paper's equations.

For each class k the one-hot target column y (n values in {0, 1}) is modelled as y = F w + noise with
a Gaussian prior w ~ N(0, 1/alpha I) and Gaussian noise of precision beta. Integrating w out gives
the evidence, in closed form for fixed (alpha, beta)::

    log p(y | F, alpha, beta) = n/2 log beta + D/2 log alpha - n/2 log 2 pi
                                - beta/2 ||F m - y||^2 - alpha/2 m'm - 1/2 log |A|
    A = alpha I + beta F'F,   m = beta A^-1 F'y

(equivalently, y ~ N(0, 1/beta I + 1/alpha F F')). With the SVD F = U diag(s) V' every term is a
sum over the singular values, so maximising over (alpha, beta) by the fixed-point updates::

    gamma = sum_i beta s_i^2 / (alpha + beta s_i^2)
    alpha <- gamma / m'm,   beta <- (n - gamma) / ||F m - y||^2

costs O(min(n, D)) per iteration after one decomposition (of the smaller Gram matrix) shared by
all classes. The score is the
maximised log evidence divided by n, averaged over classes: higher means the features explain the
labels better with a linear model. It ranks feature sets for one dataset; it is not an accuracy and
its values are not comparable across datasets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_LOG_2PI = math.log(2 * math.pi)
_CLIP = (1e-12, 1e12)


@dataclass(frozen=True)
class Spectrum:
    """What LogME needs from the features: squared singular values and targets in the left basis."""

    n: int  # samples
    dim: int  # feature dimension D
    s2: np.ndarray  # (r,) squared non-zero singular values of F
    z: np.ndarray  # (r, K) U' Y: the targets' coordinates in the column space of F
    y_out2: np.ndarray  # (K,) ||y||^2 - ||U'y||^2: the part of each target outside that space


def spectrum(features: np.ndarray, targets: np.ndarray) -> Spectrum:
    """Decompose once: ``features`` (n, D), ``targets`` (n, K) real-valued columns."""
    F = np.asarray(features, dtype=np.float64)
    Y = np.asarray(targets, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    n, d = F.shape
    # Eigen-decompose the smaller Gram matrix (D x D when tall, n x n when wide) rather than taking
    # the SVD of F: the same singular values and bases at a fraction of the cost.
    if n > d:
        s2, V = np.linalg.eigh(F.T @ F)
        keep = s2 > s2.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps
        s2, V = s2[keep], V[:, keep]
        z = (V.T @ (F.T @ Y)) / np.sqrt(s2)[:, None]  # U'Y with U = F V / s
    else:
        s2, U = np.linalg.eigh(F @ F.T)
        keep = s2 > s2.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps
        s2, U = s2[keep], U[:, keep]
        z = U.T @ Y
    y_out2 = np.maximum((Y**2).sum(0) - (z**2).sum(0), 0.0)
    return Spectrum(n=n, dim=d, s2=s2, z=z, y_out2=y_out2)


def _terms(sp: Spectrum, k: int, alpha: float, beta: float):
    z2 = sp.z[:, k] ** 2
    denom = alpha + beta * sp.s2
    gamma = float(np.sum(beta * sp.s2 / denom))
    mm = float(np.sum(beta**2 * sp.s2 * z2 / denom**2))  # m'm
    res2 = float(np.sum((alpha / denom) ** 2 * z2) + sp.y_out2[k])  # ||F m - y||^2
    logdet = float(np.sum(np.log(denom)) + (sp.dim - len(sp.s2)) * math.log(alpha))
    return gamma, mm, res2, logdet


def log_evidence(sp: Spectrum, k: int, alpha: float, beta: float) -> float:
    """log p(y_k | F, alpha, beta) for target column ``k``, in closed form."""
    _, mm, res2, logdet = _terms(sp, k, alpha, beta)
    n, d = sp.n, sp.dim
    return (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * _LOG_2PI
            - beta / 2 * res2 - alpha / 2 * mm - logdet / 2)


def maximise_evidence(sp: Spectrum, k: int, alpha: float = 1.0, beta: float = 1.0,
                      max_iter: int = 200, tol: float = 1e-8) -> tuple[float, float, float]:
    """Fixed-point iteration on (alpha, beta); returns (alpha, beta, maximised log evidence)."""
    for _ in range(max_iter):
        gamma, mm, res2, _ = _terms(sp, k, alpha, beta)
        new_alpha = float(np.clip(gamma / max(mm, _CLIP[0]), *_CLIP))
        new_beta = float(np.clip((sp.n - gamma) / max(res2, _CLIP[0]), *_CLIP))
        done = abs(math.log(new_alpha / alpha)) < tol and abs(math.log(new_beta / beta)) < tol
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return alpha, beta, log_evidence(sp, k, alpha, beta)


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME score of ``features`` (n, D) for integer class ``labels`` (n,): mean log evidence per sample.

    Higher is better. Use it to rank candidate feature sets on the same labels.
    """
    F = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if F.ndim != 2 or len(F) != len(labels):
        raise ValueError(f"expected features (n, D) and n labels, got {F.shape} and {labels.shape}")
    if not np.all(np.isfinite(F)):
        raise ValueError("features contain NaN or infinite values")
    # The maximised evidence does not change when F is multiplied by a constant (alpha absorbs it), so
    # bring F to unit RMS first: it keeps alpha in a range where the iteration is well conditioned.
    rms = float(np.sqrt(np.mean(F**2)))
    if rms > 0:
        F = F / rms
    classes = np.unique(labels)
    Y = (labels[:, None] == classes[None, :]).astype(np.float64)  # one-hot, one column per class
    sp = spectrum(F, Y)
    return float(np.mean([maximise_evidence(sp, k)[2] for k in range(Y.shape[1])]) / len(F))
