"""A pretrained network with its classifier cut off, plus everything needed to replay it: the
preprocessing, the layer(s) and pooling it stops at, and the hash of the weights it was loaded with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .preprocess import PreprocessConfig


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
        }

    def classify(self, images: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities from the full network (a sanity check that weights are real)."""
        import torch

        with torch.inference_mode():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
            return logits.softmax(-1).numpy()
