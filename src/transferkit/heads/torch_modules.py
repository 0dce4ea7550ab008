"""torch versions of fitted heads, for export (ONNX) and GPU inference."""

from __future__ import annotations

import numpy as np
import torch


class LinearSoftmax(torch.nn.Module):
    """softmax(((x - mean) / scale) @ coef.T + intercept): a standardised linear head."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))
        self.register_buffer("coef", torch.as_tensor(np.asarray(coef, np.float32)))
        self.register_buffer("intercept", torch.as_tensor(np.asarray(intercept, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        return torch.softmax(z, dim=-1)
