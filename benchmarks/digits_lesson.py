"""The digits lesson over several fold seeds: raw 8x8 pixels vs EfficientNet-Lite0 ImageNet features on
scikit-learn's digits 6 vs 8 (the images `transferkit demo` writes), 10-fold CV, paired t-test.

    PYTHONPATH=src python benchmarks/digits_lesson.py --out /tmp/digits-lesson --seeds 42 0 1 2 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transferkit.comparison.run import compare
from transferkit.demo import write_digits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("digits-lesson"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1, 2, 3])
    a = ap.parse_args()
    root = a.out / "digits"
    if not root.exists():
        write_digits(root)
    for seed in a.seeds:
        r = compare(root, ["efficientnet_lite0"], baseline="pixels:8", folds=10, seed=seed, cache_dir=a.out / "cache")
        raw, feat = r["raw pixels 8x8"], r["efficientnet_lite0"]
        p = raw.p_vs_best if raw.p_vs_best is not None else feat.p_vs_best
        print(f"seed {seed}: raw pixels {raw.accuracy_mean:.3f}, Lite0 features {feat.accuracy_mean:.3f}, p={p:.2f} "
              f"({r.n_images} images; fit {raw.train_seconds:.2f} s and {feat.train_seconds:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
