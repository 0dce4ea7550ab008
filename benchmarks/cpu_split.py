"""Where the CPU time of `transferkit extract` goes, per image: decode+preprocess vs the engine.

CPU time (user + system of this process) instead of wall time, so the figures hold on a machine
shared with other jobs: on an idle machine with C cores, images/s <= C * 1000 / (ms of CPU per image).

    PYTHONPATH=src python benchmarks/cpu_split.py /work/shared/datasets/flowers17 --images 256
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    from transferkit.backbones import create_backbone
    from transferkit.data import list_images
    from transferkit.engines import create_engine, iter_batches

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--engine", default="auto")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    paths = list_images(args.data)[:: max(1, len(list_images(args.data)) // args.images)][: args.images]
    bb = create_backbone()
    engine = create_engine(bb, engine=args.engine, device="cpu")
    c = cpu()
    arrays = np.concatenate([b.arrays for b in iter_batches(paths, bb.preprocess, batch_size=32, workers=1)])
    decode_ms = 1000 * (cpu() - c) / len(paths)
    engine(arrays[:32])  # warm-up
    c = cpu()
    for i in range(0, len(arrays), 32):
        engine(arrays[i : i + 32])
    engine_ms = 1000 * (cpu() - c) / len(arrays)
    total = decode_ms + engine_ms
    n = len(os.sched_getaffinity(0))
    print(f"{len(paths)} images, engine {engine.name}, load {os.getloadavg()[0]:.1f}")
    print(f"decode+preprocess {decode_ms:5.1f} ms CPU/img ({100 * decode_ms / total:.0f} %)")
    print(f"engine            {engine_ms:5.1f} ms CPU/img ({100 * engine_ms / total:.0f} %)")
    print(f"bound on {n} idle cores: {n * 1000 / total:.0f} img/s (decode alone {n * 1000 / decode_ms:.0f}, "
          f"engine alone {n * 1000 / engine_ms:.0f})")


if __name__ == "__main__":
    main()
