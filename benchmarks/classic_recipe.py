"""The classic recipe against `transferkit train`, as whole processes, side by side.

    PYTHONPATH=src python benchmarks/classic_recipe.py [--rounds 3] [--cases flowers17,many,three,wide]
        [--flowers /work/data/flowers17_lite0.h5] [--workdir /tmp/classic_recipe] [--blas-threads 1]

The classic recipe is the one of the Keras transfer-learning tutorial: the feature vectors as they
are, ``GridSearchCV(LogisticRegression(), {"C": [0.1, 1, 10, 100, 1000, 10000]}, cv=3)``, then the
test accuracy. It runs as its own process (``python classic_recipe.py --recipe FILE``: h5py, NumPy and
scikit-learn, nothing else) and so does ``python -m transferkit train FILE -o MODEL`` with all its
defaults; the two alternate, ``--rounds`` times per case, so that drift on a shared machine hits both
alike. Both run with the BLAS libraries' default threads (all cores), as a user runs them;
``--blas-threads 1`` holds both processes' BLAS to one thread instead (`train` always holds its own to
one thread and runs its parallel work in Python threads): on a machine shared with other jobs a pool
of spinning BLAS threads slows the recipe 4-25x, which flatters `train`, so the CPU time (user +
system, from ``wait4``) is reported too: with one BLAS thread it measures the work each side does,
whatever the load. Reported per case: test accuracy, wall time, CPU time and peak RSS of each process
(``wait4``), the load average, and the ratios recipe / train (medians over rounds; the spread is the
min-max of the per-round ratios). A case may also be the path of a feature file.

Cases:

* ``flowers17``: EfficientNet-Lite0 pooled features (1,280-d) of the flowers17 photos, 1,020 train /
  340 test rows (made by ``transferkit extract``; path given by ``--flowers``).
* ``many``: synthetic features shaped like pooled Lite0 features of a 101-class photo set: 8,677 rows
  (6,505 train / 2,172 test) x 1,280, 100 classes; non-negative and heavy-tailed (the mean over 16
  positions of ReLU6 activations, per-channel gains, a per-image contrast), classes overlapping so
  that a linear model scores about 0.9-0.95 (see :func:`pooled_like`).
* ``three``: the same kind of synthetic pooled features, 3 classes, 2,250 train / 750 test rows (the
  shape of the issue's 3-class photo set).
* ``wide``: synthetic post-activation maps flattened (1,280 channels x 7 x 7 = 62,720-d), 3 classes,
  2,250 train / 750 test rows, like ``--layer forward_features --pool flatten`` (see :func:`maps_like`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GRID = [0.1, 1, 10, 100, 1000, 10000]


def recipe(path: str) -> None:
    """The classic recipe, run in its own process; prints the test accuracy and the chosen C as JSON."""
    import warnings

    import h5py
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    warnings.filterwarnings("ignore")  # lbfgs "failed to converge" at large C, as in the tutorial
    with h5py.File(path, "r") as f:
        X, y, split = f["features"][:], f["labels"][:], f["split"][:]
    search = GridSearchCV(LogisticRegression(), {"C": GRID}, cv=3)
    search.fit(X[split == 0], y[split == 0])
    print(json.dumps({"accuracy": float(search.score(X[split == 1], y[split == 1])), "C": search.best_params_["C"]}))


# -- synthetic feature files ------------------------------------------------------------------------
def _write(path, X, y, split, n_classes, layer="pre_logits", pool="avg"):
    from transferkit.store.writer import FeatureWriter

    attrs = {"model": "synthetic", "weights_sha256": "none", "layer": layer, "pool": pool,
             "preprocess": {"synthetic": True}, "n_images": len(y)}
    order = np.argsort(y, kind="stable")  # written class by class, as extraction writes them
    with FeatureWriter(path, feature_dim=X.shape[1], label_names=[f"class {i}" for i in range(n_classes)],
                       attrs=attrs, buffer_rows=2048) as w:
        for s in range(0, len(y), 2048):
            idx = order[s : s + 2048]
            w.add(X[idx], y[idx], [f"img{i}.jpg" for i in idx], split[idx])
    return path


def _split(y, n_test, rng):
    split = np.zeros(len(y), np.uint8)
    split[rng.permutation(len(y))[:n_test]] = 1
    return split


def pooled_like(path, n_rows=8677, n_test=2172, dim=1280, n_classes=100, latent=48, positions=16,
                separation=0.45, seed=0):
    """Pooled post-ReLU6 features: mean over positions of clip(g * (z_p @ M) * gain - threshold, 0, 6), where
    z_p is the class centre plus image and position noise in a ``latent``-d space, g a per-image contrast,
    ``gain`` a per-channel scale and ``threshold`` a per-channel firing threshold (some channels fire
    rarely: heavy tails)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, latent)) * separation
    M = (rng.standard_normal((latent, dim)) / np.sqrt(latent)).astype(np.float32)
    gain = np.exp(rng.normal(0.0, 0.6, dim)).astype(np.float32)
    threshold = rng.uniform(0.5, 3.0, dim).astype(np.float32)  # rarely firing channels: heavy tails
    y = np.arange(n_rows) % n_classes
    X = np.empty((n_rows, dim), np.float32)
    for s in range(0, n_rows, 512):
        yb = y[s : s + 512]
        z = centres[yb] + rng.standard_normal((len(yb), latent)) * 0.6
        g = np.exp(rng.normal(0.0, 0.35, len(yb)))[:, None].astype(np.float32)
        acc = np.zeros((len(yb), dim), np.float32)
        for _ in range(positions):
            zp = (z + rng.standard_normal(z.shape) * 0.9).astype(np.float32)
            acc += np.clip(g * (zp @ M) * gain * 1.5 - threshold, 0.0, 6.0)
        X[s : s + 512] = acc / positions
    return _write(path, X, y, _split(y, n_test, rng), n_classes)


