"""The train/test assignment made once at extraction, so every later step uses the same split."""

from __future__ import annotations

import numpy as np

TRAIN, TEST = 0, 1
SPLIT_NAMES = ("train", "test")
# The split values a feature file may hold: one per name above (readers refuse any other value).
VALID_SPLITS = tuple(range(len(SPLIT_NAMES)))


def stratified_split(labels: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Return a uint8 array (0 = train, 1 = test) with ``test_size`` of every class in the test split.

    Each class contributes ``round(n * test_size)`` test rows (at least one when it has two or more
    images, none when it has one), chosen by a permutation seeded with ``(seed, class)``, so the split does not depend on
    which other classes exist.
    """
    if not 0.0 <= test_size < 1.0:
        raise ValueError(f"test_size must be in [0, 1), got {test_size}")
    labels = np.asarray(labels)
    split = np.zeros(len(labels), dtype=np.uint8)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n_test = int(round(len(idx) * test_size))
        if test_size > 0 and len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        else:
            n_test = 0
        chosen = np.random.default_rng([seed, int(cls)]).permutation(idx)[:n_test]
        split[chosen] = TEST
    return split
