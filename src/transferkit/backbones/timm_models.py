"""Any timm model (``timm:<name>``): its pretrained config, its hub weights from the local cache or the
Hugging Face hub, a local ``--weights`` file, or random initialisation.

Hub weights are fetched by transferkit itself (safetensors first, as timm does), after a quick probe of
the hub, so that an offline machine fails in seconds with a clear message instead of waiting through
the hub client's retries; the file is then handed to timm as an in-memory state dict, so timm's own
checkpoint filters (e.g. resampling a ViT's position embeddings to another input size) still apply.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TransferkitError, first_line
from .loaded import LoadedNet
from .preprocess import PreprocessConfig
from .weights import (
    download_url,
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

_HF_FILES = ("model.safetensors", "pytorch_model.bin")
# timm pool names -> transferkit's (pooling.py); others are kept as the model names them
_CNN_POOLS = {"avg": "avg", "max": "max", "catavgmax": "avgmax", "avgmax": "avg+max/2", "": "none"}
_TOKEN_POOLS = {"token": "cls", "avg": "mean", "max": "max", "avgmax": "avg+max/2", "": "none"}


def pretrained_cfg(arch: str, name: str):
    import timm

    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:6]}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise TransferkitError(f"{name}: timm has no model {arch!r}{hint}")
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(arch)


def default_preprocess(arch: str, name: str) -> tuple[PreprocessConfig, bool]:
    """The pretrained config's preprocessing, and whether the input size is fixed."""
    from timm.data import resolve_data_config

    cfg = pretrained_cfg(arch, name)
    cfg_dict = cfg.to_dict() if cfg is not None else {}
    data = resolve_data_config({}, pretrained_cfg=cfg_dict)
    return PreprocessConfig.from_timm(data), bool(cfg_dict.get("fixed_input_size", False))


def hub_file(arch: str, name: str = "") -> tuple[str, Path | None]:
    """(where the pretrained weights come from, the cached file if it is on this machine)."""
    cfg = pretrained_cfg(arch, name or arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        return "", None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES
        for filename in names:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return f"hf-hub:{cfg.hf_hub_id}", Path(found)
        return f"hf-hub:{cfg.hf_hub_id}", None
    return f"url:{cfg.url}", torch_hub_cached(cfg.url)


def _download(arch: str, name: str) -> tuple[str, Path]:
    source, cached = hub_file(arch, name)
    if not source:
        raise unavailable(name, "timm has no pretrained weights for it")
    if cached:
        return source, cached
    cfg = pretrained_cfg(arch, name)
    if source.startswith("url:"):
        if cfg.custom_load:
            raise unavailable(name, "its weights are in a format only timm's own loader reads")
        return source, download_url(name, cfg.url)
    from huggingface_hub import constants, hf_hub_download

    if hub_offline() or not reachable(constants.ENDPOINT):
        raise unavailable(name, f"not in the Hugging Face cache and {constants.ENDPOINT} cannot be reached")
    repo, _, revision = cfg.hf_hub_id.partition("@")
    last = None
    for filename in (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES:
        try:
            return source, Path(hf_hub_download(repo, filename, revision=revision or None))
        except Exception as exc:  # EntryNotFound for the first name is normal; anything else is reported
            last = exc
    raise unavailable(name, f"download from {cfg.hf_hub_id} failed: {first_line(last, 160)}")


def own_pool(net) -> tuple[str, int, bool]:
    """(the model's pooling of its pre-logits, number of prefix tokens, whether maps are NHWC)."""
    from timm.layers import SelectAdaptivePool2d

    prefix = getattr(net, "num_prefix_tokens", None)
    nhwc = getattr(net, "output_fmt", "NCHW") == "NHWC" or str(getattr(net, "output_fmt", "")) == "Format.NHWC"
    gp = getattr(net, "global_pool", None)
    if isinstance(gp, str) and prefix is not None:
        return _TOKEN_POOLS.get(gp, gp), int(prefix), nhwc
    pools = [m.pool_type for m in net.modules() if isinstance(m, SelectAdaptivePool2d)]
    if pools:
        return _CNN_POOLS.get(pools[-1], pools[-1]), int(prefix or 0), nhwc
    if isinstance(gp, str):
        return _CNN_POOLS.get(gp, gp), int(prefix or 0), nhwc
    return "avg", int(prefix or 0), nhwc


def build_timm(name: str, arch: str, weights: str | None, input_size: tuple[int, int] | None = None) -> LoadedNet:
    """Build ``arch`` with hub weights (``weights=None``), a local file, or ``"random"`` weights."""
    import timm

    preprocess, fixed = default_preprocess(arch, name)
    kwargs = {}
    if input_size and fixed and tuple(input_size) != tuple(preprocess.input_size):
        kwargs["img_size"] = tuple(input_size)
    try:
        if weights == "random":
            net = random_init(lambda: timm.create_model(arch, pretrained=False, **kwargs))
            sha, source = state_dict_sha256(net), "random"
        else:
            if weights is None:
                source, path = _download(arch, name)
            else:
                path, source = Path(weights), f"file:{Path(weights).resolve()}"
            state = read_weights_file(path)
            net = _create_with_state(arch, state, str(path), kwargs)
            sha = file_sha256(path)
    except TransferkitError:
        raise
    except (TypeError, ValueError, AssertionError) as exc:
        first = first_line(exc)
        raise TransferkitError(f"{name}: cannot build it with these settings ({first})") from None
    net.eval()
    pool, prefix, nhwc = own_pool(net)
    return LoadedNet(
        net=net,
        family="timm",
        preprocess=preprocess,
        weights_sha256=sha,
        weights_source=source,
        own_pool=pool,
        prefix_tokens=prefix,
        nhwc=nhwc,
    )


def _create_with_state(arch: str, state: dict, origin: str, kwargs: dict):
    """timm's own loading first (its checkpoint filters run), then a by-name/by-position fit."""
    import timm

    try:
        net = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **kwargs)
    except (RuntimeError, KeyError, ValueError, AssertionError):
        net = timm.create_model(arch, pretrained=False, **kwargs)
        head = net.get_classifier() if hasattr(net, "get_classifier") else None
        head_names = tuple(n for n, m in net.named_modules() if head is not None and m is head and n)
        fit_state_dict(net, state, origin, classifier_prefixes=head_names)
    if isinstance(getattr(net, "pretrained_cfg", None), dict):
        net.pretrained_cfg["state_dict"] = None  # do not keep a second copy of the weights alive
    return net
