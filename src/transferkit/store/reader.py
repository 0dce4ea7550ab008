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

    def backbone_spec(self) -> dict:
        a = self.attrs
        return {k: a[k] for k in ("model", "weights_sha256", "layer", "pool", "preprocess")}

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

    def load(self, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features (float32) and labels of ``split``, in memory."""
        idx = self.rows(split)
        labels = self.labels[idx]
        if len(idx) == self.n_rows:
            return self.h5[schema.FEATURES][()].astype(np.float32, copy=False), labels
        parts = [c for c, _ in self.iter_chunks(split)]
        feats = np.concatenate(parts) if parts else np.empty((0, self.feature_dim), np.float32)
        return feats, labels

    def iter_chunks(self, split: str | None = None, chunk_rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (features, labels) of ``split`` in file order, at most ``chunk_rows`` rows at a time."""
        idx = self.rows(split)
        labels = self.labels
        ds = self.h5[schema.FEATURES]
        for start in range(0, len(idx), chunk_rows):
            sel = idx[start : start + chunk_rows]
            lo, hi = int(sel[0]), int(sel[-1]) + 1
            block = ds[lo:hi]  # one contiguous read, then pick the split's rows
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
