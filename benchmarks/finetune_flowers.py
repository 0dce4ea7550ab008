"""Frozen pipeline vs `finetune` on (a subset of) Flowers-17: test accuracy on the same test images, and
seconds per epoch.

Makes a subset folder of symlinks (``--classes`` classes, ``--per-class`` images each, first by name),
then, all with defaults unless given:
  1. frozen: ``extract`` -> ``train`` (logistic regression, C by CV) -> ``evaluate MODEL features.h5`` and
     ``evaluate MODEL SUBSET`` (the images, through the backbone);
  2. fine-tuned: ``finetune SUBSET --features features.h5`` -> ``evaluate TUNED SUBSET``.
Both ``evaluate ... SUBSET`` runs score the same test images the same way (fp32, ONNX Runtime).

    PYTHONPATH=src nice -n 10 python benchmarks/finetune_flowers.py /work/shared/datasets/flowers17 \\
        --classes 17 --per-class 40 --epochs 4 --out /tmp/ft-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def subset(src: Path, dst: Path, classes: int, per_class: int) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    for cls in sorted(p for p in src.iterdir() if p.is_dir())[:classes]:
        (dst / cls.name).mkdir(parents=True)
        for f in sorted(cls.iterdir())[:per_class]:
            os.symlink(f.resolve(), dst / cls.name / f.name)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--classes", type=int, default=17)
    ap.add_argument("--per-class", type=int, default=80)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--unfreeze", default="2")
    ap.add_argument("--augment", default="standard")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--lr", type=float, default=None, help="head learning rate (default: finetune's)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/finetune-bench"))
    args = ap.parse_args()

    import transferkit as tk

    args.out.mkdir(parents=True, exist_ok=True)
    data = subset(args.data, args.out / "data", args.classes, args.per_class)
    t0 = time.perf_counter()
    ex = tk.extract(data, args.out / "features.h5", overwrite=True)
    tr = tk.train(ex.path, args.out / "frozen.safetensors")
    frozen_s = time.perf_counter() - t0
    frozen_on_file = tk.evaluate(tr.path, ex.path)["accuracy"]
    frozen_on_images = tk.evaluate(tr.path, data)["accuracy"]

    t0 = time.perf_counter()
    extra = {"lr": args.lr} if args.lr is not None else {}
    ft = tk.finetune(data, args.out / "tuned.safetensors", features=ex.path, epochs=args.epochs,
                     unfreeze=args.unfreeze, augment=args.augment, precision=args.precision, overwrite=True, **extra)
    tuned_s = time.perf_counter() - t0
    tuned_on_images = tk.evaluate(ft.path, data)
    out = {
        "subset": f"{args.classes} classes x {args.per_class} images", "n_test": tuned_on_images["n_test"],
        "frozen": {"accuracy_feature_file": frozen_on_file, "accuracy_images": frozen_on_images,
                   "seconds_extract_train": round(frozen_s, 1)},
        "finetuned": {"accuracy_images": tuned_on_images["accuracy"], "accuracy_in_loop": ft.test["accuracy"],
                      "probe_accuracy_in_loop": ft.probe_test["accuracy"], "best_epoch": ft.best_epoch,
                      "epochs_run": ft.epochs_run, "seconds_per_epoch": [round(s, 1) for s in ft.epoch_seconds],
                      "seconds_total": round(tuned_s, 1), "precision": ft.precision, "cached": ft.cache,
                      "history": [{k: round(v, 4) for k, v in h.items()} for h in ft.history]},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
