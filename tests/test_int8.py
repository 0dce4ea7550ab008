"""--precision int8: the fp32 ONNX graph quantised on the user's images, cached, recorded, close to fp32;
and several layers in one ONNX pass equal to one pass per layer."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.cli._flags import worded
from transferkit.engines import backbone_and_engine
from transferkit.engines.onnx_engine import OnnxEngine, cache_dir, probe_batch
from transferkit.engines.onnx_int8 import (
    MIN_COSINE,
    WARN_COSINE,
    Int8QualityError,
    Int8QualityWarning,
    calibration_sample,
    check_quality,
    row_cosine,
)
from transferkit.errors import TransferkitError


def _images(dataset_dir):
    return sorted(p for p in dataset_dir.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory, dataset_dir, extracted):
    out = tmp_path_factory.mktemp("int8") / "int8.h5"
    tk.extract(dataset_dir, out, precision="int8", batch_size=5, buffer_rows=7)
    return out


def test_int8_file_records_precision_calibration_and_is_close_to_fp32(int8_file, extracted, dataset_dir):
    with tk.open_features(int8_file) as ff:
        attrs = ff.attrs
        X8, y8 = ff.load()
    with tk.open_features(extracted.path) as ff:
        X32, y32 = ff.load()
    assert attrs["precision"] == "int8" and attrs["engine"] == "onnxruntime"
    calib = attrs["calibration"] if isinstance(attrs["calibration"], dict) else json.loads(attrs["calibration"])
    assert calib["images"] == len(_images(dataset_dir))  # fewer than 300: all of them
    assert len(calib["sha256"]) == 64 and calib["settings"]["format"] == "QDQ"
    assert MIN_COSINE <= calib["cosine_mean"] <= 1 and calib["cosine_min"] <= calib["cosine_mean"]
    assert float(attrs["int8_cosine_mean"]) == calib["cosine_mean"]
    np.testing.assert_array_equal(y8, y32)
    cos = row_cosine(X8, X32)
    assert cos.mean() > MIN_COSINE, cos
    assert not np.array_equal(X8, X32)  # really another graph
    graphs = sorted(p.name for p in cache_dir().glob("*-int8-*.onnx"))
    assert calib["graph"] + ".onnx" in graphs


def test_int8_graph_is_cached_and_keyed_on_the_calibration_images(int8_file, dataset_dir):
    images = _images(dataset_dir)
    _, again = backbone_and_engine("efficientnet_lite0", precision="int8", calibration=images)
    assert again.cache_hit and again.precision == "int8"
    with tk.open_features(int8_file) as ff:
        calib = ff.attrs["calibration"]
        calib = calib if isinstance(calib, dict) else json.loads(calib)
        X8, _ = ff.load()
    assert again.path.stem == calib["graph"]
    x = probe_batch((224, 224), 2)
    # other calibration images: another graph, built and cached beside the first
    _, other = backbone_and_engine("efficientnet_lite0", precision="int8", calibration=images[:-3])
    assert not other.cache_hit and other.path != again.path and other.path.exists()
    assert row_cosine(other(x), again(x)).min() > 0.95


def test_calibration_sample_is_deterministic_and_spread():
    paths = [f"c{c}/img{i:03d}.jpg" for c in range(5) for i in range(100)]
    sample = calibration_sample(list(reversed(paths)), n=50)
    assert sample == calibration_sample(paths, n=50) and len(sample) == 50
    assert {p.parent.name for p in sample} == {f"c{c}" for c in range(5)}
    assert calibration_sample(paths[:7], n=50) == sorted(map(type(sample[0]), paths[:7]), key=str)


def test_int8_quality_gate():
    check_quality(0.999, "g")  # fine: no warning
    with pytest.warns(Int8QualityWarning, match="mean cosine 0.9850"):
        check_quality(0.985, "g")
    with pytest.raises(Int8QualityError, match="too far from fp32.*use precision='fp32'") as e:
        check_quality(MIN_COSINE - 0.01, "g")
    assert worded(e.value).endswith("use --precision fp32")  # the CLI words the same advice as its flag
    assert MIN_COSINE < WARN_COSINE < 1


def test_int8_refusals(dataset_dir, extracted):
    with pytest.raises(TransferkitError, match="ONNX Runtime on the CPU"):
        backbone_and_engine("efficientnet_lite0", precision="int8", engine="torch", calibration=_images(dataset_dir))
    with pytest.raises(TransferkitError, match="at least 8 images"):
        backbone_and_engine("efficientnet_lite0", precision="int8", calibration=_images(dataset_dir)[:3])


def test_resume_refuses_another_precision(int8_file, tmp_path, dataset_dir):
    with pytest.raises(TransferkitError, match="precision"):
        tk.extract(dataset_dir, int8_file, update=True, batch_size=5)


def test_several_layers_in_one_onnx_pass_equal_one_pass_per_layer(tmp_path):
    layers = ["pre_logits", "blocks.5", "blocks.4"]
    x = probe_batch((224, 224), 2) * 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        multi = create_backbone("efficientnet_lite0", layer=layers)
        got = OnnxEngine(multi, cache=tmp_path)(x)
        parts = [OnnxEngine(create_backbone("efficientnet_lite0", layer=name), cache=tmp_path)(x) for name in layers]
    assert got.shape == (2, sum(p.shape[1] for p in parts))
    np.testing.assert_allclose(got, np.hstack(parts), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compare_int8_extracts_and_reuses_only_int8_files(int8_file, dataset_dir, tmp_path):
    first = tk.compare(dataset_dir, baseline="none", folds=2, out=tmp_path, precision="int8")
    row = first.rows[0]
    assert row.ok and not row.reused
    with tk.open_features(row.feature_file) as ff:
        assert ff.attrs["precision"] == "int8"
    again = tk.compare(dataset_dir, baseline="none", folds=2, out=tmp_path, precision="int8")
    assert again.rows[0].reused and again.rows[0].feature_file == row.feature_file
    fp32 = tk.compare(dataset_dir, baseline="none", folds=2, out=tmp_path)  # the int8 file is not fp32's
    assert not fp32.rows[0].reused and fp32.rows[0].feature_file != row.feature_file


def test_predict_int8_labels_like_fp32(trained, dataset_dir, int8_file):
    images = _images(dataset_dir)
    fp32 = tk.predict(trained.model, images)
    int8 = tk.predict(trained.model, images, precision="int8")
    assert len(int8.predictions) == len(fp32.predictions) == len(images)
    same = np.mean([a.label == b.label for a, b in zip(int8.predictions, fp32.predictions)])
    assert same >= 0.9, same
