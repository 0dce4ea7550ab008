"""Several layers per feature file: one dataset per layer, next to the classic ``features`` dataset.

Layout (see also :mod:`transferkit.store.schema`):
  features          N x D0: the first (often the only) layer, exactly as in single-layer files
  layers/           group; attribute ``order`` = JSON list of the layer names, in extraction order
  layers/<name>     N x Di float32, one per layer, named as the layer (``pre_logits``, ``features.29``…);
                    attributes ``layer``, ``pool``, ``dim``, ``shape`` (JSON: the unpooled output shape,
                    without the batch). ``layers/<first>`` is an HDF5 hard link to ``features``: the same
                    data, stored once.
Files written before layers existed have no ``layers`` group; they hold one layer, described by the
root attributes ``layer`` and ``pool``.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..errors import TransferkitError
from . import schema
from .writer import FeatureWriter

GROUP = "layers"


class LayeredFeatureWriter(FeatureWriter):
    """A :class:`FeatureWriter` whose rows hold several layers side by side (the backbone's concatenated
    output); the first layer goes to ``features``, every layer to ``layers/<name>``."""

    def __init__(self, path, *, layers: list[dict], feature_dim: int, dtype: str = "float32", **kwargs):
        dims = [int(info["dim"]) for info in layers]
        if sum(dims) != int(feature_dim):
            raise ValueError(f"layer dims {dims} do not add up to feature_dim {feature_dim}")
        super().__init__(path, feature_dim=dims[0], dtype=dtype, **kwargs)
        self.layer_info = [dict(info) for info in layers]
        self.total_dim = int(feature_dim)
        self._bounds = np.cumsum([0] + dims)
        self._extra: list[list[np.ndarray]] = [[] for _ in layers[1:]]
        f = self.f
        if GROUP not in f:  # (a resumed file already has its group)
            group = f.create_group(GROUP)
            group.attrs["order"] = json.dumps([info["name"] for info in layers])
            for i, info in enumerate(layers):
                if i == 0:
                    group[info["name"]] = f[schema.FEATURES]  # hard link: same dataset
                    ds = f[schema.FEATURES]
                else:
                    chunk = schema.rows_per_chunk(dims[i], np.dtype(dtype).itemsize)
                    ds = group.create_dataset(info["name"], shape=(0, dims[i]), maxshape=(None, dims[i]),
                                              dtype=dtype, chunks=(chunk, dims[i]),
                                              **schema.compression_options(kwargs.get("compression")))
                ds.attrs["layer"] = info["name"]
                ds.attrs["pool"] = info["pool"]
                ds.attrs["dim"] = dims[i]
                ds.attrs["shape"] = json.dumps(list(info.get("shape") or []))
            f.flush()

    def add(self, features: np.ndarray, labels, paths, split) -> None:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.total_dim:
            raise ValueError(f"expected features of shape (n, {self.total_dim}), got {features.shape}")
        b = self._bounds
        for i, parts in enumerate(self._extra, start=1):
            parts.append(features[:, b[i] : b[i + 1]])
        super().add(features[:, : b[1]], labels, paths, split)

    def flush(self) -> None:
        if self._extra and self._extra[0]:
            start = self.rows_written
            group = self.f[GROUP]
            for info, parts in zip(self.layer_info[1:], self._extra):
                block = np.concatenate(parts)
                ds = group[info["name"]]
                ds.resize(start + len(block), axis=0)
                ds[start:] = block.astype(ds.dtype, copy=False)
            self._extra = [[] for _ in self._extra]
        super().flush()


# -- reading -----------------------------------------------------------------------------------------
def layer_infos(h5: h5py.File, attrs: dict) -> list[dict]:
    """Every layer a file holds, in column order: {"name", "pool", "dim", "shape"}."""
    if GROUP in h5:
        group = h5[GROUP]
        out = []
        for name in json.loads(group.attrs["order"]):
            ds = group[name]
            a = ds.attrs
            out.append({"name": name, "pool": _str(a.get("pool")), "dim": int(ds.shape[1]),
                        "shape": json.loads(_str(a.get("shape", "[]")))})
        return out
    return [{"name": attrs.get("layer", "pre_logits"), "pool": attrs.get("pool", "avg"),
             "dim": int(h5[schema.FEATURES].shape[1]), "shape": []}]


def select(infos: list[dict], layers, origin) -> list[dict]:
    """``layers``: None (the first layer, i.e. ``features``), a name, or a list of names."""
    if layers is None:
        return infos[:1]
    names = [layers] if isinstance(layers, str) else list(layers)
    by_name = {info["name"]: info for info in infos}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise TransferkitError(
            f"{origin}: has no layer {missing[0]!r}; it holds {', '.join(by_name)}"
        )
    if len(set(names)) != len(names):
        raise TransferkitError(f"{origin}: a layer is named twice in {names}")
    return [by_name[n] for n in names]


def _str(v):
    return v.decode("utf-8") if isinstance(v, bytes) else v
