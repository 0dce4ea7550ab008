"""Read-only access to a feature file: provenance, labels, the stored split, and features by split.

Reading a split reads only its rows (h5py reads the slices asked for); :meth:`FeatureFile.iter_chunks`
serves them in file order in chunks for callers that must not hold them all in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..errors import IncompleteFileError, TransferkitError
from . import layers as _layers
from . import schema

SPLITS = {"train": 0, "test": 1}


def _decode_str(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


class FeatureFile:
    """A transferkit feature file opened read-only. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise TransferkitError(f"{self.path}: no such file")
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise TransferkitError(f"{self.path}: not a readable HDF5 file ({_short(exc)})") from None
        fmt = self.h5.attrs.get("format")
        if fmt != schema.FORMAT:
            self.h5.close()
            raise TransferkitError(f"{self.path}: not a transferkit feature file (no format='{schema.FORMAT}' attribute)")

    # -- provenance ------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        out = {}
        for key, value in self.h5.attrs.items():
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            if isinstance(value, np.generic):
                value = value.item()
            if key in ("preprocess", "versions") and isinstance(value, str):
                value = json.loads(value)
            elif key in ("layer", "pool") and isinstance(value, str) and value.startswith("["):
                value = json.loads(value)  # several layers: one name / pool each
            out[key] = value
        return out

    @property
    def complete(self) -> bool:
        return bool(self.h5.attrs.get("complete", False))

    def require_complete(self, action: str = "use") -> None:
        if not self.complete:
            raise IncompleteFileError(
                f"{self.path}: incomplete feature file ({self.n_rows} rows written); its extraction did not "
                f"finish. Resume it with `transferkit extract ... --resume` before you {action} it"
            )

    def backbone_spec(self, layers=None) -> dict:
        """The backbone that made the features of ``layers`` (None: the ``features`` dataset's layer)."""
        a = self.attrs
        spec = {k: a[k] for k in ("model", "weights_sha256", "preprocess")}
        spec["weights"] = a.get("weights", "default")
        chosen = self.select_layers(layers)
        spec["layer"] = chosen[0]["name"] if len(chosen) == 1 else [c["name"] for c in chosen]
        spec["pool"] = chosen[0]["pool"] if len(chosen) == 1 else [c["pool"] for c in chosen]
        return spec

    # -- layers ----------------------------------------------------------------------------------
    @property
    def layers(self) -> list[dict]:
        """Every layer the file holds, in column order: {"name", "pool", "dim", "shape"}."""
        return _layers.layer_infos(self.h5, self.attrs)

    def select_layers(self, layers=None) -> list[dict]:
        """``layers``: None (the first layer, stored as ``features``), a layer name, or a list of names."""
        return _layers.select(self.layers, layers, self.path)

    # -- rows ------------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return int(self.h5[schema.FEATURES].shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.h5[schema.FEATURES].shape[1])

    @property
    def label_names(self) -> list[str]:
        return _decode_str(self.h5[schema.LABEL_NAMES][()])

    @property
    def labels(self) -> np.ndarray:
        return self.h5[schema.LABELS][()].astype(np.int64)

    @property
    def paths(self) -> list[str]:
        return _decode_str(self.h5[schema.PATHS][()])

    @property
    def split(self) -> np.ndarray:
        return self.h5[schema.SPLIT][()]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return [tuple(_decode_str(row)) for row in self.h5[schema.SKIPPED][()]]

    def rows(self, split: str | None = None) -> np.ndarray:
        """Row indices of ``split`` ("train", "test" or None for all), in file order."""
        if split is None:
            return np.arange(self.n_rows)
        if split not in SPLITS:
            raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
        return np.flatnonzero(self.split == SPLITS[split])

    def load(self, split: str | None = None, layers=None) -> tuple[np.ndarray, np.ndarray]:
        """Features (float32) and labels of ``split``, in memory; ``layers`` as in :meth:`select_layers`
        (several layers are concatenated in the order given)."""
        idx = self.rows(split)
        labels = self.labels[idx]
        dsets = _layers.datasets(self.h5, self.select_layers(layers))
        if len(idx) == self.n_rows:
            full = [ds[()].astype(np.float32, copy=False) for ds in dsets]
            return (full[0] if len(full) == 1 else np.concatenate(full, axis=1)), labels
        parts = [c for c, _ in self.iter_chunks(split, layers=layers)]
        dim = sum(ds.shape[1] for ds in dsets)
        feats = np.concatenate(parts) if parts else np.empty((0, dim), np.float32)
        return feats, labels

    def iter_chunks(self, split: str | None = None, chunk_rows: int = 4096, layers=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (features, labels) of ``split`` in file order, at most ``chunk_rows`` rows at a time."""
        idx = self.rows(split)
        labels = self.labels
        dsets = _layers.datasets(self.h5, self.select_layers(layers))
        for start in range(0, len(idx), chunk_rows):
            sel = idx[start : start + chunk_rows]
            lo, hi = int(sel[0]), int(sel[-1]) + 1
            # one contiguous read per layer, then pick the split's rows
            block = dsets[0][lo:hi] if len(dsets) == 1 else np.concatenate([ds[lo:hi] for ds in dsets], axis=1)
            yield block[sel - lo].astype(np.float32, copy=False), labels[sel]

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> "FeatureFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_features(path: str | Path) -> FeatureFile:
    """Open a feature file read-only (see :class:`FeatureFile`)."""
    return FeatureFile(path)


def _short(exc: Exception) -> str:
    return str(exc).split("\n")[0][:200]
