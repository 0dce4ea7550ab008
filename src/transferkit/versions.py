"""The versions of the libraries a result depends on: recorded in a feature file's provenance, and
hashed into the ONNX cache keys so that a cached graph is rebuilt when they change. One function, and
each record's list of libraries here, side by side (the lists are part of the cache keys: changing one
makes every cached graph of that kind rebuild once)."""

from __future__ import annotations

import importlib.metadata
import platform

# a feature file's provenance (with Python's version)
FEATURE_FILE = ("transferkit", "torch", "torchvision", "timm", "numpy", "h5py", "pillow", "scikit-learn", "onnxruntime")
# the key of a cached fp32 ONNX graph (engines/onnx_engine.py)
ONNX_GRAPH = ("transferkit", "torch", "timm", "onnx", "onnxslim", "onnxruntime")
# the key of the index that finds a cached graph without building the network (engines/onnx_index.py)
ONNX_INDEX = ("transferkit", "torch", "torchvision", "timm", "onnx", "onnxslim", "onnxruntime")
# the key of a cached int8 graph (engines/onnx_int8.py; the fp32 graph's own key covers the rest)
INT8_GRAPH = ("onnx", "onnxruntime")


def library_versions(dists, missing: str | None = None, python: bool = False) -> dict[str, str]:
    """``{distribution: version}`` of ``dists``; one not installed is left out, or given as ``missing``.
    ``python``: also ``"python"``, the interpreter's version."""
    versions = {"python": platform.python_version()} if python else {}
    for dist in dists:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if missing is not None:
                versions[dist] = missing
    return versions
