"""Engines against the PyTorch fp32 reference on the same images; the ONNX cache; fallbacks; ordering."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import add_bad_files, make_dataset

from transferkit.backbones import Backbone, PreprocessConfig, create_backbone
from transferkit.data import list_images
from transferkit.engines import (
    EngineFallbackWarning,
    TorchEngine,
    create_engine,
    iter_batches,
    resolve_batch_size,
    resolve_device,
)
from transferkit.engines.onnx_engine import OnnxEngine, cache_dir, tolerance
from transferkit.engines.static_pad import freeze_same_padding
from transferkit.errors import TransferkitError

PALACE, DAISY = 698, 985  # ImageNet classes of scikit-learn's china.jpg and flower.jpg


@pytest.fixture(scope="module")
def lite0():
    return create_backbone()


@pytest.fixture(scope="module")
def images(tmp_path_factory, lite0):
    """Generated pictures plus scikit-learn's two sample photos, preprocessed as extraction does."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    root = make_dataset(tmp_path_factory.mktemp("engine-data"), per_class=2)
    arrays = [lite0.preprocess.to_array(Image.fromarray(load_sample_image(n))) for n in ("china.jpg", "flower.jpg")]
    batch = next(iter_batches(list_images(root), lite0.preprocess, batch_size=64))
    return np.concatenate([np.stack(arrays), batch.arrays])


@pytest.fixture(scope="module")
def lite0_ref(lite0, images):
    return reference(lite0.features, images)


def reference(module, x: np.ndarray) -> np.ndarray:
    """Plain eager fp32 PyTorch, no engine involved."""
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def test_freeze_same_padding_is_exact_for_lite0(lite0, images, lite0_ref):
    frozen, n = freeze_same_padding(lite0.features, lite0.preprocess.input_size)
    assert n == 5  # Lite0's stride-2 convolutions
    assert np.array_equal(reference(frozen, images[:3]), lite0_ref[:3])


def test_freeze_same_padding_pools():
    from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame

    net = torch.nn.Sequential(MaxPool2dSame(3, 2), AvgPool2dSame(3, 2), torch.nn.Flatten())
    x = torch.randn(2, 3, 15, 15) - 3  # negative values: -inf padding must matter for the max pool
    frozen, n = freeze_same_padding(net, (15, 15))
    assert n == 2
    with torch.inference_mode():
        assert torch.equal(frozen(x), net(x))


def test_onnxruntime_matches_torch_fp32(lite0, images, lite0_ref):
    engine = create_engine(lite0, engine="onnxruntime", device="cpu")
    assert engine.name == "onnxruntime" and engine.precision == "fp32"
    ref = lite0_ref
    got = engine(images)
    assert got.shape == ref.shape == (len(images), 1280)
    assert np.abs(got - ref).max() <= 1e-4
    # dynamic batch: one image at a time gives the same rows
    assert np.abs(engine(images[:1]) - ref[:1]).max() <= 1e-4


def test_torch_fp32_channels_last_matches_reference(lite0, images, lite0_ref):
    engine = TorchEngine(lite0.features, device="cpu", precision="fp32")
    assert np.abs(engine(images) - lite0_ref).max() <= 1e-4


def test_torch_bf16_features_close_and_same_top1(lite0, images, lite0_ref):
    """bf16 autocast (8-bit mantissa): features within 10 % relative L2 of fp32 (measured 3-6 %),
    cosine similarity above 0.99, and the same ImageNet top-1 on the sample photos."""
    ref = lite0_ref
    got = TorchEngine(lite0.features, device="cpu", precision="bf16")(images)
    rel = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 0.10 and cos.min() > 0.99
    logits = TorchEngine(lite0.net, device="cpu", precision="bf16")(images[:2])
    assert list(logits.argmax(1)) == [PALACE, DAISY]


@pytest.mark.slow
def test_onnx_full_classifier_top1(lite0, images):
    """The whole network through ONNX Runtime: real weights give palace and daisy."""
    whole = dataclasses.replace(lite0, features=lite0.net, layer="logits")
    logits = OnnxEngine(whole)(images[:2])
    assert list(logits.argmax(1)) == [PALACE, DAISY]
    assert np.abs(logits - reference(lite0.net, images[:2])).max() <= tolerance(logits)


