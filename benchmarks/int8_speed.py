"""`extract --precision int8` against fp32, end to end (decoding included), side by side, with accuracy.

Each extraction is its own subprocess (`transferkit extract DATA --precision P`, all other options at
their defaults); fp32 and int8 alternate (the order swaps every round) so both see the same load on a
shared machine. A first run of each (not counted) fills the caches: the fp32 graph and the int8 graph
(calibrated on ~300 of the images). Reported: images/s per run as `extract` prints it (decode + network
+ writing, start-up excluded), the ratio int8/fp32 of each round and of the medians, the CPU time per
image of each whole process (start-up included; much less disturbed by other jobs), and the test
accuracy of `transferkit train` (logistic regression, defaults) on each file.

    PYTHONPATH=src python benchmarks/int8_speed.py /work/shared/datasets/flowers17 --rounds 5
    PYTHONPATH=src python benchmarks/int8_speed.py synthetic --rounds 5     # generated shapes, 3 x 150 JPEGs
    ... --layer pre_logits --layer blocks.5 --layer blocks.4               # extra extract options
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def synthetic(root: Path, per_class: int = 150, size: int = 320) -> Path:
    """Three classes of generated shapes (the test suite's drawings), as JPEGs of ``size`` px."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import CLASSES, draw

    rng = np.random.default_rng(0)
    for cls, kind in CLASSES.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(kind, rng, size).save(root / cls / f"{i:04d}.jpg", quality=90)
    return root


def run(data: str, out: Path, options: list[str]) -> tuple[float, float, int]:
    """`transferkit extract DATA -o OUT --overwrite OPTIONS` in a subprocess: (images/s as printed, CPU
    seconds of the process, images)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "transferkit", "extract", data, "-o", str(out), "--overwrite",
                           *options], capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"extract {' '.join(options)} failed:\n{proc.stdout}\n{proc.stderr}")
    m = re.search(r"(\d+) images in [\d.]+ s \(([\d.]+) img/s\)", " ".join(proc.stdout.split()))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(m.group(2)), cpu, int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", help="a dataset folder, or 'synthetic'")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layer", action="append", default=[])
    args = ap.parse_args()
    extra = [a for name in args.layer for a in ("--layer", name)]
    import transferkit as tk

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = str(synthetic(tmp / "synthetic")) if args.data == "synthetic" else args.data
        files = {p: tmp / f"{p}.h5" for p in ("fp32", "int8")}
        t0 = time.perf_counter()
        for p in files:  # warm-up: caches filled, not counted
            run(data, files[p], ["--precision", p, *extra])
        print(f"warm-up (graphs built or found): {time.perf_counter() - t0:.0f} s", flush=True)
        speed = {p: [] for p in files}
        cpu = {p: [] for p in files}
        ratios = []
        for r in range(args.rounds):
            order = ("fp32", "int8") if r % 2 == 0 else ("int8", "fp32")
            got = {}
            for p in order:
                ips, secs, n = run(data, files[p], ["--precision", p, *extra])
                speed[p].append(ips)
                cpu[p].append(1000 * secs / n)
                got[p] = ips
            ratios.append(got["int8"] / got["fp32"])
            print(f"round {r + 1}: fp32 {got['fp32']:.1f} img/s, int8 {got['int8']:.1f} img/s, "
                  f"ratio {ratios[-1]:.2f}", flush=True)
        med = statistics.median
        acc = {}
        for p, path in files.items():
            acc[p] = tk.train(path, None).metrics["accuracy"]
        with tk.open_features(files["int8"]) as ff:
            cosine = float(ff.attrs["int8_cosine_mean"])
        print(f"\n{data}{' ' + ' '.join(extra) if extra else ''}, {args.rounds} rounds")
        for p in files:
            print(f"  {p}: median {med(speed[p]):.1f} img/s (runs {', '.join(f'{v:.0f}' for v in speed[p])}); "
                  f"CPU {med(cpu[p]):.2f} ms/img (whole process); test accuracy {acc[p]:.4f}")
        print(f"  int8/fp32: ratio of medians {med(speed['int8']) / med(speed['fp32']):.2f}, per round "
              f"median {med(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}); CPU per image "
              f"{med(cpu['fp32']) / med(cpu['int8']):.2f}x less; accuracy {100 * (acc['int8'] - acc['fp32']):+.2f} "
              f"points; int8 mean cosine to fp32 on its calibration images {cosine:.4f}")


if __name__ == "__main__":
    main()
