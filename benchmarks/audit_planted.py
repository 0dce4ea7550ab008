"""Plant label noise and duplicates in a real photo folder, extract, audit, and measure what is found.

Builds a copy of DATA (a folder per class) under OUT with symlinks: FLIP of the photos are linked
into another (random) class folder, i.e. their label is flipped; DUPS other photos are copied a second
time under a new name in their own class folder (a pure duplicate pair; a copy, not a link, because
discovery keeps one of two links to the same file). Then `transferkit extract`,
`transferkit audit --csv --json`, `train` and
`evaluate --json` run as a user would run them, and the script reports:

- recall of the flipped photos among the top 10 % of the ranked label findings (10 % of all images:
  the review budget) and among all label findings;
- how many planted duplicate pairs were found (as a `duplicate` row with both paths);
- whether evaluate's JSON has `ece`.

    python benchmarks/audit_planted.py /work/shared/datasets/flowers17 --out /tmp/planted
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def build(data: Path, out: Path, flip: float, dups: int, seed: int):
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    photos = [(c, p) for c in classes for p in sorted((data / c).iterdir()) if p.is_file()]
    root = out / "photos"
    if root.exists():
        raise SystemExit(f"{root} exists; pass a fresh --out")
    for c in classes:
        (root / c).mkdir(parents=True)
    flipped_idx = set(rng.choice(len(photos), int(round(flip * len(photos))), replace=False).tolist())
    flipped, planted = set(), []
    for n, (c, p) in enumerate(photos):
        target = c
        if n in flipped_idx:
            target = classes[(classes.index(c) + int(rng.integers(1, len(classes)))) % len(classes)]
            flipped.add(f"{target}/{p.name}")
        os.symlink(p.resolve(), root / target / p.name)
    rest = [n for n in range(len(photos)) if n not in flipped_idx]
    for n in rng.choice(rest, dups, replace=False):
        c, p = photos[n]
        copy = root / c / f"copy of {p.name}"
        shutil.copyfile(p, copy)  # a real copy: discovery keeps one of two links to the same file
        planted.append((f"{c}/{p.name}", f"{c}/copy of {p.name}"))
    return root, flipped, planted, len(photos) + dups


def tk(*args) -> str:
    proc = subprocess.run([sys.executable, "-m", "transferkit", *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"transferkit {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--dups", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", default="self-confidence")
    args = ap.parse_args()
    root, flipped, planted, n = build(args.data, args.out, args.flip, args.dups, args.seed)
    feats, model = args.out / "features.h5", args.out / "model.safetensors"
    t = time.perf_counter()
    tk("extract", root, "-o", feats)
    t_extract = time.perf_counter() - t
    t = time.perf_counter()
    tk("audit", feats, "--csv", args.out / "findings.csv", "--html", args.out / "audit.html", "--score", args.score)
    t_audit = time.perf_counter() - t
    with open(args.out / "findings.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    labels = [r["path"] for r in rows if r["kind"] == "label_issue"]
    budget = int(0.10 * n)
    top = set(labels[:budget])
    pairs = {frozenset((r["path"], r["other_path"])) for r in rows if r["kind"] == "duplicate"}
    found = sum(frozenset(p) in pairs for p in planted)
    tk("train", feats, "-o", model)
    tk("evaluate", model, feats, "--json", args.out / "metrics.json")
    metrics = json.loads((args.out / "metrics.json").read_text())
    result = {
        "images": n,
        "flipped": len(flipped),
        "planted_pairs": len(planted),
        "label_findings": len(labels),
        "budget_rows": budget,
        "recall_top10pct": len(flipped & top) / len(flipped),
        "recall_all_findings": len(flipped & set(labels)) / len(flipped),
        "precision_top_flipped_count": len(flipped & set(labels[: len(flipped)])) / len(flipped),
        "planted_pairs_found": found,
        "duplicate_rows": sum(r["kind"] == "duplicate" for r in rows),
        "ece_in_evaluate_json": "ece" in metrics,
        "ece": metrics.get("ece"),
        "test_accuracy": metrics["accuracy"],
        "seconds": {"extract": round(t_extract, 1), "audit": round(t_audit, 1)},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
