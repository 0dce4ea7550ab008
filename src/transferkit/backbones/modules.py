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
