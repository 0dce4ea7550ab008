"""End to end on a folder of class sub-folders: a tutorial-style reference against `transferkit extract`.

The reference is written the way the popular transfer-learning tutorials do it: for each image,
open with Pillow, resize to 224x224, turn into an array; then one batch at a time through the same
backbone (EfficientNet-Lite0, same weights) in eager fp32 PyTorch, no prefetch. `transferkit extract`
runs with its defaults. Each run is its own subprocess (so no process-wide tuning leaks from one into
the other) and the two alternate, so both see the same load on a shared machine; we report every run,
the median images/s of each and the ratio of medians, plus the CPU time per image of each whole
process (user + system, start-up included), which the load of other jobs disturbs much less.

    PYTHONPATH=src python benchmarks/e2e_flowers.py /work/shared/datasets/flowers17 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = r'''
import sys, time, numpy as np, torch
from pathlib import Path
from PIL import Image
from transferkit.backbones import create_backbone
root, limit = Path(sys.argv[1]), int(sys.argv[2])
files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit or None]
t0 = time.perf_counter()
model = create_backbone().features.eval()  # same network and weights as transferkit's default
feats, batch = [], []
def run(batch):
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)
    with torch.no_grad():
        feats.append(model(x).numpy())
start = time.perf_counter()
for p in files:
    img = Image.open(p).convert("RGB").resize((224, 224))
    batch.append(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)  # Lite0: mean = std = 0.5
    if len(batch) == 32:
        run(batch); batch = []
if batch:
    run(batch)
end = time.perf_counter()
print(len(files), end - start, end - t0)
'''


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_reference(data: Path, limit: int) -> dict:
    t, c = time.perf_counter(), _child_cpu()
    out = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(data), str(limit)], capture_output=True, text=True, check=True
    )
    n, loop_s, total_s = out.stdout.split()
    return {
        "images": int(n),
        "seconds": float(loop_s),
        "process_seconds": time.perf_counter() - t,
        "cpu_seconds": _child_cpu() - c,
    }


def run_transferkit(data: Path, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out_h5 = Path(tmp) / "f.h5"
        code = (
            "import sys, time, json, transferkit as tk; a = json.loads(sys.argv[2]);"
            "r = tk.extract(sys.argv[1], sys.argv[3], **a); import h5py;"
            "print(json.dumps({'images': r.n_images, 'seconds': r.seconds,"
            " 'engine': h5py.File(sys.argv[3])['/'].attrs['engine']}))"
        )
        kwargs = {}
        for item in extra:
            k, v = item.split("=", 1)
            kwargs[k] = int(v) if v.isdigit() else v
        t, c = time.perf_counter(), _child_cpu()
        out = subprocess.run(
            [sys.executable, "-c", code, str(data), json.dumps(kwargs), str(out_h5)],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res["process_seconds"] = time.perf_counter() - t
        res["cpu_seconds"] = _child_cpu() - c
        return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="reference: first N files only (0: all)")
    ap.add_argument("--set", nargs="*", default=[], help="extra tk.extract arguments, e.g. engine=torch")
    args = ap.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
    tk_rates, ref_rates = [], []
    for i in range(args.repeats):
        tk = run_transferkit(args.data, args.set)
        ref = run_reference(args.data, args.limit)
        tk_rate, ref_rate = tk["images"] / tk["seconds"], ref["images"] / ref["seconds"]
        tk_rates.append(tk_rate)
        ref_rates.append(ref_rate)
        print(
            f"run {i + 1}: transferkit ({tk['engine']}) {tk_rate:6.1f} img/s "
            f"[{tk['images']} in {tk['seconds']:.1f} s, process {tk['process_seconds']:.1f} s, "
            f"CPU {1000 * tk['cpu_seconds'] / tk['images']:.1f} ms/img]   "
            f"reference {ref_rate:6.1f} img/s [{ref['images']} in {ref['seconds']:.1f} s, "
            f"CPU {1000 * ref['cpu_seconds'] / ref['images']:.1f} ms/img]   "
            f"ratio {tk_rate / ref_rate:.2f}x   load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    ratios = [a / b for a, b in zip(tk_rates, ref_rates)]
    print(
        f"median: transferkit {statistics.median(tk_rates):.1f} img/s (range {min(tk_rates):.1f}-{max(tk_rates):.1f}), "
        f"reference {statistics.median(ref_rates):.1f} img/s (range {min(ref_rates):.1f}-{max(ref_rates):.1f}), "
        f"ratio per run {min(ratios):.2f}-{max(ratios):.2f}x, ratio of medians "
        f"{statistics.median(tk_rates) / statistics.median(ref_rates):.2f}x"
    )


if __name__ == "__main__":
    main()
