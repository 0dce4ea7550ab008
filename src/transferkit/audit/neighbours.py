"""Exact nearest neighbours by cosine similarity, blockwise in NumPy with bounded memory.

Rows are scaled to unit length, so cosine similarity is a dot product and a block of similarities is
one matrix product (BLAS, every core). The N x N similarity matrix is never held: it is walked in
square blocks of ``block`` rows; a row keeps only its ``k`` most similar others so far (merged block
by block with ``argpartition``), and pairs at or above a similarity ``threshold`` are collected as
they are met. Comparing a set with itself, only the blocks on and above the diagonal are computed
and each serves both of its row ranges, which halves the arithmetic.

Memory: the unit rows (N x D float32) plus about ``16 * block**2`` bytes of work space (the block,
its transpose and argpartition's indices); :func:`block_for` sizes ``block`` from a byte budget.
Time grows as N**2 * D: see BENCHMARKS.md ("audit: nearest neighbours") for 100,000 rows on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BUDGET = 256 << 20  # bytes of work space for the similarity blocks


def unit_rows(X: np.ndarray) -> np.ndarray:
    """``X`` as float32 rows of unit length (an all-zero row stays zero: similar to nothing)."""
    X = np.asarray(X, np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def block_for(budget: int = DEFAULT_BUDGET) -> int:
    """Rows per square block so that a block's work space stays within ``budget`` bytes."""
    return int(max(64, min(8192, np.sqrt(budget / 16))))


@dataclass
class Neighbours:
    """The ``k`` most similar other rows of every row (most similar first), and the close pairs."""

    index: np.ndarray  # (N, k) int64 row numbers; -1 where fewer than k others exist
    similarity: np.ndarray  # (N, k) float32 cosine similarities, -inf where index is -1
    pairs: np.ndarray  # (P, 2) int64, i < j, every pair with similarity >= threshold
    pair_similarity: np.ndarray  # (P,) float32


class _TopK:
    """Running top-k (largest) per row, merged block by block."""

    def __init__(self, n: int, k: int):
        self.k = k
        self.sim = np.full((n, k), -np.inf, np.float32)
        self.idx = np.full((n, k), -1, np.int64)

    def merge(self, rows: slice, block: np.ndarray, col0: int) -> None:
        k = self.k
        if block.shape[1] > k:
            part = np.argpartition(block, block.shape[1] - k, axis=1)[:, -k:]
            cand_sim = np.take_along_axis(block, part, axis=1)
        else:
            part = np.broadcast_to(np.arange(block.shape[1]), block.shape)
            cand_sim = block
        sim = np.concatenate([self.sim[rows], cand_sim], axis=1)
        idx = np.concatenate([self.idx[rows], part + col0], axis=1)
        keep = np.argpartition(sim, sim.shape[1] - k, axis=1)[:, -k:]
        self.sim[rows] = np.take_along_axis(sim, keep, axis=1)
        self.idx[rows] = np.take_along_axis(idx, keep, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.sim, axis=1, kind="stable")
        idx, sim = np.take_along_axis(self.idx, order, axis=1), np.take_along_axis(self.sim, order, axis=1)
        idx[np.isneginf(sim)] = -1
        return idx, sim


def self_neighbours(U: np.ndarray, k: int = 5, threshold: float | None = None, *,
                    budget: int = DEFAULT_BUDGET, progress=None) -> Neighbours:
    """Nearest other rows of every row of ``U`` (unit rows) and the pairs with similarity >= ``threshold``.

    ``progress(done, total)`` is called after each block (``done``/``total`` count blocks).
    """
    n = len(U)
    k = max(1, min(k, n - 1)) if n > 1 else 1
    top = _TopK(n, k)
    B = block_for(budget)
    starts = list(range(0, n, B))
    total, done = len(starts) * (len(starts) + 1) // 2, 0
    pair_i, pair_j, pair_s = [], [], []
    for a, r0 in enumerate(starts):
        rows = slice(r0, min(r0 + B, n))
        for c0 in starts[a:]:
            cols = slice(c0, min(c0 + B, n))
            S = U[rows] @ U[cols].T
            if c0 == r0:
                np.fill_diagonal(S, -np.inf)  # a row is not its own neighbour
                top.merge(rows, S, c0)
            else:
                top.merge(rows, S, c0)
                top.merge(cols, np.ascontiguousarray(S.T), r0)
            if threshold is not None:
                i, j = np.nonzero(S >= threshold)
                if c0 == r0:
                    keep = i < j
                    i, j = i[keep], j[keep]
                pair_i.append(i + r0), pair_j.append(j + c0), pair_s.append(S[i, j])
            done += 1
            if progress is not None:
                progress(done, total)
    index, sim = top.result()
    if n <= 1:
        index, sim = np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32)
    pairs = (
        np.column_stack([np.concatenate(pair_i), np.concatenate(pair_j)]).astype(np.int64)
        if pair_i
        else np.zeros((0, 2), np.int64)
    )
    return Neighbours(
        index=index,
        similarity=sim,
        pairs=pairs,
        pair_similarity=np.concatenate(pair_s).astype(np.float32) if pair_s else np.zeros(0, np.float32),
    )


def nearest(
    Q: np.ndarray, R, k: int = 3, *, budget: int = DEFAULT_BUDGET, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``R`` most similar to each row of ``Q`` (unit rows): (index, similarity), most
    similar first; index -1 where ``R`` has fewer rows. ``R`` is an array of unit rows, or an iterable of
    chunks of unit rows (read from a file chunk by chunk; indices count rows across the chunks).
    ``exclude[i]``: a row of ``R`` that row ``i`` of ``Q`` may not pick (itself), or -1."""
    B = block_for(budget)
    if isinstance(R, np.ndarray):
        R = [R[c0 : c0 + B] for c0 in range(0, len(R), B)]  # views
    extra = exclude is not None
    top = _TopK(len(Q), k + extra) if len(Q) and k else None
    c0 = 0
    for chunk in R:
        if top is None:
            break
        for r0 in range(0, len(Q), B):
            rows = slice(r0, min(r0 + B, len(Q)))
            S = Q[rows] @ chunk.T
            if extra:
                ex = exclude[rows] - c0
                hit = (ex >= 0) & (ex < S.shape[1])
                S[np.flatnonzero(hit), ex[hit]] = -np.inf
            top.merge(rows, S, c0)
        c0 += len(chunk)
    if top is None:
        return np.zeros((len(Q), 0), np.int64), np.zeros((len(Q), 0), np.float32)
    index, sim = top.result()
    return (index[:, :k], sim[:, :k]) if extra else (index, sim)
