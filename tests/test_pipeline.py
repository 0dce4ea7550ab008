"""extract -> HDF5 -> train -> evaluate -> predict, through the Python API, on real generated images."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import CLASSES, add_bad_files, make_dataset

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.errors import TransferkitError


def test_extract_writes_every_image_with_labels_split_and_provenance(extracted, dataset_dir):
    r = extracted
    assert r.n_images == r.n_rows == 24 and r.skipped == []
    assert (r.n_train, r.n_test) == (18, 6)
    with tk.open_features(r.path) as ff:
        assert ff.complete and ff.feature_dim == 1280
        assert ff.label_names == sorted(CLASSES)
        a = ff.attrs
        assert a["model"] == "efficientnet_lite0" and a["layer"] == "pre_logits" and a["pool"] == "avg"
        assert a["dataset_root"] == str(dataset_dir.resolve())
        assert a["preprocess"]["input_size"] == [224, 224]
        for path, label in zip(ff.paths, ff.labels):
            assert (dataset_dir / path).is_file()  # relative to the dataset root
            assert path.split("/")[0] == ff.label_names[label]
        for c in range(3):  # stratified: 2 of each class's 8 images in the test split
            assert int(ff.split[ff.labels == c].sum()) == 2
        X, _ = ff.load()
        assert np.isfinite(X).all() and X.dtype == np.float32


def test_feature_rows_equal_a_direct_forward_pass(extracted, dataset_dir):
    backbone = create_backbone()
    with tk.open_features(extracted.path) as ff:
        paths, X = ff.paths, ff.load()[0]
    from transferkit.data import load_image

    batch = np.stack([backbone.preprocess.to_array(load_image(dataset_dir / p, backbone.preprocess.min_decode_size))
                      for p in paths[:4]])
    with torch.inference_mode():
        direct = backbone.features(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(X[:4], direct, atol=1e-4)


def test_same_inputs_give_identical_files(tmp_path, extracted, dataset_dir):
    again = tk.extract(dataset_dir, tmp_path / "again.h5", batch_size=5, buffer_rows=7)
    with tk.open_features(extracted.path) as a, tk.open_features(again.path) as b:
        assert a.paths == b.paths and np.array_equal(a.split, b.split)
        np.testing.assert_array_equal(a.load()[0], b.load()[0])


def test_unreadable_images_are_skipped_recorded_and_counted(tmp_path):
    root = make_dataset(tmp_path / "data", per_class=4, nested=False)
    expected = add_bad_files(root / "red disc")
    r = tk.extract(root, tmp_path / "f.h5", batch_size=3)
    assert r.n_images == 12 + 4 and r.n_rows == 12 and len(r.skipped) == 4
    reasons = {Path(p).name: why for p, why in r.skipped}
    for name, keyword in expected.items():
        assert keyword in reasons[name], reasons
    with tk.open_features(r.path) as ff:
        assert ff.complete and len(ff.skipped) == 4
        assert not any(Path(p).name in expected for p in ff.paths)


def test_existing_output_is_not_clobbered(tmp_path, dataset_dir):
    out = tmp_path / "f.h5"
    out.write_bytes(b"precious")
    with pytest.raises(TransferkitError, match=r"already exists .*; pass overwrite=True"):
        tk.extract(dataset_dir, out)
    assert out.read_bytes() == b"precious"


def test_csv_manifest_end_to_end(tmp_path):
    root = make_dataset(tmp_path / "imgs", per_class=3, nested=False)
    lines = ["path,label"] + [f"imgs/{p.parent.name}/{p.name},{'disc' if 'disc' in p.parent.name else 'other'}"
                              for p in sorted(root.rglob("*.*"))]
    (tmp_path / "list.csv").write_text("\n".join(lines))
    r = tk.extract(tmp_path / "list.csv", tmp_path / "f.h5", test_size=0.0)
    with tk.open_features(r.path) as ff:
        assert ff.label_names == ["disc", "other"] and ff.n_rows == 9
        assert ff.attrs["source"] == "csv" and ff.split.sum() == 0


def test_train_reports_on_the_test_split(trained):
    m = trained.metrics
    assert m["n_test"] == 6 and m["accuracy"] == 1.0  # three very different classes
    assert "precision" in trained.report and "macro avg" in trained.report
    head = trained.model.head
    assert head.C_ in head.cv_results_["C"]
    assert trained.model.backbone["model"] == "efficientnet_lite0"


def test_evaluate_gives_the_documented_metrics(trained, extracted):
    m = tk.evaluate(trained.path, extracted.path)
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "n_test"):
        assert key in m
    assert np.trace(np.array(m["confusion_matrix"])) == m["n_test"] == 6
    assert set(m["per_class"]) == set(CLASSES)


def test_evaluate_refuses_features_from_other_weights(tmp_path, trained, extracted):
    copy = tmp_path / "other.h5"
    shutil.copy(extracted.path, copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["weights_sha256"] = "f" * 64
    with pytest.raises(TransferkitError, match="different weights_sha256"):
        tk.evaluate(trained.path, copy)


def test_predict_replays_extraction_exactly(trained, extracted, dataset_dir):
    with tk.open_features(extracted.path) as ff:
        paths, X = ff.paths[:6], ff.load()[0][:6]
    model = tk.load_model(trained.path)
    result = model.predict([dataset_dir / p for p in paths], top_k=3)
    assert [Path(p.path) for p in result.predictions] == [dataset_dir / p for p in paths]
    from_file = model.predict_proba(X)
    for row, pred in enumerate(result.predictions):
        assert pred.labels[0] == model.class_names[int(from_file[row].argmax())]
        assert abs(pred.confidence - from_file[row].max()) < 1e-4
        assert len(pred.labels) == 3 and pred.probabilities == sorted(pred.probabilities, reverse=True)


def test_predict_folders_recursively_and_reports_bad_files(tmp_path, trained):
    folder = make_dataset(tmp_path / "new", per_class=2, seed=9)
    expected = add_bad_files(folder / "unsorted")
    result = tk.predict(trained.path, [folder, tmp_path / "missing.jpg"])
    assert len(result.predictions) == 6
    for p in result.predictions:
        assert p.label == Path(p.path).relative_to(folder).parts[0]
    reasons = {Path(p).name: why for p, why in result.skipped}
    assert set(reasons) == set(expected) | {"missing.jpg"}
