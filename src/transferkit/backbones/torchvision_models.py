"""Any torchvision classification model (``torchvision:<name>`` or ``torchvision:<name>.<WEIGHTS>``, e.g.
``torchvision:resnet50.IMAGENET1K_V2``; default: the model's ``DEFAULT`` weights).

Preprocessing comes from the weights enum's eval transform (resize, crop, interpolation, mean, std).
Hub weights are loaded by torchvision from torch.hub's cache (``~/.cache/torch/hub/checkpoints``), which
is checked first; when they are not there the download host is probed before torchvision tries, so an
offline machine gets a clear one-line error at once.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import AdvisedError, TransferkitError, first_line
from .loaded import LoadedNet
from .preprocess import PreprocessConfig
from .weights import (
    file_sha256,
    fit_state_dict,
    hub_offline,
    random_init,
    reachable,
    read_weights_file,
    state_dict_sha256,
    torch_hub_cached,
    unavailable,
)

_IMAGENET = PreprocessConfig(input_size=(224, 224), interpolation="bilinear", crop_pct=0.875)
# where the unpooled final features of each architecture live: (module, "input" | "output"), tried in order
_FINAL_MAPS = (
    ("avgpool", "input"),
    ("features", "output"),
    ("encoder", "output"),
    ("layers", "output"),
    ("conv5", "output"),
)


def classification_models() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def split_name(spec: str, name: str) -> tuple[str, str | None]:
    arch, _, tag = spec.partition(".")
    if arch not in classification_models():
        raise TransferkitError(
            f"{name}: torchvision has no classification model {arch!r} "
            f"(e.g. {', '.join(m for m in ('resnet50', 'vgg16', 'vit_b_16', 'convnext_tiny'))}; "
            "see torchvision.models.list_models())"
        )
    return arch, tag or None


def weights_enum(arch: str, tag: str | None, name: str):
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch)
    except (ValueError, KeyError):
        return None
    if tag is None:
        return enum.DEFAULT
    try:
        return enum[tag]
    except KeyError:
        raise TransferkitError(f"{name}: no weights {tag!r}; choose from {', '.join(enum.__members__)}") from None


def preprocess_of(w) -> PreprocessConfig:
    if w is None:
        return _IMAGENET
    t = w.transforms()
    crop = int(t.crop_size[0])
    resize = int(t.resize_size[0]) if t.resize_size else crop
    return PreprocessConfig(
        input_size=(crop, crop),
        interpolation=str(t.interpolation.value),
        crop_pct=min(1.0, crop / resize),
        mean=tuple(float(v) for v in t.mean),
        std=tuple(float(v) for v in t.std),
    )


def default_preprocess(spec: str, name: str) -> tuple[PreprocessConfig, bool]:
    arch, tag = split_name(spec, name)
    w = weights_enum(arch, tag, name)
    # torchvision's ViTs are built for one image size (their position embeddings); Swin & co. adapt
    return preprocess_of(w), arch.startswith("vit_")


def hub_file(spec: str, name: str = "") -> tuple[str, Path | None]:
    arch, tag = split_name(spec, name or spec)
    w = weights_enum(arch, tag, name or spec)
    if w is None:
        return "", None
    return f"url:{w.url}", torch_hub_cached(w.url)


def build_torchvision(
    name: str, spec: str, weights: str | None, input_size: tuple[int, int] | None = None
) -> LoadedNet:
    from torchvision.models import get_model

    arch, tag = split_name(spec, name)
    w = weights_enum(arch, tag, name)
    preprocess, fixed = default_preprocess(spec, name)
    kwargs = {}
    if input_size and tuple(input_size) != tuple(preprocess.input_size) and fixed:
        if weights is None:
            raise AdvisedError(
                "{name}: its pretrained weights only work at {size}; drop {o[image_size]}, or use the timm version of "
                "this model", name=name, size=f"{preprocess.input_size[0]}x{preprocess.input_size[1]}",
            )
        kwargs["image_size"] = int(input_size[0])
    try:
        if weights is None:
            if w is None:
                raise unavailable(name, "torchvision has no pretrained weights for it")
            if not torch_hub_cached(w.url) and (hub_offline() or not reachable(w.url)):
                raise unavailable(
                    name, f"{Path(w.url).name} is not in the torch hub cache and the download host cannot be reached"
                )
            try:
                net = get_model(arch, weights=w)
            except (OSError, RuntimeError) as exc:
                raise unavailable(name, f"download of {w.url} failed: {first_line(exc, 160)}") from None
            path = torch_hub_cached(w.url)
            sha, source = (file_sha256(path), f"url:{w.url}") if path else (state_dict_sha256(net), f"url:{w.url}")
        elif weights == "random":
            net = random_init(lambda: get_model(arch, weights=None, **kwargs))
            sha, source = state_dict_sha256(net), "random"
        else:
            net = get_model(arch, weights=None, **kwargs)
            state = read_weights_file(weights)
            fit_state_dict(net, state, str(weights), classifier_prefixes=_classifier_names(net))
            sha, source = file_sha256(weights), f"file:{Path(weights).resolve()}"
    except TransferkitError:
        raise
    except (TypeError, ValueError, AssertionError) as exc:
        raise TransferkitError(
            f"{name}: cannot build it with these settings ({first_line(exc)})"
        ) from None
    net.eval()
    modules = dict(net.named_modules())
    final = next(((m, how) for m, how in _FINAL_MAPS if m in modules), None)
    is_vit = arch.startswith("vit_")
    return LoadedNet(
        net=net,
        family="torchvision",
        preprocess=preprocess,
        weights_sha256=sha,
        weights_source=source,
        own_pool="cls" if is_vit else "avg",
        prefix_tokens=1 if is_vit else 0,
        final_map=final,
    )


def _classifier_names(net) -> tuple[str, ...]:
    import torch

    names = [n for n, m in net.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return tuple(names[-1:])
