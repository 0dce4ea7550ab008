"""The train/test(/val) assignment made once at extraction, so every later step uses the same split.

Split values stored in a feature file (``split`` dataset, uint8): ``SPLITS`` below is the one place
they are defined. 0 = train and 1 = test have always been there; 2 = val appears only when the
dataset itself came split three ways (train/val/test folders, or a manifest's ``split`` column).
"""

from __future__ import annotations

import numpy as np

TRAIN, TEST, VAL = 0, 1, 2
SPLITS = {"train": TRAIN, "test": TEST, "val": VAL}  # name -> value stored in the file
SPLIT_NAMES = tuple(sorted(SPLITS, key=SPLITS.get))  # value -> name: ("train", "test", "val")
# The split values a feature file may hold: one per name above (readers refuse any other value).
VALID_SPLITS = tuple(range(len(SPLIT_NAMES)))

# Where the split of a file's rows came from (root attribute ``split_source``; files made before it
# was recorded were all stratified).
STRATIFIED, FROM_FOLDERS, FROM_COLUMN = "stratified", "folders", "csv column"


def describe_split_source(attrs: dict) -> str:
    """One phrase for a user: where the split of a feature file (its root ``attrs``) came from."""
    source = attrs.get("split_source") or STRATIFIED
    if source == FROM_FOLDERS:
        return "the dataset's split folders (train/, val/, test/ …)"
    if source == FROM_COLUMN:
        return "the manifest's split column"
    test_size = attrs.get("test_size")
    held = f"{float(test_size):.0%} of each class" if test_size is not None else "a fraction of each class"
    return f"a stratified random split ({held} held out as test, seed {attrs.get('seed', '?')})"


def stratified_split(labels: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Return a uint8 array (0 = train, 1 = test) with ``test_size`` of every class in the test split.

    Each class contributes ``round(n * test_size)`` test rows (at least one when it has two or more
    images, none when it has one), chosen by a permutation seeded with ``(seed, class)``, so the split does not
    depend on which other classes exist.
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
