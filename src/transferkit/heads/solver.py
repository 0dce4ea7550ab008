"""Full-batch L-BFGS (PyTorch, multithreaded BLAS) for L2-penalised linear models.

The objective is scikit-learn's, divided by the total sample weight S so that ``tol`` means what it
means there::

    (1/S) * sum_i s_i * loss(x_i W + b, y_i)  +  ||W||^2 / (2 * C * S)

so a C value means the same thing as in ``LogisticRegression(C=...)`` / ``LinearSVC(C=...)``.
Losses: "multinomial" (softmax cross-entropy), "binomial" (one sigmoid column, scikit-learn's
binary case) and "squared_hinge" (one-vs-rest, LinearSVC's default loss; the intercept is not
penalised here, unlike liblinear).

Wide features (D much larger than N, e.g. 25,088-d conv features for a few thousand images) are
solved exactly in the row space of the training matrix: with ``X = U S V^T`` the optimum is
``W = V Z`` (the penalty only ever pushes W towards the span of the rows), and ``X V = U S``, so
the problem in Z has N instead of D features and the same conditioning. :class:`RowSpace` builds
such a basis from the Cholesky factor of the Gram matrix ``X X^T``; cross-validation folds take their blocks of one Gram
matrix, so the D-sized work is done once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

LOSSES = ("multinomial", "binomial", "squared_hinge")


@dataclass
class FitInfo:
    n_iter: int
    hit_max_iter: bool
    grad_max: float
    objective: float


def n_outputs(loss: str, n_classes: int) -> int:
    if loss == "binomial" or (loss == "squared_hinge" and n_classes == 2):
        return 1
    return n_classes


def _targets(loss: str, y_enc: torch.Tensor, n_classes: int) -> torch.Tensor:
    if loss == "multinomial":
        return y_enc
    if loss == "binomial":
        return (y_enc == 1).to(torch.float64).unsqueeze(1)
    k = n_outputs(loss, n_classes)
    if k == 1:
        return torch.where(y_enc == 1, 1.0, -1.0).to(torch.float64).unsqueeze(1)
    t = -torch.ones(len(y_enc), k, dtype=torch.float64)
    t[torch.arange(len(y_enc)), y_enc] = 1.0
    return t


def pointwise_loss(loss: str, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-row loss of decision values ``z`` (N, K) against targets from :func:`_targets`."""
    if loss == "multinomial":
        return torch.nn.functional.cross_entropy(z, t, reduction="none")
    if loss == "binomial":
        return torch.nn.functional.binary_cross_entropy_with_logits(z, t.to(z.dtype), reduction="none").sum(1)
    return torch.clamp(1.0 - t.to(z.dtype) * z, min=0.0).pow(2).sum(1)


def lbfgs_fit(
    F: torch.Tensor,
    y_enc: np.ndarray,
    n_classes: int,
    C: float,
    loss: str = "multinomial",
    weights: np.ndarray | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, FitInfo]:
    """Minimise the objective above; returns W (d, k), b (k) and how it went."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    dtype = F.dtype
    k = n_outputs(loss, n_classes)
    y_t = torch.as_tensor(np.asarray(y_enc, np.int64))
    t = _targets(loss, y_t, n_classes)
    s = torch.as_tensor(np.ones(len(y_t)) if weights is None else np.asarray(weights, np.float64), dtype=dtype)
    S = float(s.sum())
    s = s / S
    reg = 1.0 / (2.0 * C * S)
    if init is None:
        W = torch.zeros(F.shape[1], k, dtype=dtype)
        b = torch.zeros(k, dtype=dtype)
    else:
        W, b = (p.detach().clone().to(dtype) for p in init)
    W.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, max_eval=max_iter * 2, tolerance_grad=tol,
                            tolerance_change=1e-12 if dtype == torch.float64 else 1e-9,
                            history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = F @ W + b
        obj = (pointwise_loss(loss, z, t) * s).sum() + reg * (W * W).sum()
        obj.backward()
        return obj

    # Small problems: one thread; waking a pool for every tiny product costs more than it saves.
    threads = 1 if F.numel() * k < 4_000_000 else torch.get_num_threads()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(old)
    state = opt.state[opt._params[0]]
    n_iter = int(state.get("n_iter", 0))
    with torch.enable_grad():
        obj = closure()
    grad_max = float(max(W.grad.abs().max(), b.grad.abs().max()))
    info = FitInfo(n_iter=n_iter, hit_max_iter=n_iter >= max_iter and grad_max > tol, grad_max=grad_max,
                   objective=float(obj.detach()))
    return W.detach(), b.detach(), info


class RowSpace:
    """A basis of the row space of a training matrix X, from its Gram matrix ``G = X X^T``.

    With the Cholesky factor ``G = L L^T``, ``B = X^T L^-T`` has orthonormal columns spanning the
    rows of X (``B^T B = L^-1 G L^-T = I``) and ``X B = L``. So ``features()`` is L (N, N), other rows
    go in by ``project(X_other X^T) = X_other X^T L^-T``, and a solution Z (N, k) comes back as
    ``coef(X, Z) = X^T L^-T Z`` (D, k). Being orthonormal, the basis keeps the problem's conditioning
    and its penalty (||B Z|| = ||Z||). A Cholesky factorisation costs N^3/3 flops (an
    eigendecomposition about 9 N^3); a jitter of ``rtol * mean(diag G)`` on the diagonal handles the
    rank deficiency that centring brings (its direction gets a ~0 feature, so no weight).
    """

    def __init__(self, gram: torch.Tensor, rtol: float = 1e-10):
        G = gram.to(torch.float64)
        jitter = rtol * float(G.diagonal().mean().clamp(min=1e-300))
        eye = torch.eye(len(G), dtype=torch.float64)
        for _ in range(8):
            L, info = torch.linalg.cholesky_ex(G + jitter * eye)
            if int(info) == 0:
                break
            jitter *= 100.0
        else:  # pragma: no cover - G is a Gram matrix, so some jitter always works
            raise RuntimeError("the Gram matrix could not be factorised")
        self.L = L
        self.rank = len(G)

    def features(self) -> torch.Tensor:
        return self.L

    def _solve_t(self, A: torch.Tensor) -> torch.Tensor:
        """A L^-T for A (m, N)."""
        return torch.linalg.solve_triangular(self.L, A.T, upper=False).T

    def project(self, cross_gram: torch.Tensor) -> torch.Tensor:
        return self._solve_t(cross_gram.to(torch.float64))

    def coef(self, X: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        A = torch.linalg.solve_triangular(self.L.T, Z.to(torch.float64), upper=True)  # L^-T Z (N, k)
        return (X.T @ A.to(X.dtype)).to(torch.float64)


def use_row_space(n_rows: int, n_features: int) -> bool:
    """The row-space solve pays when features outnumber rows and the N x N eigendecomposition is cheap."""
    return n_features > 1.5 * n_rows and n_rows <= 12000
