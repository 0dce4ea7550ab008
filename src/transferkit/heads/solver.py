"""Full-batch L-BFGS in NumPy (analytic gradients) for L2-penalised linear models.

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

    Plain L-BFGS (memory 10) whose line search runs on the decision values: one product ``F P`` per
    iteration gives the change of every row's decision values along the search direction P, so each
    trial step of the line search costs a pass over an (n, k) array, not over F; with the gradient's
    ``F^T G``, an iteration is two products with F. (SciPy's L-BFGS-B spends about as long as both
    products in its own bookkeeping on problems of 10^5 variables, and evaluates F at every trial step.)
    Stops when the largest gradient entry is at most ``tol`` (scikit-learn's rule), after ``max_iter``
    iterations, or when no step lowers the objective any more (the float precision's floor).

    ``threads`` > 1 splits the rows into that many blocks whose products run in parallel Python threads
    (BLAS releases the GIL). The caller is expected to hold BLAS itself to one thread: a pool of BLAS
    threads woken for every product is slow on an idle machine and dramatically so on a busy one.
    """
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
    rows = _Rows(F, y_enc, s, loss, threads)
    x = np.zeros((d + 1) * k) if init is None else np.concatenate([np.ravel(init[0]), np.ravel(init[1])])
    x = x.astype(np.float64)

    def split(v):
        return v[: d * k].reshape(d, k), v[d * k :]

    def gradient(GZ, v):
        grad = np.empty_like(v)
        grad[: d * k] = rows.back(GZ).ravel()
        grad[: d * k] += 2.0 * reg * v[: d * k]
        grad[d * k :] = GZ.sum(axis=0, dtype=np.float64)
        return grad

    Z = rows.forward(*split(x))
    value, GZ = rows.loss(Z)
    f = value + reg * float(x[: d * k] @ x[: d * k])
    g = gradient(GZ, x)
    gtol = tol
    if init is not None:
        # A warm start (the previous C's solution) can already meet an absolute tolerance: the gradient
        # there is only the change of the penalty term, tiny at weak regularisation, and the fit would
        # stop at once, so a whole flat end of the C table would be the previous C's fit. Ask for the
        # gradient to shrink at least tenfold from where the warm start put it.
        gtol = min(tol, 0.1 * float(np.abs(g).max()))
    S_hist: list[np.ndarray] = []
    Y_hist: list[np.ndarray] = []
    n_iter = 0
    while n_iter < max_iter and float(np.abs(g).max()) > gtol:
        p = -_two_loop(g, S_hist, Y_hist)
        slope = float(g @ p)
        if slope >= 0:  # not a descent direction (rounding): restart from the gradient
            S_hist.clear(), Y_hist.clear()
            p, slope = -g, -float(g @ g)
        pW, pb = split(p)
        dZ = rows.forward(pW, pb)
        a0 = 1.0 if S_hist else min(1.0, 1.0 / max(float(np.abs(g).max()), 1e-12))
        found = _line_search(_along(rows, reg, Z, dZ, x[: d * k], p[: d * k]), f, slope, a0)
        n_iter += 1
        if found is None:  # no lower objective along p: at the precision's floor
            break
        a, f_new, GZ = found
        x_new = x + a * p
        Z = Z + dZ.dtype.type(a) * dZ
        if n_iter % 25 == 0:  # the running sum of steps drifts in float32; recompute it now and then
            Z = rows.forward(*split(x_new))
            value, GZ = rows.loss(Z)
            f_new = value + reg * float(x_new[: d * k] @ x_new[: d * k])
        g_new = gradient(GZ, x_new)
        s_vec, y_vec = x_new - x, g_new - g
        if float(s_vec @ y_vec) > 1e-12 * float(y_vec @ y_vec):
            S_hist.append(s_vec), Y_hist.append(y_vec)
            if len(S_hist) > MEMORY:
                S_hist.pop(0), Y_hist.pop(0)
        done = f - f_new <= 64 * np.finfo(float).eps * max(abs(f), abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        if done:
            break
    rows.close()
    grad_max = float(np.abs(g).max()) if g.size else 0.0
    info = FitInfo(n_iter=n_iter, hit_max_iter=n_iter >= max_iter and grad_max > tol, grad_max=grad_max,
                   objective=float(f))
    W, b = split(x)
    return W.copy(), b.copy(), info


MEMORY = 10  # correction pairs kept by L-BFGS


def _two_loop(g: np.ndarray, S: list[np.ndarray], Y: list[np.ndarray]) -> np.ndarray:
    """The L-BFGS approximation of the inverse Hessian times g (Nocedal & Wright, algorithm 7.4)."""
    q = g.copy()
    alphas = []
    for s_vec, y_vec in zip(reversed(S), reversed(Y)):
        rho = 1.0 / float(y_vec @ s_vec)
        a = rho * float(s_vec @ q)
        q -= a * y_vec
        alphas.append((rho, a))
    if S:
        q *= float(S[-1] @ Y[-1]) / float(Y[-1] @ Y[-1])
    for (s_vec, y_vec), (rho, a) in zip(zip(S, Y), reversed(alphas)):
        q += (a - rho * float(y_vec @ q)) * s_vec
    return q


def _along(rows, reg, Z, dZ, w, p):
    """The objective along w + a p as a function of a -> (value, derivative, gradient wrt the decision values),
    from the decision values Z at a = 0 and their change dZ per unit step (no product with F)."""
    pen0, pen1, pen2 = float(w @ w), 2.0 * float(w @ p), float(p @ p)

    def phi(a):
        value, G = rows.loss(Z + dZ.dtype.type(a) * dZ)
        slope = float(np.einsum("ij,ij->", G, dZ, dtype=np.float64)) + reg * (pen1 + 2.0 * a * pen2)
        return value + reg * (pen0 + a * pen1 + a * a * pen2), slope, G

    return phi


def _line_search(phi, f0: float, slope0: float, a: float, c1: float = 1e-4, c2: float = 0.9, max_tries: int = 30):
    """A step meeting the strong Wolfe conditions on a convex one-dimensional function ``phi(a)`` ->
    (value, derivative, extra), by bracketing on the sign of the derivative and secant steps inside
    the bracket. Returns (step, value, extra), or None if no step lowers the value."""
    lo, d_lo, hi, d_hi = 0.0, slope0, np.inf, None
    best = None
    for _ in range(max_tries):
        value, deriv, extra = phi(a)
        if value < f0 and (best is None or value < best[1]):
            best = (a, value, extra)
        if value > f0 + c1 * a * slope0 or deriv > c2 * abs(slope0):
            hi, d_hi = a, deriv
        elif deriv < -c2 * abs(slope0):
            lo, d_lo = a, deriv
        else:
            return a, value, extra
        if np.isinf(hi):
            a *= 4.0
        elif d_hi is not None and d_hi > 0 and d_lo < 0:  # secant on the derivative, kept inside the bracket
            a = lo + (hi - lo) * min(max(-d_lo / (d_hi - d_lo), 0.1), 0.9)
        else:
            a = 0.5 * (lo + hi)
        if hi - lo <= 1e-12 * max(hi, 1e-300):
            break
    return best


class _Rows:
    """Products with the rows of F and the loss on the decision values, split into row blocks that run in
    parallel threads when ``threads`` > 1."""

    def __init__(self, F, y_enc, s, loss, threads):
        from concurrent.futures import ThreadPoolExecutor

        n = len(F)
        self.F, self.y, self.s, self.loss_name = F, y_enc, s, loss
        threads = max(1, min(int(threads), n // 256))
        self.bounds = np.linspace(0, n, threads + 1).astype(int)
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def _map(self, fn):
        blocks = [slice(self.bounds[i], self.bounds[i + 1]) for i in range(len(self.bounds) - 1)]
        return list(self.pool.map(fn, blocks)) if self.pool is not None else [fn(blocks[0])]

    def forward(self, W, b):
        Wd, bd = W.astype(self.F.dtype), b.astype(self.F.dtype)
        if self.pool is None:
            return self.F @ Wd + bd
        return np.concatenate(self._map(lambda r: self.F[r] @ Wd + bd))

    def loss(self, Z):
        parts = self._map(lambda r: loss_and_grad(self.loss_name, Z[r], self.y[r], self.s[r]))
        return sum(p[0] for p in parts), (np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1])

    def back(self, G):
        return sum(self._map(lambda r: self.F[r].T @ G[r])).astype(np.float64)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()


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
