"""The training matrix under each candidate scaling, in the form the solver works on.

:class:`Primal` holds the scaled features themselves (rows >= features, or not many rows).
:class:`Wide` holds only Gram matrices ``T T^T`` of the scaled features T (features much more
numerous than rows): every fold and the final fit are solved in the row space (exact, see
:mod:`.solver`), and the D-sized work is one blocked pass over the columns of X for all the
scalings that need a Gram matrix of their own ("none" and "l2" share the raw one). Scalings are
applied before the projection, so the row space is that of the scaled features. The final weights
come back to D dimensions as ``W = T^T A``, computed block by block, so prediction stays one matrix
product on scaled features and no scaled copy of X is ever held.
"""

from __future__ import annotations

import numpy as np

from . import scaling as scalings
from .solver import RowSpace

BLOCK_COLS = 4096


class Primal:
    """The scaled features, centred for the solver, made on demand from X (no full scaled copy is kept).

    Centring is an exact change of variables when the intercept is not penalised (``W^T (x - mu) + b'``
    is ``W^T x + b' - W^T mu``), and it takes the large common mean of non-negative features out of
    the problem, which makes it much better conditioned: L-BFGS needs far fewer iterations.
    :meth:`intercept` maps ``b'`` back, so the model predicts on the scaled features as they are.
    """

    def __init__(self, name: str, X: np.ndarray, mean, scale, dtype):
        self.name, self.X, self.mean, self.scale, self.dtype = name, X, mean, scale, dtype
        step = scalings.chunk_rows(X.shape[1])
        total = sum(self._scaled(X[i : i + step]).sum(axis=0, dtype=np.float64) for i in range(0, len(X), step))
        self.mu = (total / max(len(X), 1)).astype(dtype)

    def _scaled(self, rows):
        return scalings.apply(self.name, rows, self.mean, self.scale).astype(self.dtype, copy=False)

    def _centred(self, idx):
        T = self._scaled(self.X[idx])
        T -= self.mu
        return T

    def fold(self, tr, te):
        return self._centred(tr), self._centred(te)

    def full(self):
        return self._centred(slice(None))

    def coef(self, W, _X=None):
        return W

    def intercept(self, W, b):
        return b - self.mu.astype(np.float64) @ W


class Wide:
    """Gram matrices of several scalings of X (n, D), from one pass over its columns; of the rows ``rows``
    only (sorted indices into X) when given: folds then name rows of X, and are mapped to those."""

    def __init__(self, names, X: np.ndarray, params: dict, threads: int = 1, rows: np.ndarray | None = None):
        from concurrent.futures import ThreadPoolExecutor

        self.names, self.params, self.rows = tuple(names), params, rows
        D = X.shape[1]
        n = X.shape[0] if rows is None else len(rows)
        pick = slice(None) if rows is None else rows
        raw_needed = any(s in ("none", "l2") for s in names)
        own = [s for s in names if s in ("standardise", "sqrt-l2")]
        self.sqrt_norms = None
        if "sqrt-l2" in own:  # ||sqrt|x| ||^2 = sum |x|: the row norms before the pass
            step = scalings.chunk_rows(D)
            idx = np.arange(X.shape[0]) if rows is None else rows
            self.sqrt_norms = np.concatenate([np.sqrt(np.abs(X[idx[i : i + step]]).sum(axis=1, dtype=np.float64))
                                              for i in range(0, n, step)]).astype(np.float32)
        keys = (["raw"] if raw_needed else []) + own

        def gram_of_columns(starts):  # one thread's share of the column blocks
            acc = {key: np.zeros((n, n), np.float64) for key in keys}
            # The blocks are written into buffers made once per thread: a fresh ~40 MB array per block
            # and scaling is fresh pages for the kernel to map each time (seconds of system time).
            buf_B, buf_T = np.empty((n, BLOCK_COLS), np.float32), np.empty((n, BLOCK_COLS), np.float32)
            buf_G = np.empty((n, n), np.float32)
            for j in starts:
                width = min(BLOCK_COLS, D - j)
                B = buf_B[:, :width]
                B[...] = X[pick, j : j + width]
                for key in keys:
                    T = B if key == "raw" else self.block(key, B, j, out=buf_T[:, :width])
                    acc[key] += np.matmul(T, T.T, out=buf_G)
            return acc

        starts = list(range(0, D, BLOCK_COLS))
        threads = max(1, min(threads, len(starts)))
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(gram_of_columns, [starts[i::threads] for i in range(threads)]))
        grams = {key: sum(p[key] for p in parts) for key in keys}
        G0 = grams.pop("raw", None)
        if raw_needed:
            norms = np.sqrt(np.maximum(np.diag(G0), 1e-24))
            for s in ("none", "l2"):
                if s in names:
                    f = float(params[s][1][0])
                    grams[s] = G0 / (f * f) if s == "none" else G0 / np.outer(norms, norms) / (f * f)
            self.raw_norms = norms.astype(np.float32)
        self.grams = grams

    def block(self, name: str, B: np.ndarray, j: int, out: np.ndarray | None = None) -> np.ndarray:
        """Columns j: j+len(B.T) of the scaled features, from those columns of X (written into ``out``,
        float32 of B's shape, when given)."""
        mean, scale = (p[j : j + B.shape[1]] for p in self.params[name])
        T = np.empty(B.shape, np.float32) if out is None else out
        if name == "standardise":
            np.subtract(B, mean, out=T)
        elif name == "sqrt-l2":
            np.sqrt(np.abs(B, out=T), out=T)
            np.copysign(T, B, out=T)
            T /= self.sqrt_norms[:, None]
        elif name == "l2":
            np.divide(B, self.raw_norms[:, None], out=T)
        else:
            T[...] = B
        T /= scale
        return T

    def for_scaling(self, name: str) -> "WideScaling":
        return WideScaling(self, name)


class WideScaling:
    def __init__(self, wide: Wide, name: str):
        self.wide, self.name, self.G = wide, name, wide.grams[name]
        self.rs = None

    def fold(self, tr, te):
        if self.wide.rows is not None:  # rows of X -> rows of the Gram matrix
            tr, te = np.searchsorted(self.wide.rows, tr), np.searchsorted(self.wide.rows, te)
        rs = RowSpace(self.G[np.ix_(tr, tr)])
        return rs.features(), rs.project(self.G[np.ix_(te, tr)])

    def full(self):
        self.rs = RowSpace(self.G)
        return self.rs.features()

    def intercept(self, W, b):
        return b

    def coef(self, Z, X):
        """W (D, k) = T^T L^-T Z, block by block over the columns of X."""
        A = self.rs.coef_factor(Z).astype(np.float32)
        D = X.shape[1]
        W = np.empty((D, A.shape[1]), np.float64)
        for j in range(0, D, BLOCK_COLS):
            B = np.ascontiguousarray(X[:, j : j + BLOCK_COLS])
            W[j : j + B.shape[1]] = self.wide.block(self.name, B, j).T @ A
        return W
