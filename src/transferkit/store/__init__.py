"""The HDF5 feature file: schema, buffered writer, read-only reader."""

from .layers import LayeredFeatureWriter
from .reader import FeatureFile, open_features
from .schema import FORMAT, FORMAT_VERSION
from .writer import FeatureWriter

__all__ = ["FORMAT", "FORMAT_VERSION", "FeatureFile", "FeatureWriter", "LayeredFeatureWriter", "open_features"]
