"""What compare's shortcuts buy, as ratios measured side by side in one process.

1. LogME + H-score vs k-fold CV on the same features: the cost of ranking without training.
2. Without --cache-dir: a second compare run (features reused) vs the first (features extracted).

    PYTHONPATH=src python benchmarks/compare_bench.py DATA --models efficientnet_lite0,efficientnet_lite1 \
        [--sample N] [--folds 10] [--baseline pixels] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import transferkit as tk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--models", default="efficientnet_lite0,efficientnet_lite1")
    ap.add_argument("--sample", type=int, default=None)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--baseline", default="pixels")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()
    models = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for _ in range(1 if args.cache_dir else 2):
            start = time.perf_counter()
            result = tk.compare(args.data, models, baseline=args.baseline, folds=args.folds, sample=args.sample,
                                out=tmp, cache_dir=args.cache_dir)
            runs.append((time.perf_counter() - start, result))
    first = runs[0][1]
    print(f"{first.n_images} images, {len(first.class_names)} classes, {args.folds} folds")
    print(f"{'candidate':24s} {'dims':>5s} {'CV s':>7s} {'scores s':>9s} {'scores/CV':>9s} {'extract s':>10s}")
    for r in first.rows:
        print(f"{r.name:24s} {r.dims:5d} {r.train_seconds:7.2f} {r.score_seconds:9.2f} "
              f"{r.score_seconds / r.train_seconds:9.3f} {'reused' if r.reused else f'{r.extract_seconds:.1f}':>10s}")
    if len(runs) == 2:
        (first_s, _), (second_s, second) = runs
        assert all(r.reused for r in second.rows if not r.candidate.is_pixels)
        print(
            f"whole run: first {first_s:.1f} s, second (features reused) {second_s:.1f} s, ratio "
            f"{second_s / first_s:.3f}"
        )


if __name__ == "__main__":
    main()
