"""Inference engines and the decoding pipeline that feeds them."""

from .factory import EngineFallbackWarning, backbone_and_engine, create_engine, resolve_batch_size, resolve_device
from .pipeline import Batch, available_cpus, iter_batches
from .torch_engine import TorchEngine

__all__ = ["Batch", "EngineFallbackWarning", "TorchEngine", "available_cpus", "backbone_and_engine", "create_engine",
           "iter_batches", "resolve_batch_size", "resolve_device"]
