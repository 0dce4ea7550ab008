"""Feature store benchmarks: out-of-core reading under a memory budget, storage options, and what the
crash-safe write path costs. Every figure is a ratio against a reference measured in the same run.

  python benchmarks/feature_store.py rss      [--rows 240000] [--dim 1280] [--budget 256MB]
  python benchmarks/feature_store.py storage  [--features FILE.h5 | --data /work/shared/datasets/flowers17]
  python benchmarks/feature_store.py write    [--rows 100000] [--dim 1280]

rss      builds a synthetic feature file several times the budget, then reads its train split in a
         fresh process twice: streamed with iter_chunks(max_memory=budget), and loaded whole with
         load(); reports the peak RSS of each above the process's baseline after imports.
storage  writes the same real features as float32/float16 x none/lzf/gzip; reports file size and
         read speed (all rows as float32, page cache warm) relative to float32 uncompressed.
write    appends rows through the crash-safe working file (pwrite + fsync per commit) and finishes
         it, against the plain appending writer (the pre-resume path); reports time ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def rss_now() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss() -> int:
    """Peak RSS since the last reset_peak() (VmHWM), else since the process started."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> None:
    """Forget the peak so far (Linux: writing 5 to clear_refs resets VmHWM), so that the transient
    peak of importing numpy/h5py/torch does not count against the reading."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


# -- synthetic files ---------------------------------------------------------------------------------
def build_synthetic(path: Path, rows: int, dim: int, dtype: str = "float32", compression: str | None = None) -> None:
    from transferkit.store import FeatureWriter

    rng = np.random.default_rng(0)
    block = 8192
    attrs = {"model": "synthetic", "weights_sha256": "0" * 64, "layer": "pre_logits", "pool": "avg",
             "preprocess": {}, "dataset_root": "/synthetic", "source": "folder", "test_size": 0.25, "seed": 0,
             "n_images": rows, "batch_size": 32, "engine": "none"}
    with FeatureWriter(path, feature_dim=dim, label_names=[f"class {i}" for i in range(10)], attrs=attrs,
                       buffer_rows=block, dtype=dtype, compression=compression) as w:
        for lo in range(0, rows, block):
            n = min(block, rows - lo)
            w.add(rng.standard_normal((n, dim), dtype=np.float32), rng.integers(0, 10, n),
                  [f"class/{i:08d}.jpg" for i in range(lo, lo + n)], (rng.random(n) < 0.25).astype(np.uint8))


# -- rss ---------------------------------------------------------------------------------------------
def child_read(path: str, how: str, budget: str) -> None:
    """Runs in a fresh process: read the train split one way, print JSON with memory figures."""
    from transferkit.store import open_features

    reset_peak()
    base = rss_now()
    start = time.perf_counter()
    with open_features(path) as ff:
        total, rows, biggest = 0.0, 0, 0
        if how == "stream":
            for X, y in ff.iter_chunks("train", max_memory=budget):
                total += float(X.sum())
                rows += len(y)
                biggest = max(biggest, len(y))
        else:
            X, y = ff.load("train")
            total, rows, biggest = float(X.sum()), len(y), len(y)
            del X, y
    print(json.dumps({"how": how, "baseline": base, "peak": peak_rss(), "above": peak_rss() - base, "rows": rows,
                      "chunk_rows": biggest, "seconds": time.perf_counter() - start, "checksum": total}))


def bench_rss(args) -> None:
    from transferkit.store.budget import parse_size

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path = Path(tmp) / "synthetic.h5"
        t = time.perf_counter()
        build_synthetic(path, args.rows, args.dim)
        size = path.stat().st_size
        print(
            f"synthetic file: {args.rows:,} rows x {args.dim} float32 = {mb(size)} "
            f"({size / parse_size(args.budget):.1f}x the {args.budget} budget), built in "
            f"{time.perf_counter() - t:.0f} s"
        )
        results = {}
        for how in ("stream", "load"):
            out = subprocess.run(
                [sys.executable, __file__, "_child", str(path), how, args.budget],
                capture_output=True,
                text=True,
                check=True,
            )
            results[how] = json.loads(out.stdout.strip().splitlines()[-1])
        s, ld = results["stream"], results["load"]
        assert s["rows"] == ld["rows"], (s, ld)
        print(f"{'train split read':<28}{'peak RSS above baseline':>26}{'peak RSS':>12}{'time':>9}")
        for name, r in (("iter_chunks(max_memory)", s), ("load() whole", ld)):
            print(f"{name:<28}{mb(r['above']):>26}{mb(r['peak']):>12}{r['seconds']:>8.1f}s")
        print(
            f"ratio streamed / whole: memory {s['above'] / ld['above']:.3f}, time {s['seconds'] / ld['seconds']:.2f}; "
            f"budget {args.budget} -> chunks of {s['chunk_rows']:,} rows; train split {s['rows']:,} rows "
            f"= {mb(s['rows'] * args.dim * 4)} as float32"
        )


# -- storage -----------------------------------------------------------------------------------------
def real_features(args) -> tuple[np.ndarray, Path | None]:
    from transferkit.store import open_features

    if args.features:
        with open_features(args.features) as ff:
            return ff.load()[0], None
    import transferkit as tk

    out = Path(args.tmp or tempfile.gettempdir()) / "bench-feature-store-flowers17.h5"
    if not out.exists():
        t = time.perf_counter()
        tk.extract(args.data, out, batch_size=32)
        print(f"extracted {args.data} -> {out} in {time.perf_counter() - t:.0f} s")
    with open_features(out) as ff:
        return ff.load()[0], out


def head_accuracy(path: Path, dtype: str) -> float:
    """Test accuracy of a logistic regression (C=1) trained on the file's train split, with the
    features rounded to ``dtype`` -- does float16 storage change what a head learns?"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from transferkit.store import open_features

    with open_features(path) as ff:
        X, y = ff.load("train")
        Xt, yt = ff.load("test")
    X, Xt = X.astype(dtype).astype(np.float32), Xt.astype(dtype).astype(np.float32)
    scaler = StandardScaler().fit(X)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(X), y)
    return float((clf.predict(scaler.transform(Xt)) == yt).mean())


