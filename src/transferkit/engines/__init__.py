"""Inference engines and the decoding pipeline that feeds them."""

from .pipeline import Batch, available_cpus, iter_batches
from .torch_engine import TorchEngine

__all__ = ["Batch", "TorchEngine", "available_cpus", "iter_batches"]
