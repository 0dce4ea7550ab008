"""Row sources for minibatch training: rows in memory, or rows streamed from a feature file.

Both serve the same thing: the labels of every row up front (they are small), and features in
chunks, either in order (for statistics and evaluation passes) or shuffled. Feature files are
usually written class by class, so reading them in file order would hand SGD one class at a time;
a shuffled epoch instead permutes *blocks* of ``block_rows`` consecutive rows, gathers enough blocks
for one chunk, and permutes the rows inside the chunk. Only one chunk (plus one block being read) is
in memory at a time, so peak memory is set by ``chunk_rows``, not by the file.

Given the same ``block_rows`` and generator, :class:`ArraySource` and :class:`FileSource` produce the
same rows in the same order, so a model trained from either is the same model (to rounding).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..store import budget as _budget


class _Source:
    labels: np.ndarray
    n_features: int
    chunk_rows: int
    block_rows: int

    def _read(self, positions: np.ndarray) -> np.ndarray:  # sorted positions -> (len, D) float32
        raise NotImplementedError

    @property
    def n_rows(self) -> int:
        return len(self.labels)

    def chunks(self, positions: np.ndarray | None = None, rng: np.random.Generator | None = None
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (features, labels, positions) of ``positions`` (default: all rows), ``chunk_rows`` at a time.

        ``rng`` None: in order. Otherwise a block-shuffled order (see the module docstring).
        """
        pos = np.arange(self.n_rows) if positions is None else np.sort(np.asarray(positions, np.int64))
        if rng is None:
            for start in range(0, len(pos), self.chunk_rows):
                sel = pos[start : start + self.chunk_rows]
                yield self._read(sel), self.labels[sel], sel
            return
        n_blocks = -(-len(pos) // self.block_rows)
        order = rng.permutation(n_blocks)
        per_chunk = max(1, self.chunk_rows // self.block_rows)
        within = np.arange(self.block_rows)
        for start in range(0, len(order), per_chunk):
            group = np.sort(order[start : start + per_chunk])  # read in file order
            idx = (group[:, None] * self.block_rows + within).ravel()
            sel = pos[idx[idx < len(pos)]]
            X = self._read(sel)
            perm = rng.permutation(len(sel))
            yield X[perm], self.labels[sel[perm]], sel[perm]


class ArraySource(_Source):
    """Rows already in memory (features float32, labels)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, chunk_rows: int | None = None, block_rows: int = 1):
        self.X = np.asarray(X, np.float32)
        self.labels = np.asarray(y)
        self.n_features = self.X.shape[1]
        self.chunk_rows = int(chunk_rows or max(1, len(self.labels)))
        self.block_rows = int(block_rows)

    def _read(self, positions):
        return self.X[positions]


class FileSource(_Source):
    """Rows of one split of an open :class:`~transferkit.store.FeatureFile`, read chunk by chunk.

    ``max_memory`` (bytes or "2GB") sets ``chunk_rows`` so that a few chunk-sized buffers fit in it.
    """

    def __init__(self, ff, split: str = "train", chunk_rows: int | None = None, max_memory=None,
                 block_rows: int = 64, layers=None):
        self.ff = ff
        # ``layers`` as in FeatureFile.load: None is the ``features`` dataset; several are read side by side
        chosen = ff.select_layers(layers)  # also validates the names
        self.layers = layers
        self.file_rows = ff.rows(split)
        self.labels = ff.labels[self.file_rows]
        self.n_features = ff.feature_dim if layers is None else sum(int(c["dim"]) for c in chosen)
        if chunk_rows is None:
            budget = _budget.parse_size(max_memory) if max_memory is not None else 256 * 2**20
            chunk_rows = training_chunk_rows(budget, self.n_features)
        self.chunk_rows = int(chunk_rows)
        # At least 16 blocks per chunk, so that every chunk mixes rows from all over the file.
        self.block_rows = int(max(1, min(block_rows, self.chunk_rows // 16)))

    def _read(self, positions):
        return self.ff.read_rows(self.file_rows[positions], self.layers)


def training_chunk_rows(budget_bytes: int, n_features: int) -> int:
    """Rows per chunk for out-of-core training within a budget (more copies than
    :meth:`FeatureFile.chunk_rows_for`, which budgets reading alone). Measured
    (benchmarks/bench_out_of_core.py): reading a chunk (the slices read, the chunk, its shuffled and
    standardised copies) plus the torch intermediates of a minibatch pass or a float64 polish slice
    peak at about eight chunk-sized float32 buffers; twelve leave room for allocator slack."""
    return _budget.rows_for_budget(budget_bytes, 4 * n_features, copies=12, minimum=64)


def fits_in_memory(n_rows: int, n_features: int, budget_bytes: int | None) -> bool:
    """Whether in-memory training fits: the features, a standardised copy and a float64 working copy
    for the solver (about 4 + 4 + 8 bytes per value)."""
    if budget_bytes is None:
        return True
    return n_rows * n_features * 16 <= budget_bytes
