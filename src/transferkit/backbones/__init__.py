"""Backbones: registry, offline EfficientNet-Lite weights, preprocessing that travels with the model."""

from .backbone import Backbone
from .preprocess import PreprocessConfig
from .registry import DEFAULT_MODEL, available_models, check_spec, create_backbone

__all__ = ["Backbone", "DEFAULT_MODEL", "PreprocessConfig", "available_models", "check_spec", "create_backbone"]
