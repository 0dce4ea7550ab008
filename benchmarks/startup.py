"""Start-up cost of the CLI: what a run pays before and besides its images.

Every command is its own process, timed from launch to exit (wall clock) with its own peak RSS
(``os.wait4``). Each pair alternates the reference and the contender in the same job, so both see the
same machine load; we report medians and the ratio.

  extract, small  : `transferkit extract` of a small folder (--limit images per class, 2 classes)
                    with the ONNX cache already warm, index off (TRANSFERKIT_ONNX_INDEX=0: the network is
                    built in PyTorch to find the cached graph, as before the index) vs index on
  extract, all    : the same on the whole dataset (flowers17: 1,360 JPEGs)
  predict 1 image : `transferkit predict model.safetensors one.jpg`, index off vs on
  inspect         : `transferkit inspect features.h5` (no pair: `import transferkit` no longer loads torch)

    PYTHONPATH=src python benchmarks/startup.py /work/shared/datasets/flowers17 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024


def small_copy(root: Path, dest: Path, per_class: int) -> Path:
    classes = sorted(p for p in root.iterdir() if p.is_dir())[:2]
    for c in classes:
        (dest / c.name).mkdir(parents=True)
        for f in sorted(c.iterdir())[:per_class]:
            shutil.copy(f, dest / c.name / f.name)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=16, help="images per class of the small extraction")
    ap.add_argument("--skip-full", action="store_true", help="leave out the whole-dataset extraction")
    a = ap.parse_args()
    tk = [sys.executable, "-m", "transferkit"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "TRANSFERKIT_CACHE_DIR": str(tmp / "cache")}
        off, on = {**env, "TRANSFERKIT_ONNX_INDEX": "0"}, env
        small = small_copy(a.data, tmp / "small", a.limit)
        # warm-up: export the graph, record the index, train a model for predict
        subprocess.run([*tk, "extract", small, "-o", tmp / "w.h5"], env=on, check=True, capture_output=True)
        subprocess.run(
            [*tk, "train", tmp / "w.h5", "-o", tmp / "m.safetensors"], env=on, check=True, capture_output=True
        )
        one = next(iter(sorted(small.rglob("*.jpg"))))
        subprocess.run([*tk, "predict", tmp / "m.safetensors", one], env=on, check=True, capture_output=True)
        cases = [
            ("extract, small", lambda i: [*tk, "extract", small, "-o", tmp / f"s{i}.h5"]),
            ("predict 1 image", lambda i: [*tk, "predict", tmp / "m.safetensors", one]),
        ]
        if not a.skip_full:
            cases.append(("extract, all", lambda i: [*tk, "extract", a.data, "-o", tmp / f"f{i}.h5"]))
        print(f"{'case':18} {'index off s':>11} {'index on s':>10} {'ratio':>6} {'off MB':>7} {'on MB':>6}")
        for name, cmd in cases:
            runs = {"off": [], "on": []}
            for r in range(a.repeats):
                for label, e in (("off", off), ("on", on)):
                    runs[label].append(timed([str(x) for x in cmd(f"{label}{r}")], e))
            m = {k: (statistics.median(w for w, _ in v), max(rss for _, rss in v)) for k, v in runs.items()}
            print(
                f"{name:18} {m['off'][0]:11.2f} {m['on'][0]:10.2f} {m['off'][0] / m['on'][0]:6.1f}"
                f" {m['off'][1]:7.0f} {m['on'][1]:6.0f}",
                flush=True,
            )
        walls = [timed([*tk, "inspect", str(tmp / "w.h5")], env) for _ in range(a.repeats)]
        print(f"inspect: {statistics.median(w for w, _ in walls):.2f} s, {max(r for _, r in walls):.0f} MB")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
