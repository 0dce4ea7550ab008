"""Out-of-core training: streaming from the HDF5 file gives the in-memory model (within tolerances)."""

from __future__ import annotations

import numpy as np
import pytest

import transferkit as tk
from transferkit.errors import TransferkitError
from transferkit.heads import LogisticHead, make_head
from transferkit.heads.streaming import ArraySource, FileSource
from transferkit.store.writer import FeatureWriter


def write_features(path, n=1500, d=24, k=3, seed=0):
    """Overlapping Gaussian classes, written class by class (as extraction does); 20 % test rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 0.8
    y = np.sort(np.arange(n) % k)
    X = (np.abs(centres[y] + rng.standard_normal((n, d))) * 3).astype(np.float32)
    split = (rng.random(n) < 0.2).astype(np.uint8)
    attrs = {"model": "synthetic", "weights_sha256": "none", "layer": "pre_logits", "pool": "avg", "preprocess": {}}
    with FeatureWriter(path, feature_dim=d, label_names=[f"c{i}" for i in range(k)], attrs=attrs, buffer_rows=333) as w:
        w.add(X, y, [f"r{i}" for i in range(n)], split)
    return path, X, y, split


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return write_features(tmp_path_factory.mktemp("ooc") / "synthetic.h5")


def test_file_source_streams_the_same_rows_as_memory(features):
    path, X, y, split = features
    with tk.open_features(path) as ff:
        src = FileSource(ff, "train", chunk_rows=320, block_rows=16)
        mem = ArraySource(X[split == 0], y[split == 0], chunk_rows=320, block_rows=16)
        a = list(src.chunks(rng=np.random.default_rng(3)))
        b = list(mem.chunks(rng=np.random.default_rng(3)))
        assert len(a) == len(b) >= 3
        for (xa, ya, pa), (xb, yb, pb) in zip(a, b):
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and np.array_equal(pa, pb)
            assert len(np.unique(ya)) > 1  # shuffled across the class-sorted file
        assert sorted(np.concatenate([c[2] for c in a]).tolist()) == list(range(src.n_rows))
        assert max(len(c[0]) for c in a) <= 320


@pytest.mark.parametrize("kind", ["logreg", "linear-svm"])
def test_out_of_core_linear_equals_in_memory(features, kind, tmp_path):
    """Streamed (Adam, then streamed full-batch L-BFGS) vs in-memory L-BFGS at the same C and tol=1e-6:
    the same optimum, so logreg probabilities agree to 1e-3 and SVM decision values to 1e-2
    (SVM probabilities differ a little more: calibrated on one held-out fold instead of out-of-fold)."""
    path = features[0]
    params = {"Cs": (1.0,), "max_epochs": 5, "tol": 1e-6, "polish_iter": 100}
    mem = tk.train(path, tmp_path / "mem.safetensors", head=kind, head_params=params)
    ooc = tk.train(path, tmp_path / "ooc.safetensors", head=kind, head_params=params, max_memory="400KB")
    assert not mem.model.training["out_of_core"] and ooc.model.training["out_of_core"]
    assert ooc.model.head.sgd_["chunk_rows"] < 1000 and ooc.model.head.sgd_["polish"]["converged"]
    with tk.open_features(path) as ff:
        Xt, _ = ff.load("test")
    np.testing.assert_allclose(ooc.model.head.mean_, mem.model.head.mean_, rtol=1e-5)
    np.testing.assert_allclose(ooc.model.head.scale_, mem.model.head.scale_, rtol=1e-5)
    da, db = mem.model.head.decision_function(Xt), ooc.model.head.decision_function(Xt)
    assert np.mean(da.argmax(1) == db.argmax(1)) >= 0.99
    assert abs(mem.metrics["accuracy"] - ooc.metrics["accuracy"]) <= 0.01
    if kind == "logreg":  # (multinomial intercepts are only defined up to a common shift: compare probabilities)
        np.testing.assert_allclose(ooc.model.predict_proba(Xt), mem.model.predict_proba(Xt), atol=1e-3)
    else:
        np.testing.assert_allclose(db, da, atol=1e-2)


def test_out_of_core_chooses_C_on_a_held_out_fold(features, tmp_path):
    r = tk.train(features[0], None, head="logreg", head_params={"Cs": (1e-4, 1.0), "max_epochs": 3, "polish_iter": 5},
                 max_memory="400KB")
    res = r.model.head.cv_results_
    assert res["holdout_rows"] > 0 and len(res["mean_accuracy"]) == 2
    assert r.model.head.C_ == res["C"][int(np.argmax(res["mean_accuracy"]))] or len(set(res["mean_accuracy"])) == 1
    assert r.metrics["accuracy"] > 0.6


def test_out_of_core_mlp_matches_in_memory_accuracy(features, tmp_path):
    params = {"hidden": (32,), "max_epochs": 30, "patience": 5}
    mem = tk.train(features[0], None, head="mlp", head_params=params)
    ooc = tk.train(features[0], tmp_path / "m.safetensors", head="mlp", head_params=params, max_memory="400KB")
    assert ooc.model.training["out_of_core"]
    assert len(tk.load_model(tmp_path / "m.safetensors").training["history"]["val_loss"]) == ooc.model.head.n_epochs_
    assert abs(mem.metrics["accuracy"] - ooc.metrics["accuracy"]) <= 0.05


def test_knn_refuses_a_split_that_does_not_fit(features):
    with pytest.raises(TransferkitError, match="does not fit --max-memory 400KB; the knn head needs it in memory"):
        tk.train(features[0], None, head="knn", max_memory="400KB")


def test_fit_stream_on_arrays_equals_file(features):
    path, X, y, split = features
    with tk.open_features(path) as ff:
        a = LogisticHead(Cs=(1.0,), max_epochs=2, polish_iter=0).fit_stream(FileSource(ff, "train", chunk_rows=200))
    b = LogisticHead(Cs=(1.0,), max_epochs=2, polish_iter=0).fit_stream(
        ArraySource(X[split == 0], y[split == 0], chunk_rows=200, block_rows=12))  # FileSource: 200 // 16
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    assert make_head("logreg").get_params()["polish_iter"] == 30
