"""Layout of a transferkit feature file (readable with plain h5py, no transferkit needed).

Datasets (N rows, one per decoded image, in dataset order):
  features      N x D float32 (or float16), chunked by whole rows (~1 MiB a chunk), resizable,
                optionally lzf- or gzip-compressed with byte shuffle
  labels        N int32, index into label_names
  label_names   C utf-8 strings
  paths         N utf-8 strings, relative to the dataset root (attribute ``dataset_root``)
  split         N uint8, 0 = train, 1 = test, 2 = val (attribute ``names``, JSON list indexed by value;
                see data/split.py; val only when the dataset came split three ways)
  skipped       K x 2 utf-8 strings: path, reason, for files that could not be decoded
  layers/       group (since the model zoo; absent in older files, which hold one layer): one dataset
                per extracted layer, ``layers/<name>`` N x Di float32 with attributes layer, pool, dim,
                shape (JSON, the unpooled output shape); group attribute ``order`` = JSON list of the
                names in extraction order. ``features`` is the first layer, and ``layers/<first>`` is
                an HDF5 hard link to it (one copy of the data). See store/layers.py, docs/backbones.md.
Root attributes: format, format_version, model, weights ("default", "random" or a file path),
weights_sha256, weights_source, layer and pool (a string, or a JSON list with several layers),
preprocess (JSON), versions (JSON), created (ISO 8601), complete (true only once every row is
written), and the extraction settings (dataset_root, source, split_source -- "stratified", "folders" or "csv
column", see data/split.py -- test_size and seed (only when stratified), n_images, batch_size, engine), and
``resumes`` (how many times an interrupted extraction was resumed to make it).

While an extraction runs (or after it was interrupted) the file has the crash-safe working layout
described in :mod:`transferkit.store.working` (a ``_resume`` group; only committed rows are valid);
read it through :class:`transferkit.store.FeatureFile`, which handles both.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ..versions import FEATURE_FILE, library_versions

FORMAT = "transferkit-features"
FORMAT_VERSION = 1

FEATURES, LABELS, LABEL_NAMES, PATHS, SPLIT, SKIPPED = "features", "labels", "label_names", "paths", "split", "skipped"
REQUIRED_ATTRS = (
    "format",
    "format_version",
    "model",
    "weights_sha256",
    "layer",
    "pool",
    "preprocess",
    "versions",
    "created",
    "complete",
)


def write_root_attrs(f, attrs: dict) -> None:
    """Format, version, creation time, library versions, then ``attrs`` (dicts and lists as JSON;
    they may override ``created``), then ``complete = False``."""
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    f.attrs["versions"] = versions_json()
    for key, value in attrs.items():
        f.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
    f.attrs["complete"] = False


def versions_json() -> str:
    return json.dumps(library_versions(FEATURE_FILE, python=True), sort_keys=True)


COMPRESSIONS = ("none", "lzf", "gzip")
DTYPES = ("float32", "float16")


def compression_options(compression: str | None) -> dict:
    """h5py keyword arguments for ``features``: none, lzf (fast) or gzip level 4 (smaller), each with
    the byte-shuffle filter, which groups the bytes of the floats and roughly doubles what they gain."""
    if compression in (None, "none"):
        return {}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")


def rows_per_chunk(feature_dim: int, itemsize: int = 4, target_bytes: int = 1 << 20) -> int:
    """Rows per HDF5 chunk: about 1 MiB, so reading a run of rows touches few, whole chunks."""
    return max(1, min(4096, target_bytes // max(1, feature_dim * itemsize)))
