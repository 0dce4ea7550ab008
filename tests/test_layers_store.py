"""Several layers in one pass: stored one dataset each, equal to single-layer runs, picked or concatenated
by train, replayed exactly by predict; files without the layers group still read."""

import json

import h5py
import numpy as np
import pytest
from conftest import make_dataset, run_cli

import transferkit as tk
from transferkit.errors import TransferkitError

MODEL = dict(model="timm:resnet18", weights="random", image_size=48)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("layers") / "data", per_class=4)


@pytest.fixture(scope="module")
def multi(tmp_path_factory, small_data):
    out = tmp_path_factory.mktemp("multi") / "multi.h5"
    tk.extract(small_data, out, layer=["layer2", "layer4", "pre_logits"], pool="gem", batch_size=5,
               buffer_rows=4, workers=1, **MODEL)
    return out


def test_multi_layer_layout_and_equality_with_single_layer_runs(multi, small_data, tmp_path):
    with h5py.File(multi, "r") as f:
        assert json.loads(f["layers"].attrs["order"]) == ["layer2", "layer4", "pre_logits"]
        assert f["layers/layer2"] == f["features"]  # a hard link: the first layer is stored once
        assert f["layers/layer4"].shape == (12, 512) and f["layers/pre_logits"].shape == (12, 512)
        assert f["layers/layer4"].attrs["pool"] == "gem" and json.loads(f["layers/layer4"].attrs["shape"]) == [
            512,
            2,
            2,
        ]
        assert f["layers/pre_logits"].attrs["pool"] == "avg"  # the model's own pooling, whatever --pool says
    with tk.open_features(multi) as ff:
        assert [lay["name"] for lay in ff.layers] == ["layer2", "layer4", "pre_logits"]
        assert ff.attrs["layer"] == ["layer2", "layer4", "pre_logits"]
        assert ff.feature_dim == 128
        both, _ = ff.load("train", layers=["layer4", "layer2"])
        l2, _ = ff.load("train", layers="layer2")
        l4, _ = ff.load("train", layers="layer4")
        np.testing.assert_array_equal(both, np.hstack([l4, l2]))
        chunks = np.concatenate([c for c, _ in ff.iter_chunks("train", chunk_rows=3, layers=["layer4", "layer2"])])
        np.testing.assert_array_equal(chunks, both)
        with pytest.raises(TransferkitError, match="has no layer 'layer3'"):
            ff.load(layers="layer3")
        multi_all, _ = ff.load(layers=["layer2", "layer4", "pre_logits"])
    for i, (layer, pool) in enumerate((("layer2", "gem"), ("layer4", "gem"), (None, None))):
        single = tmp_path / f"single{i}.h5"
        tk.extract(small_data, single, layer=layer, pool=pool, batch_size=7, workers=1, **MODEL)
        with tk.open_features(single) as ff:
            X, _ = ff.load()
            assert ff.layers[0]["name"] == (layer or "pre_logits")
        lo = [0, 128, 640][i]
        np.testing.assert_allclose(multi_all[:, lo : lo + X.shape[1]], X, rtol=1e-5, atol=1e-6)


def test_train_on_chosen_layers_and_predict_replays_them(multi, small_data):
    result = tk.train(multi, None, cv=2, layer=["layer4", "pre_logits"])
    model = result.model
    assert model.backbone["layer"] == ["layer4", "pre_logits"] and model.backbone["pool"] == ["gem", "avg"]
    assert model.backbone["weights"] == "random" and model.backbone["preprocess"]["input_size"] == [48, 48]
    metrics = tk.evaluate(model, multi)  # evaluate picks the model's layers out of the file
    assert metrics["split"] == "test" and 0 <= metrics["accuracy"] <= 1
    # predict rebuilds model + weights + layers + pools + preprocessing: same features, same probabilities
    with tk.open_features(multi) as ff:
        X, _ = ff.load(layers=["layer4", "pre_logits"])
        paths = [str(small_data / p) for p in ff.paths]
    expected = model.predict_proba(X)
    pred = tk.predict(model, paths[:5], top_k=3)
    for row, p in zip(expected, pred.predictions):
        order = np.argsort(-row)
        assert p.labels == [model.class_names[j] for j in order]
        np.testing.assert_allclose(p.probabilities, row[order], rtol=1e-4, atol=1e-5)


