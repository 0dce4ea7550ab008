"""Frozen pipeline vs `finetune`, both with defaults, on Flowers-17 arranged as train/ + valid/ folders
(valid/ is then the test split): test accuracy on the same test photos, wall and CPU seconds.

Makes the layout with symlinks: per class, ``--train`` images in train/ and ``--valid`` in valid/, drawn
with ``--split-seed`` (several seeds: 340 test photos make one photo 0.3 point). Then:
  1. frozen: ``extract`` -> ``train`` (logistic regression, scaling and C by CV) -> ``evaluate MODEL DATA``;
  2. fine-tuned: ``finetune DATA`` (defaults, as a user runs it) -> ``evaluate TUNED DATA``.
Both ``evaluate MODEL DATA`` runs score the same test photos the same way (fp32, through the model's backbone).
Extra ``finetune`` settings as JSON with ``--finetune '{"unfreeze": 4}'``.

    PYTHONPATH=src python benchmarks/finetune_flowers.py /work/shared/datasets/flowers17 \\
        --train 60 --valid 20 --split-seed 0 --out /tmp/ft-bench
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import time
from pathlib import Path


def split_layout(src: Path, dst: Path, n_train: int, n_valid: int, seed: int) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    rng = random.Random(seed)
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        rng.shuffle(files)
        for part, chosen in (("train", files[:n_train]), ("valid", files[n_train : n_train + n_valid])):
            (dst / part / cls.name).mkdir(parents=True)
            for f in chosen:
                os.symlink(f.resolve(), dst / part / cls.name / f.name)
    return dst


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timed(fn):
    w, c = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, round(time.perf_counter() - w, 1), round(cpu_seconds() - c, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--train", type=int, default=60, help="train photos per class")
    ap.add_argument("--valid", type=int, default=20, help="valid (test) photos per class")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--finetune", default="{}", help="extra finetune settings (JSON)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/finetune-bench"))
    args = ap.parse_args()

    import transferkit as tk

    args.out.mkdir(parents=True, exist_ok=True)
    data = split_layout(args.data, args.out / "data", args.train, args.valid, args.split_seed)
    ex, ex_wall, ex_cpu = timed(lambda: tk.extract(data, args.out / "features.h5", overwrite=True))
    tr, tr_wall, tr_cpu = timed(lambda: tk.train(ex.path, args.out / "frozen.safetensors", overwrite=True))
    frozen = tk.evaluate(tr.path, data)
    extra = json.loads(args.finetune)
    ft, ft_wall, ft_cpu = timed(lambda: tk.finetune(data, args.out / "tuned.safetensors", overwrite=True, **extra))
    tuned = tk.evaluate(ft.path, data)
    out = {
        "layout": f"train/ {args.train} + valid/ {args.valid} per class, split seed {args.split_seed}",
        "n_test": tuned["n_test"], "finetune_settings": extra,
        "frozen": {"accuracy": frozen["accuracy"], "wall_s": round(ex_wall + tr_wall, 1),
                   "cpu_s": round(ex_cpu + tr_cpu, 1)},
        "finetuned": {"accuracy": tuned["accuracy"], "wall_s": ft_wall, "cpu_s": ft_cpu,
                      "linear_probe_accuracy": ft.probe_test.get("accuracy"),
                      "tuned_head_accuracy": ft.tuned_head_test.get("accuracy"), "refit": ft.refit,
                      "best_epoch": ft.best_epoch, "val_best_epoch": ft.model.training.get("val_best_epoch"),
                      "choice": ft.model.training.get("choice"), "tta": ft.model.backbone.get("tta"),
                      "epochs_run": ft.epochs_run, "planned_epochs": ft.planned_epochs,
                      "seconds_per_epoch": [round(s, 1) for s in ft.epoch_seconds],
                      "history": [{k: round(v, 4) for k, v in h.items()} for h in ft.history]},
        "gain_points": round(100 * (tuned["accuracy"] - frozen["accuracy"]), 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
