"""`transferkit export-features`: every format holds exactly the feature file's values, labels, split and
paths; existing outputs are refused; a file larger than the memory budget exports within it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

import transferkit as tk
from transferkit.errors import TransferkitError
from transferkit.store.export_features import export_features
from transferkit.store.writer import FeatureWriter


def write_features(path, n=300, d=40, dtype="float32", seed=0, block=None):
    """A real feature file (the finished layout), rows with unicode paths, all three splits."""
    rng = np.random.default_rng(seed)
    names = ["red disc", "grün", "blue, \"square\""]
    attrs = {"model": "synthetic", "weights_sha256": "none", "layer": "pre_logits", "pool": "avg", "preprocess": {},
             "split_source": "folders"}
    block = block or n
    with FeatureWriter(path, feature_dim=d, label_names=names, attrs=attrs, buffer_rows=block, dtype=dtype) as w:
        for lo in range(0, n, block):
            m = min(block, n - lo)
            X = rng.standard_normal((m, d)).astype(np.float32) * 10 ** rng.uniform(-3, 3, (m, 1)).astype(np.float32)
            idx = np.arange(lo, lo + m)
            w.add(X, idx % 3, [f"train/ç {i % 3}/ïmg, {i}.jpg" for i in idx], idx % 7 % 3)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_features(tmp_path_factory.mktemp("export") / "small.h5")


def reference(path, layer=None):
    with tk.open_features(path) as ff:
        X, y = ff.load(layers=layer)
        return X, y, ff.split, ff.paths, ff.label_names, ff.dtype


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_npy_with_sidecars(tmp_path, dtype):
    src = write_features(tmp_path / "f.h5", dtype=dtype)
    X, y, split, paths, names, stored = reference(src)
    r = export_features(src, tmp_path / "out.npy", max_memory="20KB")  # many chunks
    assert r.chunk_rows < 300 and r.n_rows == 300
    feats = np.load(tmp_path / "out.npy")
    assert feats.dtype == stored and np.array_equal(feats.astype(np.float32), X)  # the stored values, exactly
    assert np.array_equal(np.load(tmp_path / "out.labels.npy"), y) and np.array_equal(
        np.load(tmp_path / "out.split.npy"), split
    )
    info = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert info["paths"] == paths and info["class_names"] == names and info["split_names"] == ["train", "test", "val"]
    assert info["provenance"]["split_source"] == "folders" and info["labels_file"] == "out.labels.npy"
    assert not list(tmp_path.glob("*.part"))


def test_npz(small, tmp_path):
    X, y, split, paths, names, _ = reference(small)
    export_features(small, tmp_path / "out.npz", max_memory="20KB")
    with np.load(tmp_path / "out.npz") as z:  # allow_pickle stays False: strings are fixed-width unicode
        assert np.array_equal(z["features"], X) and np.array_equal(z["labels"], y) and np.array_equal(z["split"], split)
        assert z["paths"].tolist() == paths and z["class_names"].tolist() == names
        assert json.loads(str(z["provenance"]))["model"] == "synthetic"


def test_parquet(small, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    X, y, split, paths, names, _ = reference(small)
    export_features(small, tmp_path / "out.parquet", max_memory="20KB")
    f = pq.ParquetFile(tmp_path / "out.parquet")
    assert f.metadata.num_row_groups > 1  # written chunk by chunk
    t = f.read()
    assert t.column_names == ["path", "label", "label_name", "split", "features"]
    assert np.array_equal(np.stack(t["features"].to_numpy(zero_copy_only=False)), X)
    assert t["path"].to_pylist() == paths and t["label"].to_pylist() == y.tolist()
    assert t["label_name"].to_pylist() == [names[i] for i in y]
    assert t["split"].to_pylist() == [("train", "test", "val")[s] for s in split]
    assert json.loads(f.schema_arrow.metadata[b"transferkit"])["provenance"]["split_source"] == "folders"


def test_csv(small, tmp_path):
    X, y, split, paths, names, _ = reference(small)
    export_features(small, tmp_path / "out.csv", max_memory="20KB")
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:5] == ["path", "label", "label_name", "split", "f0"] and len(rows[0]) == 4 + X.shape[1]
    body = rows[1:]
    assert [r[0] for r in body] == paths and [int(r[1]) for r in body] == y.tolist()
    assert [r[2] for r in body] == [names[i] for i in y]  # the class with a comma and quotes survives
    assert np.array_equal(np.array([r[4:] for r in body], dtype=np.float32), X)


def test_refusals_and_cli(tmp_path):
    src = write_features(tmp_path / "f.h5", n=30)
    out = tmp_path / "x.npy"
    r = run_cli("export-features", src, "-o", out)
    assert r.returncode == 0 and "wrote" in r.stdout and "x.labels.npy" in r.stdout
    again = run_cli("export-features", src, "-o", out)
    assert again.returncode == 1 and "x.npy: already exists; pass --overwrite" in again.stderr
    (tmp_path / "x.json").unlink()  # the other outputs still exist: still refused
    assert run_cli("export-features", src, "-o", out).returncode == 1
    assert run_cli("export-features", src, "-o", out, "--overwrite").returncode == 0
    assert (tmp_path / "x.json").exists()
    bad = run_cli("export-features", src, "-o", tmp_path / "x.txt")
    assert bad.returncode == 1 and "unknown export format '.txt'" in bad.stderr
    with pytest.raises(TransferkitError, match="has no layer 'layer9'"):
        export_features(src, tmp_path / "y.npz", layer="layer9")
    assert not (tmp_path / "y.npz").exists() and not list(tmp_path.glob("*.part"))


MEASURE = r"""
import sys
import numpy as np, pyarrow, pyarrow.parquet
import transferkit as tk
from transferkit.store.export_features import export_features
src, out, budget = sys.argv[1:4]
if out == "-":  # baseline: the same imports, the file opened and one budget-sized read
    with tk.open_features(src) as ff:
        next(ff.iter_chunks(max_memory=budget))
else:
    export_features(src, out, max_memory=budget)
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across fork + exec)
print(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024)
"""


@pytest.mark.slow
def test_export_memory_does_not_grow_with_the_file(tmp_path):
    """24 MB and 96 MB feature files exported with an 8 MB budget: the process peaks at the same memory
    for both (pyarrow's writer has a fixed overhead of its own), and the NumPy formats peak far below the
    file's size above a baseline that only imports, opens the file and reads one chunk."""
    files = {n: write_features(tmp_path / f"f{n}.h5", n=n, d=2_000, block=1_000) for n in (3_000, 12_000)}
    big = 12_000 * 2_000 * 4

    def peak(src, out):
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(src), str(out), "8MB"], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout.split()[-1])

    base = peak(files[12_000], "-")
    for fmt in ("npy", "npz", "parquet"):
        small, large = (peak(files[n], tmp_path / f"out{n}.{fmt}") for n in (3_000, 12_000))
        # the file grew by 72 MB: an export holding it (or any fixed share of it) would grow with it
        assert large - small < 24e6, f"{fmt}: {small / 1e6:.0f} MB for a 24 MB file, {large / 1e6:.0f} MB for 96 MB"
        if fmt != "parquet":
            assert large - base < big / 4, f"{fmt}: peak {(large - base) / 1e6:.0f} MB above the baseline"
    with np.load(tmp_path / "out12000.npz") as z:
        assert z["features"].shape == (12_000, 2_000)
