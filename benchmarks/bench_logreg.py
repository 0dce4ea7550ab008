"""Tuned logistic regression: transferkit's LogisticHead against the classic Keras transfer-learning
tutorial recipe (VGG16 without its top, block5_pool flattened, GridSearchCV over C).

    PYTHONPATH=src python benchmarks/bench_logreg.py [--rows 2250] [--cache benchmarks/.cache]

Both run side by side in one process on the same 2,250 x 25,088 float32 training matrix and the
same test rows, with the same 6-value C grid and 3 folds:

* reference: ``GridSearchCV(LogisticRegression(), {"C": [0.1, 1, 10, 100, 1000, 10000]}, cv=3)``
  on the raw features, exactly as that recipe runs it (lbfgs, max_iter=100 by default);
* transferkit: ``LogisticHead(Cs=same grid, cv=3)`` (standardised features, warm-started C path,
  row-space L-BFGS in PyTorch, folds in parallel).

The data. The recipe's features are VGG16 ``block5_pool`` maps (512 channels x 7 x 7 = 25,088, after
ReLU), which cannot be made offline. The closest real thing offline: EfficientNet-Lite0 (ImageNet
weights shipped with transferkit) on the flowers17 photos, its last 7 x 7 feature map (1,280
channels after the head conv, BatchNorm and ReLU6), of which the first 512 channels are kept and
flattened: the same shape and the same kind of data (post-activation, spatial conv features of
real photos) as the recipe's. flowers17 has 1,360 photos; the split is made by photo (75 % train,
stratified), and each training photo gives three views (as is, mirrored, a 90 % centre crop) from
which 2,250 rows are drawn, so no view of a test photo is ever trained on. The test rows are the
340 held-out photos as is. Features are cached (the extraction takes minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

GRID = [0.1, 1, 10, 100, 1000, 10000]
DATA = Path("/work/shared/datasets/flowers17")


def views(img):
    from PIL import ImageOps

    w, h = img.size
    crop = img.crop((int(w * 0.05), int(h * 0.05), int(w * 0.95), int(h * 0.95)))
    return [img, ImageOps.mirror(img), crop]


def extract(cache: Path, seed: int = 0) -> dict:
    import torch

    from transferkit.backbones.registry import create_backbone
    from transferkit.data.decode import load_image
    from transferkit.data.discover import discover

    path = cache / "flowers17_lite0_c512x7x7.npz"
    if path.exists():
        return dict(np.load(path))
    ds = discover(DATA)
    labels = np.array([s.label for s in ds.samples])
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        is_test[idx[: len(idx) // 4]] = True
    bb = create_backbone()
    pre = bb.preprocess
    net = bb.net.eval()
    feats, ys, test = [], [], []
    batch, meta = [], []

    def flush():
        with torch.inference_mode():
            fmap = net.forward_features(torch.from_numpy(np.stack(batch)))  # (B, 1280, 7, 7)
        feats.append(fmap[:, :512].reshape(len(batch), -1).numpy().astype(np.float32))
        ys.extend(m[0] for m in meta)
        test.extend(m[1] for m in meta)
        batch.clear(), meta.clear()

    t = time.perf_counter()
    for i, s in enumerate(ds.samples):
        img = load_image(ds.root / s.path, pre.min_decode_size)
        for v in views(img)[: 1 if is_test[i] else 3]:
            batch.append(pre.to_array(v))
            meta.append((labels[i], is_test[i]))
        if len(batch) >= 32:
            flush()
        if i % 200 == 0:
            print(f"  extracted {i}/{len(ds.samples)} photos ({time.perf_counter() - t:.0f} s)", flush=True)
    if batch:
        flush()
    out = {"X": np.concatenate(feats), "y": np.array(ys), "test": np.array(test)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2250)
    ap.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from transferkit.heads import LogisticHead

    d = extract(args.cache, args.seed)
    rng = np.random.default_rng(args.seed)
    train_idx = np.sort(rng.choice(np.flatnonzero(~d["test"]), args.rows, replace=False))
    X, y = d["X"][train_idx], d["y"][train_idx]
    X_test, y_test = d["X"][d["test"]], d["y"][d["test"]]
    print(f"train {X.shape} {X.dtype}, test {X_test.shape}, {len(np.unique(y))} classes, "
          f"{np.mean(X == 0):.0%} zeros")

    # Ours first (a cold torch start counts against us), then the reference.
    LogisticHead(Cs=[1.0]).fit(X[::45], y[::45])  # import/first-call warm-up, as sklearn's imports are warm
    t = time.perf_counter()
    head = LogisticHead(Cs=GRID, cv=3).fit(X, y)
    ours_s = time.perf_counter() - t
    ours_acc = float(np.mean(head.predict(X_test) == y_test))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t = time.perf_counter()
        ref = GridSearchCV(LogisticRegression(), {"C": GRID}, cv=3).fit(X, y)
        ref_s = time.perf_counter() - t
    ref_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    ref_acc = float(np.mean(ref.predict(X_test) == y_test))

    print(f"scikit-learn GridSearchCV: {ref_s:7.1f} s  test accuracy {ref_acc:.4f}  best C {ref.best_params_['C']:g}  "
          f"lbfgs did not converge in {ref_warn} of 19 fits (max_iter=100)")
    print(f"transferkit LogisticHead:  {ours_s:7.1f} s  test accuracy {ours_acc:.4f}  best C {head.C_:g}  "
          f"solver {head.solver_}, max_iter reached in {head.n_not_converged_} of {head.n_fits_} fits "
          f"(iterations per fit: {head.n_iter_})")
    print(f"speed-up {ref_s / ours_s:.1f}x; accuracy difference {100 * (ours_acc - ref_acc):+.2f} points "
          f"({len(y_test)} test rows: one row = {100 / len(y_test):.2f} points)")


if __name__ == "__main__":
    main()