def test_cache_hit_and_invalidation(lite0, images, lite0_ref):
    first = OnnxEngine(lite0)  # exported here or by an earlier test: same cache either way
    assert first.path.exists() and first.path.with_suffix(".json").exists()
    mtime = first.path.stat().st_mtime_ns
    second = OnnxEngine(lite0)
    assert second.cache_hit and second.path == first.path and first.path.stat().st_mtime_ns == mtime
    assert np.array_equal(second(images[:2]), first(images[:2]))
    # Same model name and recorded weights hash, different tensors: must export again, never replay.
    changed = dataclasses.replace(lite0, features=copy.deepcopy(lite0.features))
    with torch.no_grad():
        changed.features.net.conv_stem.weight.mul_(0.5)
    third = OnnxEngine(changed)
    assert not third.cache_hit and third.path != first.path and third.path.parent == first.path.parent
    got = third(images[:2])
    assert np.abs(got - reference(changed.features, images[:2])).max() <= 1e-4
    assert np.abs(got - lite0_ref[:2]).max() > 1e-2


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" / "onnx"
    monkeypatch.delenv("TRANSFERKIT_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "transferkit" / "onnx"


def _backbone(module, size=(16, 16), dim=3) -> Backbone:
    return Backbone(name="custom", net=module, features=module, preprocess=PreprocessConfig(input_size=size),
                    weights_sha256="none", feature_dim=dim)


class Bessel(torch.nn.Module):
    """A feature extractor using an op with no ONNX counterpart (aten::i0)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3)

    def forward(self, x):
        return torch.special.i0(self.conv(x)).mean((2, 3))


class BatchSpecialised(torch.nn.Module):
    """Exports, but wrongly: the tracer bakes the probe's batch size into a Python branch."""

    def forward(self, x):
        scale = 2.0 if x.shape[0] == 2 else 1.0
        return x.mean((2, 3)) * scale


@pytest.mark.parametrize("module, reason", [(Bessel(), "i0"), (BatchSpecialised(), "differs from PyTorch")])
@pytest.mark.parametrize("engine", ["onnxruntime", "auto"])
def test_fallback_to_torch_when_export_fails(module, reason, engine):
    backbone = _backbone(module.eval())
    x = np.random.default_rng(1).normal(size=(3, 3, 16, 16)).astype(np.float32)
    with pytest.warns(EngineFallbackWarning, match=reason):
        chosen = create_engine(backbone, engine=engine, device="cpu")
    assert chosen.name == "torch"
    assert np.abs(chosen(x) - reference(module, x)).max() <= 1e-5


def test_engine_choice_and_errors(lite0):
    assert create_engine(lite0, device="cpu", precision="bf16").name == "torch"
    with pytest.raises(TransferkitError, match="fp16"):
        create_engine(lite0, engine="torch", device="cpu", precision="fp16")
    with pytest.raises(TransferkitError, match="fp32"):
        create_engine(lite0, engine="onnxruntime", device="cpu", precision="bf16")
    with pytest.raises(TransferkitError, match="unknown engine"):
        create_engine(lite0, engine="tensorrt")
    with pytest.raises(TransferkitError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(TransferkitError, match="no CUDA GPU"):
            resolve_device("cuda:0")
    assert resolve_batch_size("auto", None) == 32 and resolve_batch_size("7", None) == 7
    for bad in ("0", "many", -3):
        with pytest.raises(TransferkitError, match="batch size"):
            resolve_batch_size(bad, None)


def test_many_workers_keep_order_and_rows(tmp_path, lite0):
    root = make_dataset(tmp_path / "d", per_class=6)
    expected_bad = add_bad_files(root / "red disc")
    paths = list_images(root)
    paths = paths + paths[::-1]  # duplicates and a reversed tail: order must follow the list exactly
    simple = list(iter_batches(paths, lite0.preprocess, batch_size=5, workers=1))
    many = list(iter_batches(paths, lite0.preprocess, batch_size=5, workers=8))
    seen = [i for b in many for i in b.indices]
    assert seen == sorted(seen) and len(seen) == len(paths) - 2 * len(expected_bad)
    assert [b.indices for b in many] == [b.indices for b in simple]
    assert [b.failures for b in many] == [b.failures for b in simple]
    for a, b in zip(simple, many):
        assert np.array_equal(a.arrays, b.arrays)


@pytest.mark.slow
def test_extract_records_engine_and_rows_match_torch(tmp_path, dataset_dir):
    import transferkit as tk
    from transferkit.store import open_features

    fast = tk.extract(dataset_dir, tmp_path / "fast.h5", batch_size=4, workers=6)
    simple = tk.extract(dataset_dir, tmp_path / "simple.h5", batch_size=4, workers=1, engine="torch",
                        precision="fp32", device="cpu")
    with open_features(fast.path) as f, open_features(simple.path) as s:
        assert f.attrs["engine"] == "onnxruntime" and s.attrs["engine"] == "torch"
        assert f.attrs["precision"] == "fp32" and f.attrs["device"] == "cpu"
        assert list(f.paths) == list(s.paths)
        assert np.abs(f.h5["features"][:] - s.h5["features"][:]).max() <= 1e-4


@pytest.mark.slow
def test_cli_engine_options(tmp_path, dataset_dir):
    from conftest import run_cli

    from transferkit.store import open_features

    out = tmp_path / "bf16.h5"
    run_cli("extract", dataset_dir, "-o", out, "--engine", "torch", "--precision", "bf16", "--batch-size", "auto",
            check=True)
    with open_features(out) as f:
        got = (f.attrs["engine"], f.attrs["precision"], f.attrs["device"], f.attrs["batch_size"])
        assert got == ("torch", "bf16", "cpu", 32)
    bad = run_cli("extract", dataset_dir, "-o", tmp_path / "x.h5", "--device", "cpu", "--precision", "fp16")
    assert bad.returncode == 1 and "fp16" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.h5").exists()
