"""Peak memory and time of `export-features` per format, for two file sizes under one budget.

Each export runs in a fresh subprocess; "peak" is its VmHWM (its own peak RSS; ru_maxrss would include
this parent's, carried across fork + exec). The baseline process does the same
imports (numpy, h5py, pyarrow, transferkit), opens the file and reads one budget-sized chunk. Bounded
memory shows as the same peak for the small and the large file.

    python benchmarks/export_memory.py [--budget 8MB] [--rows 3000 12000] [--dim 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_export_features import MEASURE, write_features  # noqa: E402 - the same file writer and probe as the test


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="8MB")
    ap.add_argument("--rows", type=int, nargs="+", default=[3000, 12000])
    ap.add_argument("--dim", type=int, default=2000)
    ap.add_argument("--formats", nargs="+", default=["npy", "npz", "parquet", "csv"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="export-memory-"))

    def run(src, out):
        start = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-c", MEASURE, str(src), str(out), args.budget], capture_output=True, text=True
        )
        if p.returncode:
            raise SystemExit(p.stderr)
        return int(p.stdout.split()[-1]) / 1e6, time.perf_counter() - start

    print(f"budget {args.budget}; peak RSS of the whole process (MB), wall time including ~1-2 s of imports")
    print("| rows x dim | file MB | baseline | " + " | ".join(args.formats) + " |")
    print("|---|---|---|" + "---|" * len(args.formats))
    for n in args.rows:
        src = write_features(tmp / f"f{n}.h5", n=n, d=args.dim, block=1000)
        base, _ = run(src, "-")
        cells = []
        for fmt in args.formats:
            peak, secs = run(src, tmp / f"out{n}.{fmt}")
            cells.append(f"{peak:.0f} MB, {secs:.1f} s")
            for f in tmp.glob(f"out{n}.*"):
                f.unlink()
        print(f"| {n} x {args.dim} | {n * args.dim * 4 / 1e6:.0f} | {base:.0f} MB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