def maps_like(path, n_rows=3000, n_test=750, channels=1280, side=7, n_classes=3, latent=24, separation=0.8,
              seed=1):
    """Flattened post-ReLU6 maps (channels x side x side): at each position, class evidence where the
    object is (a random blob per image) and clutter elsewhere, through a random channel map and ReLU6."""
    rng = np.random.default_rng(seed)
    P = side * side
    centres = rng.standard_normal((n_classes, latent)) * separation
    M = (rng.standard_normal((latent, channels)) / np.sqrt(latent)).astype(np.float32)
    gy, gx = np.mgrid[0:side, 0:side]
    y = np.arange(n_rows) % n_classes
    X = np.empty((n_rows, channels * P), np.float32)
    for i in range(n_rows):
        cy, cx = rng.uniform(1, side - 2, 2)
        blob = np.exp(-((gy - cy) ** 2 + (gx - cx) ** 2) / (2 * rng.uniform(1.0, 2.5) ** 2)).ravel()
        z = centres[y[i]] + rng.standard_normal(latent) * 0.8
        Z = blob[:, None] * z + rng.standard_normal((P, latent)) * 0.7  # (P, latent)
        A = np.clip(Z.astype(np.float32) @ M * 2.0 - 0.5, 0.0, 6.0)  # (P, channels)
        X[i] = A.T.ravel()  # channel-major, as a flattened (C, H, W) map
    return _write(path, X, y, _split(y, n_test, rng), n_classes, layer="forward_features", pool="flatten")