def bench_storage(args) -> None:
    from transferkit.store import FeatureWriter, open_features

    X, source = real_features(args)
    source = source or Path(args.features)
    acc32, acc16 = head_accuracy(source, "float32"), head_accuracy(source, "float16")
    print(f"logistic regression (C=1) test accuracy: float32 features {acc32:.4f}, float16 features {acc16:.4f}")
    n, dim = X.shape
    reps = max(1, int(args.read_mb * 1e6 // X.nbytes))
    print(f"real features: {n:,} rows x {dim} (float32 {mb(X.nbytes)}); read {reps}x per option, page cache warm")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for dtype in ("float32", "float16"):
            for comp in (None, "lzf", "gzip"):
                path = Path(tmp) / f"{dtype}-{comp}.h5"
                t = time.perf_counter()
                with FeatureWriter(
                    path,
                    feature_dim=dim,
                    label_names=["a", "b"],
                    attrs={},
                    buffer_rows=4096,
                    dtype=dtype,
                    compression=comp,
                ) as w:
                    w.add(X, np.zeros(n, int), [f"{i}.jpg" for i in range(n)], np.zeros(n, np.uint8))
                write_s = time.perf_counter() - t
                with open_features(path) as ff:  # warm the page cache
                    for _ in ff.iter_chunks(chunk_rows=4096):
                        pass
                t = time.perf_counter()
                for _ in range(reps):
                    with open_features(path) as ff:
                        for _chunk, _ in ff.iter_chunks(chunk_rows=4096):
                            pass
                read_s = (time.perf_counter() - t) / reps
                with open_features(path) as ff:
                    err = float(np.abs(ff.load()[0] - X).max())
                rows.append((dtype, comp or "none", path.stat().st_size, write_s, read_s, err))
    ref_size, ref_read = rows[0][2], rows[0][4]
    print(
        f"{'dtype':<9}{'compression':<13}{'file':>10}{'size ratio':>12}{'read MB/s':>11}"
        f"{'read ratio':>12}{'write s':>9}{'max abs err':>13}"
    )
    for dtype, comp, size, write_s, read_s, err in rows:
        print(
            f"{dtype:<9}{comp:<13}{mb(size):>10}{size / ref_size:>12.3f}{X.nbytes / read_s / 1e6:>11.0f}"
            f"{ref_read / read_s:>12.2f}{write_s:>9.2f}{err:>13.2e}"
        )
    print("(read ratio > 1 is faster than float32/none; MB/s counts float32 output bytes)")


# -- write -------------------------------------------------------------------------------------------
def bench_write(args) -> None:
    from transferkit.store import FeatureWriter
    from transferkit.store.finalize import finalize
    from transferkit.store.working import Plan, WorkingFile, create_working_file

    rng = np.random.default_rng(0)
    n, dim, buf = args.rows, args.dim, 1000
    X = rng.standard_normal((buf, dim), dtype=np.float32)
    labels = rng.integers(0, 10, n).astype(np.int32)
    paths = [f"class/{i:08d}.jpg" for i in range(n)]
    split = (rng.random(n) < 0.25).astype(np.uint8)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t = time.perf_counter()
        with FeatureWriter(
            Path(tmp) / "plain.h5", feature_dim=dim, label_names=[str(i) for i in range(10)], attrs={}, buffer_rows=buf
        ) as w:
            for lo in range(0, n, buf):
                k = min(buf, n - lo)
                w.add(X[:k], labels[lo : lo + k], paths[lo : lo + k], split[lo : lo + k])
        plain = time.perf_counter() - t

        work = Path(tmp) / "safe.h5"
        t = time.perf_counter()
        create_working_file(
            work, Plan(paths, labels, split, [str(i) for i in range(10)]), feature_dim=dim, dtype="float32", attrs={}
        )
        created = time.perf_counter() - t
        wf = WorkingFile(work, buffer_rows=buf)
        for lo in range(0, n, buf):
            k = min(buf, n - lo)
            wf.add(range(lo, lo + k), X[:k])
        wf.commit()
        wf.close()
        rows_s = time.perf_counter() - t - created
        t = time.perf_counter()
        finalize(work)
        fin = time.perf_counter() - t
        size = work.stat().st_size
    safe = created + rows_s + fin
    print(f"{n:,} rows x {dim} float32 ({mb(size)}), commits of {buf} rows")
    print(f"plain appending writer (not crash-safe):        {plain:7.2f} s   1.00")
    print(
        f"crash-safe: create {created:.2f} s + rows {rows_s:.2f} s (fsync per commit) + finish {fin:.2f} s = "
        f"{safe:.2f} s   {safe / plain:.2f}"
    )
    print(
        f"finishing copies the file once: {mb(size / fin)}/s; Lite0 extraction at ~150 img/s writes "
        f"{150 * dim * 4 / 1e6:.1f} MB/s of features"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child_read(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("rss", "storage", "write"))
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--budget", default="256MB")
    ap.add_argument("--features", default=None, help="a real feature file for `storage`")
    ap.add_argument("--data", default="/work/shared/datasets/flowers17", help="dataset to extract for `storage`")
    ap.add_argument("--read-mb", type=float, default=400, help="MB of float32 rows to read per option in `storage`")
    ap.add_argument("--tmp", default=None, help="folder for the temporary files (default: system temp)")
    args = ap.parse_args()
    if args.what == "rss":
        args.rows = args.rows or 240_000
        bench_rss(args)
    elif args.what == "storage":
        bench_storage(args)
    else:
        args.rows = args.rows or 100_000
        bench_write(args)


if __name__ == "__main__":
    main()
