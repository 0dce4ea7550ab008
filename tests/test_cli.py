"""The `transferkit` command as a user runs it: real subprocesses, real files, one-line errors."""

import csv
import json

import pytest
from conftest import add_bad_files, make_dataset, run_cli

pytestmark = pytest.mark.slow


def test_extract_inspect_train_evaluate_predict(tmp_path):
    data = make_dataset(tmp_path / "my photos", per_class=6)
    add_bad_files(data / "red disc")
    feats, model = tmp_path / "f.h5", tmp_path / "m.safetensors"

    out = run_cli("extract", data, "-o", feats, "--batch-size", "4", check=True).stdout
    assert "18 rows" in out and "4 skipped" in out and "img/s" in out
    assert "empty.jpg: empty file" in out

    info = json.loads(run_cli("inspect", feats, "--json", check=True).stdout)
    assert info["complete"] and info["n_rows"] == 18 and info["feature_dim"] == 1280
    # the split is assigned per file before decoding (stable across runs), so skipped files in
    # "red disc" take their test places with them: 5 or 6 test rows, never more
    assert sum(c["test"] for c in info["classes"].values()) == info["n_test"] in (5, 6)
    assert len(info["skipped"]) == 4 and info["provenance"]["model"] == "efficientnet_lite0"
    text = run_cli("inspect", feats, check=True).stdout
    assert "complete" in text and "grün stripes" in text

    out = run_cli("train", feats, "-o", model, "--cv", "2", check=True).stdout
    assert "best C" in out and "macro avg" in out and "weighted avg" in out and "accuracy" in out

    out = run_cli("evaluate", model, feats, "--json", tmp_path / "metrics.json", check=True).stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_test"] == info["n_test"] and "accuracy" in out
    assert len(metrics["confusion_matrix"]) == 3

    new = make_dataset(tmp_path / "new", per_class=1, seed=3, nested=False)
    (new / "broken.jpg").write_bytes(b"")
    proc = run_cli("predict", model, new, "--top-k", "2", "--csv", tmp_path / "p.csv", check=True)
    assert "3 predicted, 1 skipped" in proc.stdout and "broken.jpg: empty file" in proc.stdout
    all_rows = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    rows = [row for row in all_rows if not row["error"]]  # unreadable files get a row with their reason
    assert [row["path"] for row in all_rows if row["error"]] == [str(new / "broken.jpg")]
    assert len(rows) == 3 and {"path", "label_1", "probability_1", "label_2"} <= set(rows[0])
    names = set(info["classes"])
    assert all(row["label_1"] in names and row["label_2"] in names for row in rows)
    assert sum(row["label_1"] in row["path"] for row in rows) >= 2  # trained on 13 tiny images


@pytest.mark.parametrize("args, message", [
    (["extract", "nowhere", "-o", "f.h5"], "nowhere: no such file or folder"),
    (["inspect", "missing.h5"], "missing.h5: no such file"),
    (["train", "missing.h5", "-o", "m.safetensors"], "missing.h5: no such file"),
    (["predict", "missing.safetensors", "x.jpg"], "missing.safetensors: no such model file"),
])
def test_errors_are_one_red_line_without_traceback(tmp_path, args, message):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


def test_single_class_and_empty_folder(tmp_path):
    data = make_dataset(tmp_path / "d", per_class=2, nested=False)
    proc = run_cli("extract", data / "red disc", "-o", tmp_path / "f.h5")
    assert proc.returncode == 1 and "no class sub-folders" in proc.stderr
    (tmp_path / "one").mkdir()
    (data / "red disc").rename(tmp_path / "one" / "red disc")
    proc = run_cli("extract", tmp_path / "one", "-o", tmp_path / "f.h5")
    assert proc.returncode == 1 and "only one class" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run_cli("extract", tmp_path / "empty", "-o", tmp_path / "f.h5")
    assert proc.returncode == 1 and "no images found" in proc.stderr
    assert not (tmp_path / "f.h5").exists()


def test_predict_exits_non_zero_when_nothing_was_predicted(tmp_path, trained):
    (tmp_path / "bad.png").write_text("not an image")
    proc = run_cli("predict", trained.path, tmp_path / "bad.png")
    assert proc.returncode == 1 and "0 predicted, 1 skipped" in proc.stdout


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli("--debug", "inspect", tmp_path / "missing.h5")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
