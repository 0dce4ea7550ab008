"""Out-of-core training: peak memory stays bounded by --max-memory on a file several times larger,
and streaming reaches the in-memory accuracy where both fit.

    PYTHONPATH=src python benchmarks/bench_out_of_core.py [--rows 150000] [--dim 512] [--budget 64MB]

Data: synthetic feature files with a documented structure (benchmarks/synthetic_features.py:
10 classes, low-rank-plus-noise, non-negative, class-sorted rows, 20 % test). Each training run
happens in a fresh subprocess that reports its peak RSS (ru_maxrss) and the RSS it had after
importing torch/transferkit and training the same head on 300 rows (to page in the code, which is
not data: libtorch alone maps hundreds of MB) (VmRSS, after which the kernel's high-water mark
is reset through /proc/self/clear_refs, so VmHWM at the end is the peak during training); the
difference is the memory training added.

1. big file (rows x dim float32, several times the budget): logreg, linear-svm and mlp streamed
   with --max-memory; the added peak RSS is compared with the budget and the file size.
2. small file (20,000 rows): each head in memory and streamed (budget forced small); test accuracy
   side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def child(path, head, budget, epochs):
    import numpy as np

    import transferkit as tk
    from transferkit.heads import make_head
    from transferkit.heads.streaming import ArraySource, FileSource

    with tk.open_features(path) as ff:  # warm-up: page in the code paths (torch, MKL, h5py) on 300 rows
        X, y, _ = next(FileSource(ff, "train", chunk_rows=320).chunks(rng=np.random.default_rng(0)))
    warm = {"Cs": (1.0,), "max_epochs": 1} if head != "mlp" else {"max_epochs": 1, "validation_fraction": 0.2}
    make_head(head, cv=2, **warm).fit_stream(ArraySource(X, y, chunk_rows=100, block_rows=4))
    make_head(head, cv=2, **warm).fit(X, y)
    del X, y
    base = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (VmHWM) to the current RSS
    params = {"max_epochs": epochs}
    if head != "mlp":
        params["Cs"] = (0.01, 1.0, 100.0)
    t = time.perf_counter()
    r = tk.train(path, None, head=head, head_params=params, max_memory=budget)
    peak = _rss("VmHWM")
    print(json.dumps({"head": head, "out_of_core": r.model.training["out_of_core"], "seconds": time.perf_counter() - t,
                      "base_rss": base, "peak_rss": peak, "accuracy": r.metrics["accuracy"],
                      "chunk_rows": getattr(r.model.head, "sgd_", {}).get("chunk_rows")}))


def run(path, head, budget, epochs):
    out = subprocess.run([sys.executable, __file__, "--child", str(path), head, str(budget), str(epochs)],
                         capture_output=True, text=True, env={**os.environ})
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3], None if sys.argv[4] == "None" else sys.argv[4], int(sys.argv[5]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=150_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--budget", default="64MB")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    from synthetic_features import write_synthetic

    from transferkit.store.budget import parse_size

    big = args.dir / f"ooc_big_{args.rows}x{args.dim}.h5"
    small = args.dir / f"ooc_small_20000x{args.dim}.h5"
    for p, n in ((big, args.rows), (small, 20_000)):
        if not p.exists():
            write_synthetic(p, n, args.dim, seed=1)
    train_bytes = int(args.rows * 0.8) * args.dim * 4
    budget = parse_size(args.budget)
    print(f"big file: {args.rows} x {args.dim} float32, train split {train_bytes / 1e6:.0f} MB = "
          f"{train_bytes / budget:.1f}x the {args.budget} budget")
    for head in ("logreg", "linear-svm", "mlp"):
        r = run(big, head, args.budget, args.epochs)
        added = r["peak_rss"] - r["base_rss"]
        print(
            f"  {head:10s} streamed={r['out_of_core']} chunk_rows={r['chunk_rows']} {r['seconds']:.0f} s  "
            f"peak RSS added {added / 1e6:.0f} MB (budget {budget / 1e6:.0f} MB, train split {train_bytes / 1e6:.0f} "
            "MB; "
            f"process total {r['peak_rss'] / 1e6:.0f} MB of which {r['base_rss'] / 1e6:.0f} MB before training)  "
            f"test accuracy {r['accuracy']:.4f}"
        )
    print("small file: 20000 x", args.dim, "— in memory vs streamed (--max-memory 4MB)")
    for head in ("logreg", "linear-svm", "mlp"):
        a = run(small, head, None, args.epochs)
        b = run(small, head, "4MB", args.epochs)
        print(
            f"  {head:10s} in memory {a['accuracy']:.4f} ({a['seconds']:.0f} s, "
            f"+{(a['peak_rss'] - a['base_rss']) / 1e6:.0f} MB)  "
            f"streamed {b['accuracy']:.4f} ({b['seconds']:.0f} s, +{(b['peak_rss'] - b['base_rss']) / 1e6:.0f} MB)"
        )


if __name__ == "__main__":
    main()
