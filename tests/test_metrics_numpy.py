"""The NumPy classification metrics equal scikit-learn's (classification_report with zero_division=0)."""

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from transferkit.evaluate.metrics import classification_metrics


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d", "never seen"]
    y = rng.integers(0, 4, 300)  # class 4 has no test row and is never predicted
    proba = rng.random((300, 5)) * np.array([1, 1, 1, 0.2, 0])
    proba[np.arange(300), y] += rng.random(300)  # mostly right
    proba[:, 3] = np.where(y == 2, 0, proba[:, 3])
    m = classification_metrics(y, proba, names)
    pred = proba.argmax(1)
    labels = list(range(5))
    ref = classification_report(y, pred, labels=labels, target_names=names, output_dict=True, zero_division=0)
    for name in names:
        for key in ("precision", "recall", "f1-score"):
            assert abs(m["per_class"][name][key] - ref[name][key]) < 1e-12, (name, key)
        assert m["per_class"][name]["support"] == ref[name]["support"]
    for avg in ("macro", "weighted"):
        assert abs(m[f"{avg}_f1"] - f1_score(y, pred, labels=labels, average=avg, zero_division=0)) < 1e-12
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=labels).tolist()
