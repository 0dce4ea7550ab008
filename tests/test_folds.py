"""The NumPy stratified folds are scikit-learn's StratifiedKFold(shuffle=True) folds, row for row."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from transferkit.heads.folds import stratified_kfold


@pytest.mark.parametrize("seed", [0, 42, 7])
@pytest.mark.parametrize("n_splits", [2, 3, 5])
def test_folds_equal_scikit_learn(seed, n_splits):
    rng = np.random.default_rng(seed)
    for y in (rng.integers(0, 7, 200), np.repeat([3, 1, 2], [40, 13, 9]), np.array(list("bacabcbbaacbcab") * 3)):
        ours = stratified_kfold(y, n_splits, seed)
        ref = list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
        assert len(ours) == n_splits
        for (tr, te), (rtr, rte) in zip(ours, ref):
            np.testing.assert_array_equal(tr, rtr)
            np.testing.assert_array_equal(te, rte)
