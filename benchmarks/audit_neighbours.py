"""Time and memory of the audit's exact blockwise nearest neighbours (k = 5 and all pairs >= 0.98).

Each size runs in a fresh process (peak RSS is per process). Reports wall and CPU seconds: on a
busy machine the CPU seconds / 2 estimate the wall time on 2 idle cores (the matrix products keep
both cores busy). Rows are synthetic pooled-CNN-like
vectors (non-negative, low rank plus noise, 1,280-d) with 1 % planted exact duplicates, so the pair
search has something to find.

    python benchmarks/audit_neighbours.py --rows 10000 30000 100000 [--dim 1280] [--budget 256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def one(n: int, dim: int, budget_mb: int, threads: str) -> dict:
    from transferkit.audit.neighbours import self_neighbours, unit_rows

    rng = np.random.default_rng(0)
    M = rng.standard_normal((32, dim)).astype(np.float32) / np.sqrt(32)
    X = np.empty((n, dim), np.float32)
    for s in range(0, n, 10000):
        z = rng.standard_normal((min(10000, n - s), 32)).astype(np.float32)
        X[s : s + len(z)] = np.maximum(z @ M + 0.3 * rng.standard_normal((len(z), dim)).astype(np.float32), 0)
    dup = rng.choice(n, n // 100, replace=False)
    X[dup[: len(dup) // 2]] = X[dup[len(dup) // 2 : 2 * (len(dup) // 2)]]
    U = unit_rows(X)
    del X
    load = os.getloadavg()[0]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t, cpu = time.perf_counter(), time.process_time()
    nb = self_neighbours(U, k=5, threshold=0.98, budget=budget_mb << 20)
    sec, cpu = time.perf_counter() - t, time.process_time() - cpu
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rows": n,
        "dim": dim,
        "budget_MB": budget_mb,
        "threads": threads,
        "seconds": round(sec, 1),
        "cpu_seconds": round(cpu, 1),
        "load_before": round(load, 1),
        "rows_MB": round(U.nbytes / 2**20),
        "peak_rss_MB": round(rss1 / 1024),
        "extra_rss_during_search_MB": round((rss1 - rss0) / 1024),
        "pairs": int(len(nb.pairs)),
        "planted_pairs": len(dup) // 2,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[10000, 30000, 100000])
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--budget", type=int, default=256, help="MB of block work space")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.dim, args.budget, os.environ.get("OMP_NUM_THREADS", "default"))))
        return
    for n in args.rows:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--dim", str(args.dim), "--budget", str(args.budget)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
