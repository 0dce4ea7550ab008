"""Cost of the feature-file checksums (store/checksums.py): writing them when a file is finished and
checking them in `inspect --verify`, against one plain read of the same data.

    PYTHONPATH=src python benchmarks/checksums.py --rows 20000 --dim 1280 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from transferkit.store import checksums
from transferkit.store.writer import FeatureWriter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        rng = np.random.default_rng(0)
        w = FeatureWriter(path, feature_dim=a.dim, label_names=["a", "b"], attrs={}, buffer_rows=4096)
        for lo in range(0, a.rows, 4096):
            n = min(4096, a.rows - lo)
            w.add(rng.standard_normal((n, a.dim), dtype=np.float32), np.zeros(n, int),
                  [f"class/img_{i:07d}.jpg" for i in range(lo, lo + n)], np.zeros(n, int))
        w.close(complete=True)
        mb = path.stat().st_size / 1e6
        print(f"{a.rows} rows x {a.dim} float32: {mb:.0f} MB file")
        for r in range(a.rounds):  # alternate: plain read, write checksums, check checksums
            with h5py.File(path, "r") as f:
                t = time.perf_counter()
                for name in ("features", "labels", "paths", "split"):
                    f[name][()]
                read = time.perf_counter() - t
            with h5py.File(path, "r+") as f:
                t = time.perf_counter()
                checksums.write_checksums(f)
                write = time.perf_counter() - t
            with h5py.File(path, "r") as f:
                t = time.perf_counter()
                result = checksums.check_checksums(f)
                check = time.perf_counter() - t
            assert not result.bad
            print(f"round {r + 1}: plain read {read:.2f} s, write checksums {write:.2f} s, check {check:.2f} s "
                  f"({result.checked} blocks; {mb / check:.0f} MB/s)")


if __name__ == "__main__":
    main()
