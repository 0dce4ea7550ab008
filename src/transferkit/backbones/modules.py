"""torch modules that cut a network at the layer whose features we keep."""

from __future__ import annotations

import torch


class PreLogits(torch.nn.Module):
    """Pooled pre-logits features: the network up to, not including, its classifier."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


class FlipAveraged(torch.nn.Module):
    """Features averaged over each picture and its mirror image (horizontal flip): one forward pass on
    the batch and its flipped copy together, so predict, evaluate and the exported ONNX graph all compute
    the same thing. Twice the work of the plain features."""

    def __init__(self, features: torch.nn.Module):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(torch.cat([x, x.flip(3)]))
        return f.reshape(2, -1, f.shape[-1]).mean(0)


class TenCropAveraged(torch.nn.Module):
    """Features averaged over ten views of each picture: the five crops the preprocessing lays side by side
    (``PreprocessConfig.five_crop``: an N x 3 x H x 5W batch) and their mirror images, in one forward pass
    of 10N pictures. Ten times the work of the plain features."""

    def __init__(self, features: torch.nn.Module):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = torch.cat(x.chunk(5, dim=3))  # 5N x 3 x H x W: centre crops, then each corner's
        f = self.features(torch.cat([views, views.flip(3)]))
        return f.reshape(10, -1, f.shape[-1]).mean(0)


# Test-time augmentations a backbone spec can name ("tta"): the module that wraps the features.
# ten-crop: the preprocessing lays five crops side by side (PreprocessConfig.five_crop).
TTA_MODULES = {"hflip": FlipAveraged, "ten-crop": TenCropAveraged}
TTAS = tuple(TTA_MODULES)


def with_tta(features: torch.nn.Module, tta: str | None) -> torch.nn.Module:
    """``features`` wrapped for the test-time augmentation ``tta`` (None or "none": as it is)."""
    if not tta or tta == "none":
        return features
    return TTA_MODULES[tta](features).eval()