def test_files_without_layers_group_still_read(tmp_path):
    from transferkit.store import FeatureWriter

    path = tmp_path / "old.h5"
    attrs = {
        "model": "efficientnet_lite0",
        "weights_sha256": "abc",
        "layer": "pre_logits",
        "pool": "avg",
        "preprocess": {"input_size": [224, 224]},
    }
    with FeatureWriter(path, feature_dim=4, label_names=["a", "b"], attrs=attrs) as w:
        w.add(np.eye(4, dtype=np.float32), [0, 1, 0, 1], ["1", "2", "3", "4"], [0, 0, 0, 1])
    with tk.open_features(path) as ff:
        assert ff.layers == [{"name": "pre_logits", "pool": "avg", "dim": 4, "shape": []}]
        assert ff.backbone_spec()["layer"] == "pre_logits" and ff.backbone_spec()["weights"] == "default"
        X, _ = ff.load("train", layers="pre_logits")
        assert X.shape == (3, 4)


@pytest.mark.slow
def test_cli_layers_flags(multi, tmp_path):
    out = tmp_path / "m.safetensors"
    r = run_cli("train", multi, "-o", out, "--cv", "2", "--layer", "layer4", "--layer", "layer2", check=True)
    assert "trained on layer4 + layer2" in r.stdout
    r = run_cli("models", "--layers", "timm:resnet18", "--image-size", "48", "--depth", "1", "--json", check=True)
    rows = {row["name"]: row for row in json.loads(r.stdout)["layers"]}
    assert rows["layer4"]["shape"] == [512, 2, 2] and "layer1.0" not in rows
    r = run_cli("models", "--json", check=True)
    zoo = json.loads(r.stdout)
    assert zoo["efficientnet_lite2"]["offline"] and zoo["efficientnet_lite2"]["input_size"] == [260, 260]
    assert zoo["efficientnet_lite1"]["feature_dim"] == 1280 and 5e6 < zoo["efficientnet_lite1"]["params"] < 6e6
    assert zoo["torchvision:vgg16"]["params"] == 138_357_544 and zoo["torchvision:vgg16"]["feature_dim"] == 4096


def test_update_keeps_every_layer_of_a_multi_layer_file(multi, small_data, tmp_path):
    """The crash-safe working file holds the layers side by side; finishing and --update keep the layout."""
    import shutil

    from conftest import draw

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    out = tmp_path / "multi.h5"
    shutil.copy(multi, out)
    with h5py.File(out, "r+") as f:  # the copy's dataset root is the copied folder
        f.attrs["dataset_root"] = str(data.resolve())
        f.attrs["data"] = str(data.resolve())
    draw("disc", np.random.default_rng(11)).save(data / "red disc" / "zz new.png")
    r = tk.extract(
        data,
        out,
        update=True,
        layer=["layer2", "layer4", "pre_logits"],
        pool="gem",
        batch_size=5,
        buffer_rows=4,
        workers=1,
        **MODEL,
    )
    assert r.status == "updated" and r.n_added == 1 and r.n_rows == 13
    with tk.open_features(multi) as old, tk.open_features(out) as new:
        assert new.complete and [lay["name"] for lay in new.layers] == ["layer2", "layer4", "pre_logits"]
        assert "layers" not in new.attrs  # the working file's description is not left in the finished file
        for name in ("layer2", "layer4", "pre_logits"):
            before, _ = old.load(layers=name)
            after, _ = new.load(layers=name)
            np.testing.assert_array_equal(after[:12], before)  # kept rows, every layer, unchanged
        assert new.paths[:12] == old.paths and new.paths[12] == "red disc/zz new.png"
