"""The front door for backbones: ``create_backbone(name)`` returns a ready, eval-mode :class:`Backbone`."""

from __future__ import annotations

from ..errors import TransferkitError
from .backbone import Backbone
from .lite import LITE_MODELS, file_sha256, lite_weights_path, load_lite_state_dict
from .preprocess import PreprocessConfig

DEFAULT_MODEL = "efficientnet_lite0"


def available_models() -> dict[str, dict]:
    """Offline backbones and whether their weights are installed right now."""
    return {
        name: {"architecture": arch, "package": dist, "offline": lite_weights_path(name) is not None}
        for name, (arch, _, dist) in LITE_MODELS.items()
    }


def create_backbone(
    name: str = DEFAULT_MODEL,
    *,
    weights: str | None = None,
    layer: str | None = None,
    pool: str = "avg",
) -> Backbone:
    """A ready, eval-mode backbone.

    ``weights``: a local weights file to load instead of the default ones; ``layer``: the named layer
    whose output is kept (None: the pooled pre-logits features); ``pool``: how spatial outputs are
    reduced to a vector. (The foundation supports the offline Lite models with their default layer
    and average pooling; the model-zoo work extends all three.)
    """
    import timm

    from .modules import PreLogits

    if weights is not None or layer not in (None, "pre_logits") or pool != "avg":
        raise TransferkitError(
            f"{name}: custom weights, layers and pooling are not supported by this version "
            "(only the pooled pre-logits features with the packaged weights)"
        )
    if name not in LITE_MODELS:
        raise TransferkitError(
            f"{name}: unknown model; offline models available: {', '.join(LITE_MODELS)}"
        )
    arch = LITE_MODELS[name][0]
    net = timm.create_model(arch, pretrained=False)
    net.load_state_dict(load_lite_state_dict(name, net.state_dict()), strict=True)
    net.eval()
    data_config = timm.data.resolve_data_config({}, model=net)
    return Backbone(
        name=name,
        net=net,
        features=PreLogits(net).eval(),
        preprocess=PreprocessConfig.from_timm(data_config),
        weights_sha256=file_sha256(lite_weights_path(name)),
        feature_dim=int(net.num_features),
    )


def check_spec(spec: dict, backbone: Backbone, origin: str) -> None:
    """Refuse to replay ``spec`` with a backbone whose weights differ from the recorded ones."""
    if spec.get("weights_sha256") and spec["weights_sha256"] != backbone.weights_sha256:
        raise TransferkitError(
            f"{origin}: was made with {spec['model']} weights {spec['weights_sha256'][:12]}…, "
            f"but the installed weights are {backbone.weights_sha256[:12]}…"
        )
