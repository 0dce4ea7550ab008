"""End-to-end figures on Oxford Flowers-17 with default settings: extraction images/s, training time,
test accuracy. Prints one JSON line (and writes it to --json).

    .venv/bin/python benchmarks/flowers17_pipeline.py [--data ../shared/datasets/flowers17] [--work /tmp/f17]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import transferkit as tk


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "datasets" / "flowers17")
    ap.add_argument("--work", type=Path, default=Path("/tmp/transferkit-bench-f17"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
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
        "images": ex.n_images, "skipped": len(ex.skipped), "engine": engine,
        "extract_seconds": round(t_extract, 1), "images_per_second": round(ex.n_images / t_extract, 1),
        "train_seconds": round(t_train, 1), "best_C": tr.model.describe().get("C"),
        "test_accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4), "n_test": m["n_test"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    line = json.dumps(out)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")


if __name__ == "__main__":
    main()
