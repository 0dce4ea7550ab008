"""Single-process extraction vs the same extraction on Ray with 1 and 2 workers, side by side.

Runs on one machine: a local Ray cluster with as many CPUs as the machine (started once, outside the
timings; its start-up time is reported separately). Every Ray timing includes what a user waits for:
starting the worker actors, loading a backbone in each, the shards, and finishing the file (the same
working file and finish as the single-process run: Ray only computes the batches).
A tiny run (2 images per class) measures the fixed overhead separately.
Prints one JSON line per round and a summary with ratios against the single-process run of the same
round (the machine is shared and noisy, so compare ratios, not absolute figures).

    PYTHONPATH=src .venv/bin/python benchmarks/ray_extract.py [--data /work/shared/datasets/flowers17] \\
        [--rounds 2] [--shard-size 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

import transferkit as tk
from transferkit.engines import available_cpus


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = next(
        (p for p in (here.parent / "shared", here.parents[1] / "shared") if p.exists()), here.parent / "shared"
    )
    ap.add_argument("--data", type=Path, default=shared / "datasets" / "flowers17")
    ap.add_argument("--work", type=Path, default=Path("/tmp/transferkit-bench-ray"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)

    import ray

    cpus = available_cpus()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away local cluster; do not write ~/.ray/auth_token
    t0 = time.perf_counter()
    ray.init(
        num_cpus=cpus,
        object_store_memory=256 * 1024 * 1024,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    ray_init_s = time.perf_counter() - t0

    configs = {
        "single": {},
        "ray_1_worker": dict(ray="auto", ray_workers=1, ray_cpus_per_worker=cpus, ray_shard_size=args.shard_size),
        "ray_2_workers": dict(ray="auto", ray_workers=2, ray_cpus_per_worker=cpus / 2, ray_shard_size=args.shard_size),
    }
    # Fixed overhead: the same three ways on a tiny manifest (2 images per class), where the time is
    # almost all start-up (actors, backbone loads) rather than images.
    tiny = args.work / "tiny.csv"
    with open(tiny, "w") as fh:
        fh.write("path,label\n")
        for cls in sorted(p for p in args.data.iterdir() if p.is_dir()):
            for img in sorted(cls.iterdir())[:2]:
                fh.write(f"\"{img}\",\"{cls.name}\"\n")
    rounds = []
    for r in range(args.rounds):
        row = {}
        for name, kw in configs.items():
            t0 = time.perf_counter()
            tk.extract(tiny, args.work / f"tiny-{name}-{r}.h5", batch_size=args.batch_size, **kw)
            row[f"tiny_{name}"] = round(time.perf_counter() - t0, 1)
        for name in configs:
            row[f"tiny_{name}_overhead_s"] = round(row[f"tiny_{name}"] - row["tiny_single"], 1)
        for name, kw in configs.items():
            out = args.work / f"{name}-{r}.h5"
            t0 = time.perf_counter()
            res = tk.extract(args.data, out, batch_size=args.batch_size, **kw)
            row[name] = round(time.perf_counter() - t0, 1)
            row[f"{name}_rows"] = res.n_rows
        with tk.open_features(args.work / f"single-{r}.h5") as ref:
            ref_feats = ref.load()[0]
            for name in configs:
                if name != "single":
                    with tk.open_features(args.work / f"{name}-{r}.h5") as ff:
                        assert ff.paths == ref.paths and (ff.split == ref.split).all()
                        feats = ff.load()[0]
                        row[f"{name}_max_abs_diff"] = float(np.abs(feats - ref_feats).max())
                        same = np.array_equal(feats.view(np.uint8), ref_feats.view(np.uint8))
                        row[f"{name}_bit_identical"] = bool(same)
        for name in configs:
            row[f"{name}_ratio"] = round(row[name] / row["single"], 2)
        row["round"] = r + 1
        print(json.dumps(row), flush=True)
        rounds.append(row)
    ray.shutdown()

    n = rounds[0]["single_rows"]
    summary = {
        "images": n,
        "cpus": cpus,
        "shard_size": args.shard_size,
        "ray_init_seconds": round(ray_init_s, 1),
        "seconds": {name: [row[name] for row in rounds] for name in configs},
        "ratio_vs_single": {name: [row[f"{name}_ratio"] for row in rounds] for name in configs},
        "images_per_second": {name: [round(n / row[name], 1) for row in rounds] for name in configs},
        "fixed_overhead_seconds_vs_single": {
            name: [row[f"tiny_{name}_overhead_s"] for row in rounds] for name in configs
        },
        "max_abs_diff": max(row[k] for row in rounds for k in row if k.endswith("max_abs_diff")),
        "bit_identical": all(row[k] for row in rounds for k in row if k.endswith("bit_identical")),
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
