"""torch versions of fitted heads, for export (ONNX) and GPU inference."""

from __future__ import annotations

import contextlib

import numpy as np
import torch


@contextlib.contextmanager
def torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def scale_rows(x: torch.Tensor, scaling: str) -> torch.Tensor:
    """The row-wise part of a head's feature scaling (see :mod:`transferkit.heads.scaling`)."""
    if scaling == "sqrt-l2":
        x = torch.sign(x) * torch.sqrt(torch.abs(x))
    if scaling in ("l2", "sqrt-l2"):
        x = x / torch.clamp(torch.sqrt((x * x).sum(dim=-1, keepdim=True)), min=1e-12)
    return x


class LinearSoftmax(torch.nn.Module):
    """softmax(((rows(x) - mean) / scale) @ coef.T + intercept): a linear head on scaled features."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 scaling: str = "standardise"):
        super().__init__()
        self.scaling = scaling
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))
        self.register_buffer("coef", torch.as_tensor(np.asarray(coef, np.float32)))
        self.register_buffer("intercept", torch.as_tensor(np.asarray(intercept, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = ((scale_rows(x, self.scaling) - self.mean) / self.scale) @ self.coef.T + self.intercept
        return torch.softmax(z, dim=-1)


class CalibratedLinear(torch.nn.Module):
    """A standardised linear SVM with its calibration map: sigmoid (two classes) or softmax(a * z + b)."""

    def __init__(self, mean, scale, coef, intercept, platt, scaling="standardise"):
        super().__init__()
        self.linear = LinearSoftmax(mean, scale, coef, intercept, scaling)
        self.register_buffer("slope", torch.as_tensor(np.asarray(platt[:, 0], np.float32)))
        self.register_buffer("offset", torch.as_tensor(np.asarray(platt[:, 1], np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lin = self.linear
        z = ((scale_rows(x, lin.scaling) - lin.mean) / lin.scale) @ lin.coef.T + lin.intercept
        z = z * self.slope + self.offset
        if z.shape[-1] == 1:
            p = torch.sigmoid(z)
            return torch.cat([1 - p, p], dim=-1)
        return torch.softmax(z, dim=-1)


class MLPNet(torch.nn.Module):
    """Standardise, then [Linear -> BatchNorm -> ReLU -> Dropout] per hidden layer, then Linear (logits)."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], n_classes: int, dropout: float = 0.5,
                 batch_norm: bool = True):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        layers: list[torch.nn.Module] = []
        width = n_features
        for h in hidden:
            layers.append(torch.nn.Linear(width, h, bias=not batch_norm))
            if batch_norm:
                layers.append(torch.nn.BatchNorm1d(h))
            layers.append(torch.nn.ReLU())
            if dropout > 0:
                layers.append(torch.nn.Dropout(dropout))
            width = h
        layers.append(torch.nn.Linear(width, n_classes))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.mean) / self.scale)


class Softmax(torch.nn.Module):
    """Wrap a logits module so that it returns probabilities."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


class CosineKNN(torch.nn.Module):
    """k nearest training vectors by cosine similarity; probabilities are their (class-weighted) votes."""

    def __init__(self, train_unit: np.ndarray, train_labels: np.ndarray, n_classes: int, k: int,
                 vote_weights: np.ndarray):
        super().__init__()
        self.register_buffer("train_unit", torch.as_tensor(np.asarray(train_unit, np.float32)))
        votes = np.zeros((len(train_labels), n_classes), np.float32)
        votes[np.arange(len(train_labels)), train_labels] = np.asarray(vote_weights, np.float32)[train_labels]
        self.register_buffer("votes", torch.as_tensor(votes))
        self.k = int(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / torch.clamp(torch.sqrt((x * x).sum(dim=-1, keepdim=True)), min=1e-12)
        sims = x @ self.train_unit.T
        idx = torch.topk(sims, self.k, dim=-1).indices
        v = self.votes[idx].sum(dim=1)
        return v / v.sum(dim=-1, keepdim=True)


class TemperatureScaled(torch.nn.Module):
    """softmax(log p / T) of a module that returns probabilities p: temperature scaling for export."""

    def __init__(self, net: torch.nn.Module, temperature: float):
        super().__init__()
        self.net = net
        self.register_buffer("inv_temperature", torch.tensor(1.0 / float(temperature), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.net(x)
        logp = torch.log(torch.clamp(p, min=torch.finfo(p.dtype).tiny))
        return torch.softmax(logp * self.inv_temperature, dim=-1)
