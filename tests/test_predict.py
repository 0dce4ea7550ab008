"""`transferkit predict` over files and folders, with unreadable files, top-k, CSV and JSON."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from conftest import add_bad_files, run_cli

import transferkit as tk


@pytest.fixture()
def inputs(tmp_path, dataset_dir):
    """in/ with good images two folders deep and a folder of unreadable ones."""
    deep = tmp_path / "in" / "nested" / "deeper"
    deep.mkdir(parents=True)
    shutil.copy(dataset_dir / "red disc" / "ïmg 00.jpg", deep / "b disc.jpg")
    shutil.copy(dataset_dir / "blue square" / "ïmg 01.PNG", deep / "a square.PNG")
    shutil.copy(dataset_dir / "grün stripes" / "ïmg 03.bmp", tmp_path / "in" / "z stripes.bmp")
    (tmp_path / "in" / "notes.txt").write_text("not an image name, ignored in folders")
    bad = add_bad_files(tmp_path / "in" / "bad")
    return tmp_path, bad


def test_predict_api_orders_dedupes_and_reports(trained, inputs):
    tmp, bad = inputs
    listed = tmp / "in" / "nested" / "deeper" / "b disc.jpg"  # also inside the folder: predicted once
    r = tk.predict(trained.path, [tmp / "in", tmp / "missing.jpg", listed], top_k=2)
    assert [p.path for p in r.predictions] == [
        str(tmp / "in" / p) for p in ("nested/deeper/a square.PNG", "nested/deeper/b disc.jpg", "z stripes.bmp")
    ]
    assert [p.label for p in r.predictions] == ["blue square", "red disc", "grün stripes"]
    for p in r.predictions:
        assert len(p.labels) == 2 and p.probabilities[0] >= p.probabilities[1] and sum(p.probabilities) <= 1 + 1e-9
    reasons = dict(r.skipped)
    assert reasons[str(tmp / "missing.jpg")] == "file not found"
    for name, keyword in bad.items():
        assert keyword in reasons[str(tmp / "in" / "bad" / name)].lower()
    assert len(r.skipped) == 1 + len(bad)


@pytest.mark.slow
def test_predict_cli_csv_json_and_exit_codes(trained, inputs):
    tmp, bad = inputs
    proc = run_cli(
        "predict", trained.path, "in", "missing.jpg", "--top-k", "5", "--csv", "out.csv", "--json", "out.json", cwd=tmp
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 predicted, 5 skipped" in proc.stdout and "missing.jpg: file not found" in proc.stdout
    assert "in/nested/deeper/a square.PNG" in proc.stdout.replace("\n│", "")  # relative paths, as given

    rows = list(csv.DictReader(open(tmp / "out.csv", encoding="utf-8")))
    assert list(rows[0]) == [
        "path",
        "label_1",
        "probability_1",
        "label_2",
        "probability_2",
        "label_3",
        "probability_3",
        "error",
    ]
    assert [r["path"] for r in rows[:3]] == [
        "in/nested/deeper/a square.PNG",
        "in/nested/deeper/b disc.jpg",
        "in/z stripes.bmp",
    ]
    assert [r["label_1"] for r in rows[:3]] == ["blue square", "red disc", "grün stripes"]
    assert all(
        r["error"] == "" and abs(sum(float(r[f"probability_{i}"]) for i in (1, 2, 3)) - 1) < 1e-5 for r in rows[:3]
    )
    assert {r["path"]: r["error"] for r in rows[3:]}["missing.jpg"] == "file not found" and len(rows) == 8

    data = json.loads((tmp / "out.json").read_text(encoding="utf-8"))
    assert data["top_k"] == 3 and [p["path"] for p in data["predictions"]] == [r["path"] for r in rows[:3]]
    assert {s["path"] for s in data["skipped"]} == {"missing.jpg"} | {f"in/bad/{n}" for n in bad}


def test_predict_cli_nothing_readable_exits_1_and_json_to_stdout(trained, inputs, monkeypatch):
    from typer.testing import CliRunner

    from transferkit.cli import app

    tmp, bad = inputs
    monkeypatch.chdir(tmp)
    res = CliRunner().invoke(
        app, ["predict", str(trained.path), "in/bad", "--json", "-"]
    )  # in-process: no second torch start-up
    assert res.exit_code == 1 and "no image could be read" in res.stderr
    data = json.loads(res.stdout)  # --json - keeps standard output pure JSON
    assert data["predictions"] == [] and {s["path"] for s in data["skipped"]} == {f"in/bad/{n}" for n in bad}
