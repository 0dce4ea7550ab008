"""Full-batch L-BFGS (NumPy + SciPy, analytic gradients) for L2-penalised linear models.

The objective is scikit-learn's, divided by the total sample weight S so that ``tol`` means what it
means there::

    (1/S) * sum_i s_i * loss(x_i W + b, y_i)  +  ||W||^2 / (2 * C * S)

so a C value means the same thing as in ``LogisticRegression(C=...)`` / ``LinearSVC(C=...)`` on the
same features. Losses: "multinomial" (softmax cross-entropy), "binomial" (one sigmoid column,
scikit-learn's binary case) and "squared_hinge" (one-vs-rest, LinearSVC's default loss; the
intercept is not penalised here, unlike liblinear).

Why not PyTorch: importing it costs about a gigabyte of memory and seconds of start-up, more than
the whole fit on typical feature files. The two matrix products per evaluation run in BLAS (float32
for large problems: twice the speed, and the gradient stays far more accurate than ``tol``), and
BLAS releases the GIL, so cross-validation folds can run in threads.

Wide features (D much larger than N, e.g. 62,720-d conv maps for a few thousand images) are solved
exactly in the row space of the training matrix: the penalty only ever pushes W towards the span of
the rows, so ``W = B Z`` for an orthonormal basis B of that span, and the problem in Z has N
instead of D features and the same conditioning. :class:`RowSpace` builds such a basis from the
Cholesky factor of the Gram matrix ``X X^T``; cross-validation folds take their blocks of one Gram
matrix (a fold's rows span a subspace of the full span), so the D-sized work is done once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def loss_and_grad(loss: str, Z: np.ndarray, y_enc: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray]:
    """sum_i s_i * loss(Z_i, y_i) and its gradient with respect to the decision values Z (N, k)."""
    rows = np.arange(len(y_enc))
    if loss == "multinomial":
        Zm = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(Zm)
        total = E.sum(axis=1, dtype=np.float64)
        value = float(s @ (np.log(total) - Zm[rows, y_enc]))
        E /= total.astype(E.dtype)[:, None]  # softmax probabilities
        E[rows, y_enc] -= 1.0
        E *= s.astype(E.dtype)[:, None]
        return value, E
    if loss == "binomial":
        z = Z[:, 0].astype(np.float64)
        t = (y_enc == 1).astype(np.float64)
        value = float(s @ (np.logaddexp(0.0, z) - t * z))
        return value, ((0.5 * (1.0 + np.tanh(0.5 * z)) - t) * s)[:, None].astype(Z.dtype)
    if loss == "squared_hinge":
        T = -np.ones(Z.shape, Z.dtype)
        if Z.shape[1] == 1:
            T[y_enc == 1, 0] = 1.0
        else:
            T[rows, y_enc] = 1.0
        M = np.maximum(1.0 - T * Z, 0.0)
        value = float(s @ (M.astype(np.float64) ** 2).sum(axis=1))
        return value, (-2.0 * T * M) * s.astype(Z.dtype)[:, None]
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def lbfgs_fit(
    F: np.ndarray,
    y_enc: np.ndarray,
    n_classes: int,
    C: float,
    loss: str = "multinomial",
    weights: np.ndarray | None = None,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, FitInfo]:
    """Minimise the objective above on features F (float32 or float64); returns W (d, k), b (k) float64.

    ``threads`` > 1 splits the rows into that many blocks whose products run in parallel Python threads
    (BLAS releases the GIL). The caller is expected to hold BLAS itself to one thread: a pool of BLAS
    threads woken for every product, and for every small vector operation inside L-BFGS-B, is slow on
    an idle machine and dramatically so on a busy one.
    """
    from concurrent.futures import ThreadPoolExecutor

    from scipy.optimize import minimize

    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    F = np.asarray(F)
    dtype = F.dtype if F.dtype in (np.float32, np.float64) else np.float64
    F = F.astype(dtype, copy=False)
    y_enc = np.asarray(y_enc, np.int64)
    n, d = F.shape
    k = n_outputs(loss, n_classes)
    s = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    S = float(s.sum())
    s = s / S
    reg = 1.0 / (2.0 * C * S)
    x0 = np.zeros((d + 1) * k) if init is None else np.concatenate([np.ravel(init[0]), np.ravel(init[1])])

    threads = max(1, min(int(threads), n // 256))
    bounds = np.linspace(0, n, threads + 1).astype(int)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def part(Wd, bd, lo, hi):
        Z = F[lo:hi] @ Wd + bd
        value, G = loss_and_grad(loss, Z, y_enc[lo:hi], s[lo:hi])
        return value, F[lo:hi].T @ G, G.sum(axis=0, dtype=np.float64)

    def fun(x):
        W = x[: d * k].reshape(d, k)
        Wd, bd = W.astype(dtype), x[d * k :].astype(dtype)
        if pool is None:
            parts = [part(Wd, bd, 0, n)]
        else:
            parts = list(pool.map(lambda i: part(Wd, bd, bounds[i], bounds[i + 1]), range(threads)))
        grad = np.empty_like(x)
        grad[: d * k] = sum(p[1] for p in parts).ravel()
        grad[: d * k] += 2.0 * reg * x[: d * k]
        grad[d * k :] = sum(p[2] for p in parts)
        return sum(p[0] for p in parts) + reg * float(x[: d * k] @ x[: d * k]), grad

    gtol = tol
    if init is not None:
        # A warm start (the previous C's solution) can already meet an absolute tolerance: the gradient
        # at x0 is only the change of the penalty term, tiny at weak regularisation, and L-BFGS-B would
        # stop at once, so a whole flat end of the C table would be the previous C's fit. Ask for the
        # gradient to shrink at least tenfold from where the warm start put it.
        gtol = min(tol, 0.1 * float(np.abs(fun(x0)[1]).max()))
    try:
        res = minimize(fun, x0, jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "gtol": gtol, "ftol": 64 * np.finfo(float).eps, "maxls": 50})
        value, grad = fun(res.x)
    finally:
        if pool is not None:
            pool.shutdown()
    grad_max = float(np.abs(grad).max()) if grad.size else 0.0
    info = FitInfo(n_iter=int(res.nit), hit_max_iter=int(res.nit) >= max_iter and grad_max > tol,
                   grad_max=grad_max, objective=float(value))
    return res.x[: d * k].reshape(d, k).copy(), res.x[d * k :].copy(), info


class RowSpace:
    """A basis of the row space of a training matrix X, from its Gram matrix ``G = X X^T``.

    With the Cholesky factor ``G = L L^T``, ``B = X^T L^-T`` has orthonormal columns spanning the
    rows of X (``B^T B = L^-1 G L^-T = I``) and ``X B = L``. So ``features()`` is L (N, N), other rows
    go in by ``project(X_other X^T) = X_other X^T L^-T``, and a solution Z (N, k) comes back as
    ``coef_factor(Z) = L^-T Z``, with W = X^T L^-T Z (D, k). Being orthonormal, the basis keeps the
    problem's conditioning and its penalty (||B Z|| = ||Z||). A Cholesky factorisation costs N^3/3
    flops (an eigendecomposition about 9 N^3); a jitter of ``rtol * mean(diag G)`` on the diagonal
    handles rank deficiency (centring, duplicate rows): its direction gets a ~0 feature, so no weight.
    """

    def __init__(self, gram: np.ndarray, rtol: float = 1e-10):
        from scipy.linalg import LinAlgError, cholesky

        G = np.asarray(gram, np.float64)
        jitter = rtol * max(float(np.mean(np.diag(G))), 1e-300)
        for _ in range(8):
            try:
                self.L = cholesky(G + jitter * np.eye(len(G)), lower=True, check_finite=False)
                break
            except LinAlgError:
                jitter *= 100.0
        else:  # pragma: no cover - G is a Gram matrix, so some jitter always works
            raise RuntimeError("the Gram matrix could not be factorised")
        self.rank = len(G)

    def features(self) -> np.ndarray:
        return self.L

    def project(self, cross_gram: np.ndarray) -> np.ndarray:
        """X_other X^T L^-T for the cross Gram matrix (m, N)."""
        from scipy.linalg import solve_triangular

        return solve_triangular(self.L, np.asarray(cross_gram, np.float64).T, lower=True, check_finite=False).T

    def coef_factor(self, Z: np.ndarray) -> np.ndarray:
        """L^-T Z (N, k): the weights are X^T times this."""
        from scipy.linalg import solve_triangular

        return solve_triangular(self.L.T, np.asarray(Z, np.float64), lower=False, check_finite=False)


def use_row_space(n_rows: int, n_features: int) -> bool:
    """The row-space solve pays when features outnumber rows and the N x N factorisation is cheap."""
    return n_features > 1.5 * n_rows and n_rows <= 12000
