"""Layout of a transferkit feature file (readable with plain h5py, no transferkit needed).

Datasets (N rows, one per decoded image, in dataset order):
  features      N x D float32, chunked by rows, resizable
  labels        N int32, index into label_names
  label_names   C utf-8 strings
  paths         N utf-8 strings, relative to the dataset root (attribute ``dataset_root``)
  split         N uint8, 0 = train, 1 = test (attribute ``names``)
  skipped       K x 2 utf-8 strings: path, reason, for files that could not be decoded
  layers/       group (since the model zoo; absent in older files, which hold one layer): one dataset
                per extracted layer, ``layers/<name>`` N x Di float32 with attributes layer, pool, dim,
                shape (JSON, the unpooled output shape); group attribute ``order`` = JSON list of the
                names in extraction order. ``features`` is the first layer, and ``layers/<first>`` is
                an HDF5 hard link to it (one copy of the data). See store/layers.py, docs/backbones.md.
Root attributes: format, format_version, model, weights ("default", "random" or a file path),
weights_sha256, weights_source, layer and pool (a string, or a JSON list with several layers),
preprocess (JSON), versions (JSON), created (ISO 8601), complete (true only once every row is
written), and the extraction settings (dataset_root, source, test_size, seed, n_images, batch_size, engine).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform

FORMAT = "transferkit-features"
FORMAT_VERSION = 1

FEATURES, LABELS, LABEL_NAMES, PATHS, SPLIT, SKIPPED = "features", "labels", "label_names", "paths", "split", "skipped"
REQUIRED_ATTRS = ("format", "format_version", "model", "weights_sha256", "layer", "pool", "preprocess", "versions", "created", "complete")

_VERSIONED = ("transferkit", "torch", "torchvision", "timm", "numpy", "h5py", "pillow", "scikit-learn", "onnxruntime")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def versions_json() -> str:
    return json.dumps(library_versions(), sort_keys=True)


def rows_per_chunk(feature_dim: int, itemsize: int = 4, target_bytes: int = 1 << 20) -> int:
    """Rows per HDF5 chunk: about 1 MiB, so reading a run of rows touches few, whole chunks."""
    return max(1, min(4096, target_bytes // max(1, feature_dim * itemsize)))
