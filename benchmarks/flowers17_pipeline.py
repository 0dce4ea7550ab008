"""End-to-end figures on Oxford Flowers-17 with default settings: extraction images/s, training time,
test accuracy. Prints one JSON line (and writes it to --json).

    .venv/bin/python benchmarks/flowers17_pipeline.py [--data DIR] [--work /tmp/f17]

It needs Oxford Flowers-17 (https://www.robots.ox.ac.uk/~vgg/data/flowers/17/: 1,360 JPEGs, 80 per
class) sorted into one folder per class. Without --data it looks for ``shared/datasets/flowers17``
in the checkout and in every folder above it (so a clone next to a ``shared/`` folder finds it), and
in $TRANSFERKIT_FLOWERS17.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import transferkit as tk


def find_flowers17() -> Path | None:
    """$TRANSFERKIT_FLOWERS17, else shared/datasets/flowers17 in the checkout or any folder above it."""
    if os.environ.get("TRANSFERKIT_FLOWERS17"):
        return Path(os.environ["TRANSFERKIT_FLOWERS17"])
    for folder in Path(__file__).resolve().parents[1:]:
        candidate = folder / "shared" / "datasets" / "flowers17"
        if candidate.is_dir():
            return candidate
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=None, help="flowers17, one folder per class (default: found as described above)"
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/transferkit-bench-f17"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.data = args.data or find_flowers17()
    if args.data is None or not args.data.is_dir():
        sys.exit(
            f"error: flowers17 not found{f' at {args.data}' if args.data else ''}: pass --data DIR "
            "(Oxford Flowers-17 sorted into one folder per class; see this script's docstring)"
        )
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)

    t0 = time.perf_counter()
    ex = tk.extract(args.data, args.work / "f17.h5")
    t_extract = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr = tk.train(ex.path, args.work / "f17.safetensors")
    t_train = time.perf_counter() - t0
    m = tk.evaluate(tr.path, ex.path)
    with tk.open_features(ex.path) as ff:
        engine = ff.attrs.get("engine")
    out = {
        "images": ex.n_images,
        "skipped": len(ex.skipped),
        "engine": engine,
        "extract_seconds": round(t_extract, 1),
        "images_per_second": round(ex.n_images / t_extract, 1),
        "train_seconds": round(t_train, 1),
        "best_C": tr.model.describe().get("C"),
        "test_accuracy": round(m["accuracy"], 4),
        "macro_f1": round(m["macro_f1"], 4),
        "n_test": m["n_test"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    line = json.dumps(out)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")


if __name__ == "__main__":
    main()
