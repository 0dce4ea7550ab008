"""Pre-split datasets end to end: extraction keeps the folders' split (and records where it came from),
--update and --resume keep it, inspect/evaluate/the report say so, train chooses C / k on the val split,
and train refuses to overwrite a model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import draw, run_cli

import transferkit as tk
from transferkit.data.split import TEST, TRAIN, VAL
from transferkit.errors import TransferkitError
from transferkit.heads import KNNHead

MODEL = dict(model="timm:resnet18", weights="random", image_size=48, batch_size=8, workers=1)
KINDS = {"red disc": "disc", "blue square": "square", "grün stripes": "stripes"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def make_split_dataset(root, counts, skip=()):
    """``counts``: {split folder: images per class}; ``skip``: (split folder, class) pairs left out."""
    rng = np.random.default_rng(1)
    for split, n in counts.items():
        for cls, kind in KINDS.items():
            if (split, cls) in skip:
                continue
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw(kind, rng, 32).save(folder / f"ïmg {i:02d}.png")
    return root


def folder_split(path: str) -> int:
    top = path.split("/")[0].lower()
    return {"train": TRAIN, "val": VAL, "valid": TEST, "test": TEST}[top]


@pytest.fixture(scope="module")
def three_way(tmp_path_factory):
    """train / val / test folders; extracted with two layers (for export --layer)."""
    root = make_split_dataset(tmp_path_factory.mktemp("three") / "my photos", {"train": 6, "val": 4, "test": 3},
                              skip={("test", "grün stripes")})
    out = root.parent / "features.h5"
    result = tk.extract(root, out, layer=["layer4", "pre_logits"], **MODEL)
    return root, out, result


def test_extraction_keeps_the_folder_split_and_says_so(three_way):
    root, out, r = three_way
    assert (r.n_train, r.n_test, r.n_val, r.split_source) == (18, 6, 12, "folders")
    assert any("test/ has no 'grün stripes'" in n for n in r.notes)
    with tk.open_features(out) as ff:
        assert [int(s) for s in ff.split] == [folder_split(p) for p in ff.paths]
        assert ff.attrs["split_source"] == "folders" and "test_size" not in ff.attrs
        assert json.loads(ff.h5["split"].attrs["names"]) == ["train", "test", "val"]
        assert ff.count("val") == 12
    info = json.loads(run_cli("inspect", out, "--json", check=True).stdout)
    assert info["classes"]["grün stripes"] == {"train": 6, "test": 0, "val": 4}
    assert info["split_source"] == "folders" and info["n_val"] == 12
    text = run_cli("inspect", out, "--verify", check=True).stdout  # split value 2 and no test_size are fine
    assert "split from" in text and "split folders" in text and "val" in text


def test_train_chooses_k_on_the_val_split_and_fits_on_train_plus_val(three_way, tmp_path):
    _, out, _ = three_way
    r = tk.train(out, tmp_path / "knn.safetensors", head="knn")
    head = r.model.head
    with tk.open_features(out) as ff:
        X_tr, y_tr = ff.load("train")
        X_val, y_val = ff.load("val")
    # each k's score is the accuracy of that k fitted on train only and scored on val: nothing else
    expected = [float(np.mean(KNNHead(ks=[k]).fit(X_tr, y_tr).predict(X_val) == y_val)) for k in head.cv_results_["k"]]
    assert head.cv_results_["mean_accuracy"] == expected and head.cv_results_["folds"] == 1
    assert len(head.train_) == len(y_tr) + len(y_val)  # the final head saw train + val, never test
    assert r.model.training["chosen_on_val"] and r.model.training["n_val"] == 12 and r.metrics["n_test"] == 6
    svm = tk.train(out, None, head="linear-svm", Cs=[0.01, 1.0])  # calibrated on the val rows' decisions
    assert svm.model.head.cv_results_["folds"] == 1
    assert np.allclose(svm.model.head.predict_proba(X_val).sum(1), 1)
    cli = run_cli("train", out, "-o", tmp_path / "lr.safetensors", "--C", "0.1", "--C", "1", check=True).stdout
    assert "chosen on the val split (12 rows)" in cli and "fitted on train + val (30 rows)" in cli


def test_evaluate_and_the_report_say_where_the_split_came_from(three_way, tmp_path):
    _, out, _ = three_way
    model = tmp_path / "m.safetensors"
    tk.train(out, model, Cs=[0.1, 1.0])
    m = tk.evaluate(model, out, html=tmp_path / "r.html")
    assert m["split_source"] == "folders" and "split folders" in m["split_from"]
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "split from" in html and "split folders" in html and "chosen on the val split" in html
    assert tk.evaluate(model, out, split="val")["n_test"] == 12
    cli = run_cli("evaluate", model, out, check=True).stdout
    assert "split from the dataset's split folders" in cli


def test_train_refuses_to_overwrite_a_model(three_way, tmp_path):
    _, out, _ = three_way
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"my earlier model")
    r = run_cli("train", out, "-o", model, "--head", "knn")
    assert r.returncode == 1 and "m.safetensors: already exists; pass --overwrite" in r.stderr
    assert model.read_bytes() == b"my earlier model"
    with pytest.raises(TransferkitError, match="already exists"):
        tk.train(out, model, head="knn")
    tk.train(out, model, head="knn", overwrite=True)
    assert tk.load_model(model).head.kind == "knn"


def test_export_picks_a_layer(three_way, tmp_path):
    _, out, _ = three_way
    tk.export_features(out, tmp_path / "l4.npz", layer="layer4")  # the public verb
    with tk.open_features(out) as ff:
        X, _ = ff.load(layers="layer4")
    with np.load(tmp_path / "l4.npz") as z:
        assert np.array_equal(z["features"], X) and json.loads(str(z["provenance"]))["exported_layers"] == ["layer4"]


def test_a_class_with_no_train_rows_is_refused_by_name(tmp_path):
    root = make_split_dataset(tmp_path / "d", {"train": 3, "valid": 2}, skip={("train", "grün stripes")})
    out = tmp_path / "f.h5"
    r = tk.extract(root, out, **MODEL)
    assert r.n_test == 6 and any("train/ has no 'grün stripes'" in n for n in r.notes)
    with pytest.raises(TransferkitError, match="class 'grün stripes' has no rows in the train split"):
        tk.train(out, None, head="knn")


@pytest.mark.slow
def test_update_and_resume_keep_the_folder_split(tmp_path):
    root = make_split_dataset(tmp_path / "flower photos", {"train": 4, "valid": 2})
    out = tmp_path / "f.h5"
    first = run_cli("extract", root, "-o", out, "--model", "timm:resnet18", "--weights", "random", "--image-size", "48",
                    "--batch-size", "8", "--workers", "1", check=True).stdout
    assert "(12 train, 6 test)" in first and "split: from the dataset's split folders" in first
    assert "valid/ is used as the test split" in first
    with tk.open_features(out) as ff:
        before = dict(zip(ff.paths, ff.load()[0]))
    draw("disc", np.random.default_rng(9), 32).save(root / "valid" / "red disc" / "new one.png")
    draw("square", np.random.default_rng(9), 32).save(root / "train" / "blue square" / "new two.png")
    r = tk.extract(root, out, update=True, **MODEL)
    assert r.status == "updated" and r.n_added == 2 and (r.n_train, r.n_test) == (13, 7)
    with tk.open_features(out) as ff:
        split = dict(zip(ff.paths, ff.split))
        assert split["valid/red disc/new one.png"] == TEST and split["train/blue square/new two.png"] == TRAIN
        assert all(split[p] == folder_split(p) for p in split)
        X = dict(zip(ff.paths, ff.load()[0]))
        assert all(np.array_equal(X[p], v) for p, v in before.items())  # kept rows untouched

    out2 = tmp_path / "g.h5"

    def interrupt(done, total):
        if done > 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tk.extract(root, out2, progress=interrupt, buffer_rows=4, **MODEL)
    r = tk.extract(root, out2, resume=True, buffer_rows=4, **MODEL)
    assert r.status == "resumed" and r.split_source == "folders"
    with tk.open_features(out2) as ff:
        assert all(int(s) == folder_split(p) for p, s in zip(ff.paths, ff.split)) and ff.n_rows == 20


def test_updating_a_randomly_split_file_from_split_folders_is_refused(tmp_path):
    root = make_split_dataset(tmp_path / "d", {"train": 2})
    (root / "train").rename(tmp_path / "flat")  # the same classes as plain class folders
    out = tmp_path / "f.h5"
    tk.extract(tmp_path / "flat", out, **MODEL)
    (tmp_path / "flat").rename(root / "train")
    with pytest.raises(TransferkitError, match="split_source 'stratified', this run asks for 'folders'"):
        tk.extract(root, out, update=True, **MODEL)


@pytest.mark.slow
def test_class_folders_named_like_splits_are_extracted_as_classes_with_a_warning(tmp_path):
    root = tmp_path / "d"
    for cls, kind in (("train", "disc"), ("test", "square")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            draw(kind, np.random.default_rng(i), 32).save(root / cls / f"{i}.png")
    r = run_cli("extract", root, "-o", tmp_path / "f.h5", "--model", "timm:resnet18", "--weights", "random",
                "--image-size", "48", "--workers", "1")
    assert r.returncode == 0 and "2 classes" in r.stdout
    assert "warning:" in r.stderr and "read as classes" in r.stderr and "test/<class>/..." in r.stderr
