"""Duplicates and train/test leakage from close pairs of feature vectors.

Two rows whose features have cosine similarity >= ``near`` (default 0.98) are a near-duplicate
pair; at >= 1 - 1e-5 they are called exact (the same picture, up to re-encoding and float rounding).
A pair with one row in the test split and the other outside it (train, or a validation split) is
*leakage*: the test image was in effect seen during training, which inflates test accuracy.

On Lite0 features of Oxford Flowers-17, distinct photos reach similarities up to about 0.98 (the
same flower shot twice from nearly the same place); copies of one photo score 0.9999 or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_NEAR = 0.98
SPLIT_NAMES = {0: "train", 1: "test", 2: "val"}  # the split codes of the feature file
TEST = 1
EXACT = 1.0 - 1e-5


@dataclass
class Pair:
    i: int
    j: int
    similarity: float
    exact: bool
    where: str  # "train", "test", "val" (both rows in that split), or the two splits, e.g. "train/test"
    leakage: bool  # one row in the test split, the other not


def duplicate_pairs(pairs: np.ndarray, similarity: np.ndarray, split: np.ndarray) -> list[Pair]:
    """Pairs (i < j) with their kind and splits, most similar first (ties by row numbers)."""
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -similarity)) if len(pairs) else np.zeros(0, int)
    out = []
    for n in order:
        i, j = int(pairs[n, 0]), int(pairs[n, 1])
        a, b = sorted((int(split[i]), int(split[j])))
        where = SPLIT_NAMES.get(a, str(a)) if a == b else f"{SPLIT_NAMES.get(a, a)}/{SPLIT_NAMES.get(b, b)}"
        out.append(Pair(i=i, j=j, similarity=float(min(similarity[n], 1.0)), exact=bool(similarity[n] >= EXACT),
                        where=where, leakage=(a == TEST) != (b == TEST)))
    return out


def pair_rows_for_test_first(pair: Pair, split: np.ndarray) -> tuple[int, int]:
    """(row, other): for leakage the test row comes first, the row it leaks from second."""
    if pair.leakage and int(split[pair.i]) != TEST:
        return pair.j, pair.i
    return pair.i, pair.j
