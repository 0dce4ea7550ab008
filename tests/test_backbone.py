"""The offline default backbone: real weights, mapped one to one, and the timm-equivalent preprocessing."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from transferkit.backbones import create_backbone
from transferkit.backbones.lite import lite_weights_path, map_by_position
from transferkit.errors import TransferkitError


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet_lite0")


def test_packaged_state_dict_maps_one_to_one_onto_timm(lite0):
    source = torch.load(lite_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    target = lite0.net.state_dict()
    assert len(source) == len(target) == 296
    for (sk, sv), (tk_, tv) in zip(source.items(), target.items()):
        assert tuple(sv.shape) == tuple(tv.shape), (sk, tk_)
        assert torch.equal(sv.to(tv.dtype), tv), f"{tk_} was not loaded from {sk}"


def test_shape_mismatch_is_an_error_not_a_partial_load(lite0):
    target = lite0.net.state_dict()
    source = dict(target)
    first = next(iter(source))
    source[first] = torch.zeros(1, 2, 3)
    with pytest.raises(TransferkitError, match=r"has shape \(1, 2, 3\)"):
        map_by_position(source, target, "weights.pth")
    with pytest.raises(TransferkitError, match="holds 295 tensors but the architecture has 296"):
        map_by_position(dict(list(target.items())[:-1]), target, "weights.pth")


@pytest.mark.parametrize("photo, imagenet_class", [("china.jpg", 698), ("flower.jpg", 985)])
def test_sample_photos_get_their_imagenet_class(lite0, photo, imagenet_class):
    x = lite0.preprocess.to_array(Image.fromarray(load_sample_image(photo)))[None]
    assert int(lite0.classify(x)[0].argmax()) == imagenet_class


def test_preprocessing_comes_from_the_pretrained_config_and_matches_timm(lite0):
    import timm

    p = lite0.preprocess
    assert p.input_size == (224, 224) and p.interpolation == "bicubic" and p.crop_pct == 0.875
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.5, 0.5, 0.5)
    assert p.resize_shorter == 256
    timm_tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=lite0.net))
    for photo in ("china.jpg", "flower.jpg"):
        img = Image.fromarray(load_sample_image(photo))
        ours = p.to_array(img)
        theirs = timm_tf(img).numpy()
        assert ours.shape == theirs.shape == (3, 224, 224)
        assert np.abs(ours - theirs).max() < 1e-5
    # a portrait picture and a tiny one (smaller than the crop) go through the same rules
    tall = Image.fromarray(load_sample_image("china.jpg")).transpose(Image.Transpose.ROTATE_90).resize((50, 90))
    assert np.abs(p.to_array(tall) - timm_tf(tall).numpy()).max() < 1e-5


def test_features_are_the_pooled_pre_logits(lite0):
    x = lite0.preprocess.to_array(Image.fromarray(load_sample_image("china.jpg")))[None]
    with torch.inference_mode():
        feats = lite0.features(torch.from_numpy(x))
        logits = lite0.net(torch.from_numpy(x))
        # the classifier applied to our features gives the network's logits: nothing else was cut
        assert torch.allclose(lite0.net.get_classifier()(feats), logits, atol=1e-4)
    assert feats.shape == (1, 1280) and lite0.feature_dim == 1280
    spec = lite0.spec()
    assert spec["model"] == "efficientnet_lite0" and spec["layer"] == "pre_logits" and spec["pool"] == "avg"
    assert len(spec["weights_sha256"]) == 64


def test_unknown_model_names_the_offline_alternatives():
    with pytest.raises(TransferkitError, match="unknown model.*efficientnet_lite0"):
        create_backbone("resnet9000")


def test_spec_difference_names_the_first_key_that_changes_the_features():
    from transferkit.backbones.backbone import spec_difference

    spec = {"model": "m", "weights_sha256": "ab", "layer": "x", "pool": "avg", "preprocess": {"input_size": (8, 8)},
            "weights_source": "here"}
    stored = {**spec, "preprocess": {"input_size": [8, 8]}, "weights_source": "elsewhere"}  # as a file stores it
    assert spec_difference(spec, stored) is None
    assert spec_difference(spec, {**stored, "pool": "max"}) == "pool"
    assert spec_difference(spec, {**stored, "layer": ["x", "y"], "weights_sha256": "cd"}) == "weights_sha256"
