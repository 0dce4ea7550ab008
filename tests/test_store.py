"""The HDF5 feature file: buffered writes, the complete flag, self-description, and the reader."""

import json

import h5py
import numpy as np
import pytest

from transferkit.errors import IncompleteFileError, TransferkitError
from transferkit.store import FORMAT, FeatureWriter, open_features
from transferkit.store.schema import REQUIRED_ATTRS

SPEC = {"model": "m", "weights_sha256": "0" * 64, "layer": "pre_logits", "pool": "avg",
        "preprocess": {"input_size": [8, 8]}}


def _rows(n, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)).astype(np.float32),
        rng.integers(0, 3, n),
        [f"c/ï {i}.jpg" for i in range(n)],
        rng.integers(0, 2, n),
    )


def test_rows_are_buffered_and_flushed_in_blocks(tmp_path):
    path = tmp_path / "f.h5"
    X, y, paths, split = _rows(10)
    w = FeatureWriter(path, feature_dim=5, label_names=["a", "b", "c"], attrs=SPEC, buffer_rows=4)
    w.add(X[:3], y[:3], paths[:3], split[:3])
    assert w.rows_written == 0 and w.buffered_rows == 3  # still in memory
    with h5py.File(path, "r") as f:  # another reader sees a valid, empty, incomplete file
        assert f["features"].shape == (0, 5) and not f.attrs["complete"]
    w.add(X[3:5], y[3:5], paths[3:5], split[3:5])
    assert w.rows_written == 5 and w.buffered_rows == 0  # crossed the buffer size: flushed
    w.add_skipped("c/bad.jpg", "empty file (0 bytes)")
    w.add(X[5:], y[5:], paths[5:], split[5:])
    w.close()
    with open_features(path) as ff:
        assert ff.complete
        np.testing.assert_array_equal(ff.load()[0], X)
        assert ff.paths == paths and ff.labels.tolist() == y.tolist() and ff.split.tolist() == split.tolist()
        assert ff.skipped == [("c/bad.jpg", "empty file (0 bytes)")]
        assert ff.label_names == ["a", "b", "c"]


def test_file_is_self_describing_with_plain_h5py(tmp_path):
    path = tmp_path / "f.h5"
    X, y, paths, split = _rows(3)
    with FeatureWriter(path, feature_dim=5, label_names=["a", "b", "c"], attrs=SPEC) as w:
        w.add(X, y, paths, split)
    with h5py.File(path, "r") as f:
        for key in REQUIRED_ATTRS:
            assert key in f.attrs, key
        assert f.attrs["format"] == FORMAT and f.attrs["complete"]
        assert json.loads(f.attrs["preprocess"]) == SPEC["preprocess"]
        versions = json.loads(f.attrs["versions"])
        assert {"transferkit", "torch", "timm", "numpy", "h5py"} <= set(versions)
        assert f["features"].chunks is not None and f["features"].maxshape == (None, 5)
        assert json.loads(f["split"].attrs["names"]) == [
            "train",
            "test",
            "val",
        ]  # value -> name (val: 2, only in three-way datasets)
        assert f["paths"][0].decode() == "c/ï 0.jpg"


def test_an_exception_leaves_the_written_rows_and_an_incomplete_mark(tmp_path):
    path = tmp_path / "f.h5"
    X, y, paths, split = _rows(6)
    with pytest.raises(RuntimeError):
        with FeatureWriter(path, feature_dim=5, label_names=["a", "b", "c"], attrs=SPEC, buffer_rows=100) as w:
            w.add(X, y, paths, split)
            raise RuntimeError("boom")
    with open_features(path) as ff:
        assert not ff.complete
        assert ff.n_rows == 6  # buffered rows were still flushed
        with pytest.raises(IncompleteFileError, match="incomplete feature file .*resume=True"):
            ff.require_complete("train on")


def test_reader_serves_a_split_in_chunks_equal_to_loading_it(tmp_path):
    path = tmp_path / "f.h5"
    X, y, paths, split = _rows(103)
    with FeatureWriter(path, feature_dim=5, label_names=["a", "b", "c"], attrs=SPEC, buffer_rows=10) as w:
        w.add(X, y, paths, split)
    with open_features(path) as ff:
        for name, code in (("train", 0), ("test", 1)):
            Xs, ys = ff.load(name)
            np.testing.assert_array_equal(Xs, X[split == code])
            chunks = list(ff.iter_chunks(name, chunk_rows=7))
            assert all(len(c) <= 7 for c, _ in chunks)
            np.testing.assert_array_equal(np.concatenate([c for c, _ in chunks]), Xs)
            np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), ys)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file (0 bytes), not a feature file"),
        (b"definitely not hdf5" * 100, "not an HDF5 file"),
    ],
)
def test_non_hdf5_files_get_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "x.h5"
    path.write_bytes(content)
    with pytest.raises(TransferkitError) as exc:
        open_features(path)
    assert message in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_hdf5_that_is_not_a_feature_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(TransferkitError, match="not a transferkit feature file"):
        open_features(path)
    with pytest.raises(TransferkitError, match="no such file"):
        open_features(tmp_path / "missing.h5")


def test_read_rows_reads_scattered_rows_in_runs(tmp_path):
    path = tmp_path / "f.h5"
    X, y, paths, split = _rows(200)
    with FeatureWriter(path, feature_dim=5, label_names=["a", "b", "c"], attrs=SPEC, buffer_rows=64) as w:
        w.add(X, y, paths, split)
    rows = np.array([0, 1, 5, 40, 41, 120, 199])  # three runs: gaps over 32 rows start a new read
    with open_features(path) as ff:
        np.testing.assert_array_equal(ff.read_rows(rows), X[rows])
        np.testing.assert_array_equal(ff.read_rows(rows, layers="pre_logits"), X[rows])
        assert ff.read_rows([]).shape == (0, 5)
