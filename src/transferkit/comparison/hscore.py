"""H-score (Bao et al., ICIP 2019) with a shrinkage covariance (Ibrahim et al., ICLR 2022).

    H(f) = tr( cov(f)^-1  cov(E[f | y]) )

how much of the features' variance lies between the class means, measured in the features' own
metric. The sample covariance is singular or badly conditioned when D is comparable to n, so it is
replaced by the Ledoit-Wolf estimate ``(1 - s) S + s m I`` (``m = tr(S) / D``). Features are
standardised per dimension first. Higher is better; at most (number of classes - 1).

Everything is computed from the eigen-decomposition of the smaller of the two Gram matrices (F'F or
FF'): the class means lie in the span of the samples, so the D x D covariance is never formed when
D > n (raw pixels: D = 3072 on a few hundred images).
"""

from __future__ import annotations

import numpy as np


def ledoit_wolf_shrinkage(F: np.ndarray, gram_sq_norm: float | None = None) -> tuple[float, float]:
    """(shrinkage s, target scale m) of the Ledoit-Wolf estimate for centred ``F`` (n, D)."""
    n, d = F.shape
    row_sq = np.einsum("ij,ij->i", F, F)  # ||x_k||^2
    if gram_sq_norm is None:
        small = F @ F.T if n <= d else F.T @ F
        gram_sq_norm = float(np.sum(small**2))
    s_sq = gram_sq_norm / n**2  # ||S||_F^2, S = F'F / n
    m = float(row_sq.sum()) / (n * d)  # tr(S) / D
    dist = (s_sq - m**2 * d) / d  # ||S - m I||^2 / D
    spread = (float(np.sum(row_sq**2)) - n * s_sq) / (n**2 * d)  # mean ||x x' - S||^2 / (n D)
    if dist <= 0:
        return 1.0, m
    return min(spread, dist) / dist, m


def hscore(features: np.ndarray, labels: np.ndarray) -> float:
    F = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    n, d = F.shape
    F = F - F.mean(0)
    scale = F.std(0)
    F = F / np.where(scale > 0, scale, 1.0)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    onehot = np.zeros((n, len(classes)))
    onehot[np.arange(n), inverse] = 1.0
    means = (onehot / counts).T @ F  # (K, D) class means
    p = counts / n
    if n <= d:
        gram = F @ F.T
        lam, U = np.linalg.eigh(gram)
        # a class mean's coordinate on eigenvector v_i = F'u_i / sqrt(lam_i) is sqrt(lam_i) u_i'e_c / n_c
        proj = np.sqrt(np.clip(lam, 0, None))[:, None] * (U.T @ (onehot / counts))  # (n, K)
    else:
        gram = F.T @ F
        lam, V = np.linalg.eigh(gram)
        proj = V.T @ means.T  # (D, K)
    shrink, m = ledoit_wolf_shrinkage(F, float(np.sum(gram**2)))
    eig_cov = (1 - shrink) * np.clip(lam, 0, None) / n + shrink * m
    between = (proj**2) @ p  # sum_c p_c (g_c . v_i)^2, per eigenvector
    return float(np.sum(between / eig_cov))
