"""Test accuracy of the default head against the classic recipe over random re-splits of a feature file.

    PYTHONPATH=$PWD/src OPENBLAS_NUM_THREADS=1 python benchmarks/recipe_resplits.py FEATURES.h5 [--splits 10]

Every row of the file is re-split (stratified, 75/25, seeds 100, 101, ...); on each split the
classic recipe (``GridSearchCV(LogisticRegression(), {"C": [0.1 ... 10000]}, cv=3)`` on the raw
features) and ``LogisticHead()`` with its defaults are fitted on the train part and scored on the
test part. Prints both accuracies per split and the head's wins / ties / losses: one split's test
accuracy is noisy, the count over splits says whether a selection rule helps.
"""

from __future__ import annotations

import argparse
import time
import warnings

import h5py
import numpy as np


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, train_test_split

    from transferkit.heads import make_head

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--test-size", type=float, default=0.25)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # lbfgs "failed to converge" in the recipe, as in the tutorial
    with h5py.File(args.features, "r") as f:
        X, y = f["features"][:], f["labels"][:]
    score = [0, 0, 0]
    for seed in range(args.splits):
        tr, te = train_test_split(np.arange(len(y)), test_size=args.test_size, stratify=y, random_state=100 + seed)
        t0 = time.process_time()
        recipe = GridSearchCV(LogisticRegression(), {"C": [0.1, 1, 10, 100, 1000, 10000]}, cv=3).fit(X[tr], y[tr])
        t1 = time.process_time()
        head = make_head("logreg").fit(X[tr], y[tr])
        t2 = time.process_time()
        a_r, a_h = recipe.score(X[te], y[te]), float(np.mean(head.predict(X[te]) == y[te]))
        score[0 if a_h > a_r else 1 if a_h == a_r else 2] += 1
        print(f"split {seed}: recipe {a_r:.4f} (C={recipe.best_params_['C']}, cpu {t1 - t0:.1f} s) | head {a_h:.4f} "
              f"({head.scaling_}, C={head.C_:g}, cpu {t2 - t1:.1f} s)", flush=True)
    print("head wins / ties / losses: {} / {} / {}".format(*score))


if __name__ == "__main__":
    main()
