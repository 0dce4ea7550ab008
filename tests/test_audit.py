"""`transferkit audit`: planted label noise and planted duplicates are found; exact blockwise neighbours;
the CSV/JSON/HTML outputs as a user reads them."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from conftest import run_cli

import transferkit as tk
from transferkit.audit.label_issues import find_label_issues, label_scores
from transferkit.audit.neighbours import nearest, self_neighbours, unit_rows
from transferkit.store.writer import FeatureWriter

ATTRS = {"model": "synthetic", "weights_sha256": "none", "layer": "pre_logits", "pool": "avg", "preprocess": {}}


def test_blockwise_neighbours_equal_brute_force():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((530, 16)).astype(np.float32)
    X[400] = X[7] * 2.0  # same direction: cosine 1
    U = unit_rows(X)
    nb = self_neighbours(U, k=4, threshold=0.55, budget=16 * 64**2)  # 64-row blocks: 9 x 9 of them, halved
    S = U.astype(np.float64) @ U.T.astype(np.float64)
    np.fill_diagonal(S, -np.inf)
    order = np.argsort(-S, axis=1)[:, :4]
    np.testing.assert_allclose(nb.similarity, np.take_along_axis(S, order, axis=1), atol=1e-5)
    assert (nb.index == order).mean() > 0.99  # equal up to exact ties
    i, j = np.nonzero(np.triu(S >= 0.55, 1))
    assert set(zip(i.tolist(), j.tolist())) == set(map(tuple, nb.pairs.tolist())) and (7, 400) in set(
        map(tuple, nb.pairs.tolist())
    )
    idx, sim = nearest(U[:30], U, 3, exclude=np.arange(30), budget=16 * 50**2)
    assert (idx == order[:30, :3]).all()


def test_label_scores_and_suggestions():
    proba = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    y = np.array([0, 0, 2, 0])
    np.testing.assert_allclose(label_scores(proba, y), [0.1, 0.9, 0.5, 0.4])
    np.testing.assert_allclose(
        label_scores(proba, y, "margin"), [(1 - 0.85) / 2, (1 + 0.7) / 2, (1 - 0.2) / 2, (1 - 0.3) / 2]
    )
    issues = find_label_issues(proba, y)
    assert issues.rows.tolist() == [1] and issues.suggested[1] == 1


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """scikit-learn's digits as features: 5 % of the labels flipped, 12 rows planted twice (4 within train,
    4 within test, 4 across the split: leakage)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    n = len(y)
    split = (rng.random(n) < 0.25).astype(np.uint8)
    paths = [f"{y[i]}/img{i:04d}.png" for i in range(n)]
    noisy = y.copy()
    flip = rng.choice(n, int(0.05 * n), replace=False)
    noisy[flip] = (y[flip] + rng.integers(1, 10, len(flip))) % 10
    originals = {"train": np.flatnonzero(split == 0), "test": np.flatnonzero(split == 1)}
    extra_X, extra_y, extra_paths, extra_split, pairs = [], [], [], [], []
    for where, src_split, dst_split in (("train", "train", 0), ("test", "test", 1), ("leak", "train", 1)):
        for i in rng.choice(np.setdiff1d(originals[src_split], flip), 4, replace=False):
            extra_X.append(X[i]), extra_y.append(noisy[i]), extra_split.append(dst_split)
            extra_paths.append(f"copies/{where} {i}.png")
            pairs.append((paths[i], extra_paths[-1], where))
    path = tmp_path_factory.mktemp("audit") / "digits.h5"
    with FeatureWriter(path, feature_dim=64, label_names=[str(d) for d in range(10)], attrs=ATTRS) as w:
        w.add(X.astype(np.float32), noisy, paths, split)
        w.add(np.array(extra_X, np.float32), extra_y, extra_paths, np.array(extra_split, np.uint8))
    return path, {paths[i] for i in flip}, pairs, n + len(extra_y)


def test_planted_label_noise_and_duplicates_are_found(planted):
    path, flipped, pairs, n = planted
    result = tk.audit(path)
    issues = result.of_kind("label_issue")
    top = {f.path for f in issues[: int(0.10 * n)]}  # a review budget of 10 % of the images
    recall = len(flipped & top) / len(flipped)
    assert recall >= 0.8, recall
    assert all(f.suggested_label != f.label for f in issues)
    found = {frozenset((f.path, f.other_path)): f for f in result.of_kind("duplicate")}
    for a, b, where in pairs:
        f = found[frozenset((a, b))]  # every planted pair
        assert f.score >= 0.99999 and f.detail["exact"]
        assert f.detail["leakage"] == (where == "leak")
        if where == "leak":
            assert f.path == b and f.detail["split"] == "test" and f.detail["other_split"] == "train"
    s = result.summary
    assert s["duplicates"]["leakage"] >= 4 and s["counts"]["label_issue"] == len(issues)
    assert sum(c["label_issue"] for c in s["per_class"].values()) == len(issues)
    assert s["imbalance"]["ratio"] >= 1.0


def test_margin_score_also_finds_the_noise(planted):
    path, flipped, _, n = planted
    issues = tk.audit(path, score="margin", folds=3).of_kind("label_issue")
    assert len(flipped & {f.path for f in issues[: int(0.10 * n)]}) / len(flipped) >= 0.8


@pytest.mark.slow
def test_cli_audit_writes_csv_json_and_html(extracted, trained, tmp_path):
    out_csv, out_html = tmp_path / "findings.csv", tmp_path / "audit.html"
    proc = run_cli(
        "audit",
        extracted.path,
        "--model",
        trained.path,
        "--csv",
        out_csv,
        "--html",
        out_html,
        "--folds",
        "3",
        "--json",
        check=True,
    )
    doc = json.loads(proc.stdout)
    rows = list(csv.reader(io.StringIO(out_csv.read_text(encoding="utf-8"))))
    assert rows[0] == ["kind", "path", "score", "label", "suggested_label", "other_path"]
    body = rows[1:]
    assert [(r[0], -float(r[2])) for r in body] == sorted((r[0], -float(r[2])) for r in body)
    assert {r[0] for r in body} <= {"label_issue", "duplicate", "outlier"}
    assert len(body) == len(doc["findings"]) and doc["summary"]["rows"] == 24
    assert "logreg" in doc["summary"]["settings"]["head"] and str(trained.path) in doc["summary"]["settings"]["head"]
    page = out_html.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and 'id="leakage"' in page
    for r in body:
        assert r[1] in page
    if body:
        assert "data:image/jpeg;base64," in page  # real thumbnails of the real images
    proc = run_cli("audit", extracted.path, "--model", trained.path, "--folds", "3", check=True)
    assert "train/test leakage" in proc.stdout and "label issues" in proc.stdout


def test_audit_refuses_a_model_of_another_backbone(planted, trained):
    from transferkit.errors import TransferkitError

    with pytest.raises(TransferkitError, match="different"):
        tk.audit(planted[0], trained.path)
