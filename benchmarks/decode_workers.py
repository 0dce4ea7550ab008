"""Decode + preprocess only (no model): worker threads against worker processes, side by side.

Threads share the arrays with the engine for free (Pillow releases the GIL while it decodes and
resizes); processes must send every 224x224x3 float32 array (602 KB) back through a pipe. The
variants take turns, ``--rounds`` times, on the same files.

    PYTHONPATH=src python benchmarks/decode_workers.py /work/shared/datasets/flowers17 --limit 400
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from transferkit.backbones import create_backbone
from transferkit.data import list_images
from transferkit.engines import iter_batches
from transferkit.engines.pipeline import _decode


def by_processes(paths, preprocess, workers):
    with ProcessPoolExecutor(workers) as pool:
        n = 0
        for _arr in pool.map(_decode, paths, [preprocess] * len(paths), chunksize=8):
            n += 1
        return n


def by_threads(paths, preprocess, workers):
    return sum(len(b.indices) for b in iter_batches(paths, preprocess, batch_size=32, workers=workers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    paths = list_images(args.data)[: args.limit]
    pre = create_backbone().preprocess
    variants = {"threads x1": (by_threads, 1), "threads x2": (by_threads, 2), "threads x4": (by_threads, 4),
                "processes x2": (by_processes, 2)}
    rates = {k: [] for k in variants}
    print(f"{len(paths)} images, cpus {len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.1f}")
    for _ in range(args.rounds):
        for k, (fn, w) in variants.items():
            t = time.perf_counter()
            n = fn(paths, pre, w)
            rates[k].append(n / (time.perf_counter() - t))
    base = statistics.median(rates["threads x1"])
    for k, r in rates.items():
        m = statistics.median(r)
        print(f"{k:14s} {m:7.1f} img/s (range {min(r):.1f}-{max(r):.1f}), {m / base:.2f}x threads x1, "
              f"{1000 / m:.2f} ms/img wall")


if __name__ == "__main__":
    main()