# -- running the two side by side -------------------------------------------------------------------
def measure(path: str, workdir: Path, rounds: int, blas_threads: int | None = None) -> dict:
    import transferkit as tk

    env = dict(os.environ)
    if blas_threads:
        env.update({k: str(blas_threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    rows = []
    for r in range(rounds):
        pair = {}
        order = ("recipe", "train") if r % 2 == 0 else ("train", "recipe")
        for who in order:
            if who == "recipe":
                wall, rss, cpu, out = _run([sys.executable, __file__, "--recipe", path], env)
                pair["recipe"] = {"seconds": wall, "rss_mb": rss, "cpu_s": cpu,
                                  **json.loads(out.strip().splitlines()[-1])}
            else:
                model = workdir / "model.safetensors"
                model.unlink(missing_ok=True)
                wall, rss, cpu, _ = _run([sys.executable, "-m", "transferkit", "train", path, "-o", str(model)], env)
                m = tk.load_model(model)
                acc = tk.evaluate(m, path)["accuracy"]
                pair["train"] = {"seconds": wall, "rss_mb": rss, "cpu_s": cpu, "accuracy": acc, "C": m.head.C_,
                                 "scaling": getattr(m.head, "scaling_", None)}
        rows.append(pair)
        print(f"  round {r + 1} (load {os.getloadavg()[0]:.1f}): recipe {pair['recipe']['seconds']:.1f} s "
              f"(cpu {pair['recipe']['cpu_s']:.1f}) {pair['recipe']['rss_mb']:.0f} MB "
              f"acc {pair['recipe']['accuracy']:.4f} | train {pair['train']['seconds']:.1f} s "
              f"(cpu {pair['train']['cpu_s']:.1f}) "
              f"{pair['train']['rss_mb']:.0f} MB acc {pair['train']['accuracy']:.4f} "
              f"({pair['train']['scaling']}, C={pair['train']['C']:g})", flush=True)
    speed = [p["recipe"]["seconds"] / p["train"]["seconds"] for p in rows]
    mem = [p["train"]["rss_mb"] / p["recipe"]["rss_mb"] for p in rows]
    cpu = [p["recipe"]["cpu_s"] / p["train"]["cpu_s"] for p in rows]
    med = lambda who, key: statistics.median(p[who][key] for p in rows)  # noqa: E731
    return {"recipe_accuracy": med("recipe", "accuracy"), "train_accuracy": med("train", "accuracy"),
            "recipe_s": med("recipe", "seconds"), "train_s": med("train", "seconds"),
            "speedup": statistics.median(speed), "speedup_range": (min(speed), max(speed)),
            "cpu_ratio": statistics.median(cpu), "cpu_range": (min(cpu), max(cpu)),
            "recipe_mb": med("recipe", "rss_mb"), "train_mb": med("train", "rss_mb"),
            "rss_ratio": statistics.median(mem), "rss_range": (min(mem), max(mem)),
            "train_setting": f"{rows[-1]['train']['scaling']}, C={rows[-1]['train']['C']:g}",
            "recipe_C": rows[-1]["recipe"]["C"]}


def _run(cmd, env):
    """(wall seconds, peak RSS MB, CPU seconds (user + system), stdout) of one whole process (reaped with
    ``wait4``: its own peak RSS and CPU time)."""
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        out_r, out_w = os.pipe()
        proc = subprocess.Popen(cmd, stdout=out_w, stderr=devnull, env=env)
        os.close(out_w)
        with os.fdopen(out_r) as fh:
            out = fh.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited with {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="flowers17,many,wide")
    ap.add_argument("--flowers", default="/work/data/flowers17_lite0.h5")
    ap.add_argument("--workdir", default="/tmp/classic_recipe")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="set OPENBLAS/OMP/MKL_NUM_THREADS for both processes (default: the libraries' own)")
    args = ap.parse_args()
    if args.recipe:
        recipe(args.recipe)
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = {
        "flowers17": lambda: args.flowers,
        "many": lambda: (
            str(workdir / "many.h5") if (workdir / "many.h5").exists() else str(pooled_like(workdir / "many.h5"))
        ),
        "three": lambda: (
            str(workdir / "three.h5") if (workdir / "three.h5").exists()
            else str(pooled_like(workdir / "three.h5", n_rows=3000, n_test=750, n_classes=3, separation=0.35, seed=3))
        ),
        "wide": lambda: (
            str(workdir / "wide.h5") if (workdir / "wide.h5").exists() else str(maps_like(workdir / "wide.h5"))
        ),
    }
    results = {}
    for case in args.cases.split(","):
        path = files[case]() if case in files else case  # or a feature file of your own
        print(f"{case}: {path}", flush=True)
        results[case] = measure(path, workdir, args.rounds, args.blas_threads)
    print(
        "\n| case | recipe acc | train acc | train setting | recipe s | train s | speed-up (range) | CPU-time ratio "
        "(range) | recipe MB | train MB | RSS ratio (range) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case, r in results.items():
        print(
            f"| {case} | {r['recipe_accuracy']:.4f} | {r['train_accuracy']:.4f} | {r['train_setting']} | "
            f"{r['recipe_s']:.1f} | {r['train_s']:.1f} | {r['speedup']:.2f}x ({r['speedup_range'][0]:.2f}-"
            f"{r['speedup_range'][1]:.2f}) | {r['cpu_ratio']:.2f}x ({r['cpu_range'][0]:.2f}-{r['cpu_range'][1]:.2f}) | "
            f"{r['recipe_mb']:.0f} | {r['train_mb']:.0f} | {r['rss_ratio']:.2f} "
            f"({r['rss_range'][0]:.2f}-{r['rss_range'][1]:.2f}) |"
        )


if __name__ == "__main__":
    main()
