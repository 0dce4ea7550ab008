"""What every model family hands the registry: a built network plus the facts needed to cut, pool and
replay it."""

from __future__ import annotations

from dataclasses import dataclass

from .preprocess import PreprocessConfig


@dataclass
class LoadedNet:
    net: "object"  # torch.nn.Module in eval mode, classifier included
    family: str  # "timm" | "torchvision"
    preprocess: PreprocessConfig  # from the pretrained config (overrides are applied by the registry)
    weights_sha256: str
    weights_source: str  # for people: "pypi:…", "hf-hub:…", "url:…", "file:…", "random"
    own_pool: str  # how the model pools its pre-logits ("avg", "cls", "mean", …)
    prefix_tokens: int = 0  # class/register tokens ahead of the patch tokens (0 for CNNs)
    nhwc: bool = False  # its 4-D outputs are (N, H, W, C) (timm's Swin and relatives)
    final_map: tuple[str, str] | None = None  # torchvision: (module, "input"|"output") holding the unpooled features
