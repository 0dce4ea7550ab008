"""Calibration: ECE in evaluate's metrics, `train --calibrate temperature` (stored in the model file, used
by predict/evaluate/export), and the report's reliability diagram, feature map and nearest training images."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from mislabeled import make_mislabeled

import transferkit as tk
from transferkit.evaluate.calibration import expected_calibration_error, reliability_bins
from transferkit.heads._common import softmax
from transferkit.heads.torch_modules import TemperatureScaled
from transferkit.store.writer import FeatureWriter


def test_ece_by_hand():
    # two bins used: confidence 0.9 (2 rows, 1 right) and 0.6 (2 rows, 2 right)
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, proba, n_bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert sum(b["count"] for b in reliability_bins(y, proba)) == 4


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    """Overlapping classes in many dimensions: a nearly unregularised logistic head is over-confident."""
    rng = np.random.default_rng(0)
    n, d, k = 900, 60, 4
    y = np.arange(n) % k
    X = (rng.standard_normal((k, d))[y] * 0.35 + rng.standard_normal((n, d))).astype(np.float32)
    split = (rng.random(n) < 0.35).astype(np.uint8)
    attrs = {"model": "synthetic", "weights_sha256": "none", "layer": "pre_logits", "pool": "avg", "preprocess": {}}
    path = tmp_path_factory.mktemp("cal") / "overlap.h5"
    with FeatureWriter(path, feature_dim=d, label_names=[f"c{i}" for i in range(k)], attrs=attrs) as w:
        w.add(X, y, [f"r{i}" for i in range(n)], split)
    return path


def test_temperature_scaling_lowers_ece_of_an_overconfident_head(overlapping, tmp_path):
    plain = tk.train(overlapping, tmp_path / "plain.safetensors", Cs=[1e4])
    cal = tk.train(overlapping, tmp_path / "cal.safetensors", Cs=[1e4], calibrate="temperature")
    T = cal.model.calibration["temperature"]
    assert T > 1.5  # over-confident: the temperature softens it
    assert cal.metrics["accuracy"] == plain.metrics["accuracy"]  # predictions unchanged
    assert cal.metrics["ece"] < 0.6 * plain.metrics["ece"], (plain.metrics["ece"], cal.metrics["ece"])
    before, after = cal.model.calibration["oof_ece"]
    assert after < before
    # stored in the model file; evaluate and predict_proba use it
    loaded = tk.load_model(tmp_path / "cal.safetensors")
    assert loaded.calibration["temperature"] == pytest.approx(T)
    m = tk.evaluate(loaded, overlapping)
    assert m["ece"] == pytest.approx(cal.metrics["ece"]) and m["model"]["calibration"]["temperature"] == pytest.approx(
        T
    )
    with tk.open_features(overlapping) as ff:
        X, _ = ff.load("test")
    np.testing.assert_allclose(loaded.predict_proba(X), softmax(loaded.head.decision_function(X) / T), atol=1e-6)
    # export's torch graph applies the same temperature (float32 softmax inside: within export's 1e-4)
    with torch.inference_mode():
        got = TemperatureScaled(loaded.head.to_torch(), T)(torch.from_numpy(X[:50])).numpy()
    np.testing.assert_allclose(got, loaded.predict_proba(X[:50]), atol=1e-4)
    assert tk.load_model(tmp_path / "plain.safetensors").calibration is None


@pytest.mark.slow
def test_report_shows_reliability_map_and_nearest_training_images(tmp_path):
    ds = make_mislabeled(tmp_path / "data")
    features = tk.extract(ds.manifest, tmp_path / "f.h5", batch_size=16).path
    model = tk.train(features, tmp_path / "m.safetensors", cv=3).path
    m = tk.evaluate(model, features, html=tmp_path / "r.html")
    assert "ece" in m and 0.0 <= m["ece"] <= 1.0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="calibration"' in page and 'id="feature-map"' in page and "t-SNE" in page
    cards = re.findall(r'<div class="card[^"]*" data-path="([^"]+)".*?(?=<div class="card|</section>)', page, re.S)
    assert sorted(cards) == sorted(ds.errors)
    for path, (_, drawn) in ds.errors.items():
        card = page[page.index(f'data-path="{path}"') :]
        card = card[: card.index("</div>\n    </div>") if "</div>\n    </div>" in card else 4000]
        labels = re.findall(r'<figure data-path="[^"]+" data-label="([^"]+)"', card)[:3]
        assert len(labels) == 3
        assert labels.count(drawn) >= 2, (path, drawn, labels)  # it looks like the class it was drawn as


@pytest.mark.slow
def test_cli_train_calibrate_and_evaluate_json_has_ece(overlapping, tmp_path):
    import json

    from conftest import run_cli

    model, metrics = tmp_path / "m.safetensors", tmp_path / "metrics.json"
    out = run_cli("train", overlapping, "-o", model, "--C", "10000", "--calibrate", "temperature", check=True).stdout
    assert "temperature T = " in out
    run_cli("evaluate", model, overlapping, "--json", metrics, check=True)
    m = json.loads(metrics.read_text())
    assert 0.0 <= m["ece"] < 0.1 and m["model"]["calibration"]["method"] == "temperature"
    assert run_cli("train", overlapping, "-o", model, "--calibrate", "platt").returncode == 1
