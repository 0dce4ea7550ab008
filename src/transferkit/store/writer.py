"""Buffered writer of the finished layout: rows are gathered in memory and appended to resizable,
row-chunked HDF5 datasets in blocks.

The file is created with ``complete = False``; :meth:`FeatureWriter.close` with ``complete=True``
flushes the last rows and only then marks it complete. Appending grows HDF5 metadata, which a process
killed mid-write can leave unreadable, so ``extract`` does not append here directly: it extracts into
the crash-safe working file (:mod:`.working`) and uses this writer only to write the finished file
under a temporary name, renamed into place once closed (:mod:`.finalize`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from ..data.split import SPLIT_NAMES
from . import checksums, isolate, schema

STR = h5py.string_dtype("utf-8")


class FeatureWriter:
    def __init__(
        self,
        path: str | Path,
        *,
        feature_dim: int,
        label_names: list[str],
        attrs: dict,
        buffer_rows: int = 1000,
        dtype: str = "float32",
        compression: str | None = None,
        expected_rows: int | None = None,
    ):
        self.path = Path(path)
        self.buffer_rows = max(1, int(buffer_rows))
        self.feature_dim = int(feature_dim)
        self._buf: dict[str, list] = {"features": [], "labels": [], "paths": [], "split": []}
        self._skipped: list[tuple[str, str]] = []
        self.rows_written = 0
        self.f = h5py.File(self.path, "w")
        try:
            self._create(label_names, attrs, dtype, compression, expected_rows)
        except BaseException as exc:
            isolate.fail_fast(exc)  # in a child process (see .isolate): report and exit right here
            raise

    def _create(self, label_names, attrs, dtype, compression, expected_rows) -> None:
        f = self.f
        chunk = schema.rows_per_chunk(self.feature_dim, np.dtype(dtype).itemsize)
        if expected_rows:  # a small file need not carry a mostly empty 1 MiB chunk
            chunk = max(1, min(chunk, int(expected_rows)))
        f.create_dataset(schema.FEATURES, shape=(0, self.feature_dim), maxshape=(None, self.feature_dim), dtype=dtype,
                         chunks=(chunk, self.feature_dim), **schema.compression_options(compression))
        f.create_dataset(schema.LABELS, shape=(0,), maxshape=(None,), dtype="int32", chunks=(max(chunk, 1024),))
        f.create_dataset(schema.PATHS, shape=(0,), maxshape=(None,), dtype=STR, chunks=(1024,))
        split = f.create_dataset(schema.SPLIT, shape=(0,), maxshape=(None,), dtype="uint8", chunks=(max(chunk, 1024),))
        split.attrs["names"] = json.dumps(SPLIT_NAMES)  # value -> name
        f.create_dataset(schema.LABEL_NAMES, data=np.array(label_names, dtype=object), dtype=STR)
        skipped = f.create_dataset(schema.SKIPPED, shape=(0, 2), maxshape=(None, 2), dtype=STR, chunks=(256, 2))
        skipped.attrs["columns"] = json.dumps(["path", "reason"])
        schema.write_root_attrs(f, attrs)
        f.flush()

    # -- rows ------------------------------------------------------------------------------------
    def add(self, features: np.ndarray, labels, paths, split) -> None:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(f"expected features of shape (n, {self.feature_dim}), got {features.shape}")
        self._buf["features"].append(features)
        self._buf["labels"].extend(int(v) for v in labels)
        self._buf["paths"].extend(paths)
        self._buf["split"].extend(int(v) for v in split)
        if len(self._buf["labels"]) >= self.buffer_rows:
            self.flush()

    def add_skipped(self, path: str, reason: str) -> None:
        self._skipped.append((path, reason))

    @property
    def buffered_rows(self) -> int:
        return len(self._buf["labels"])

    def flush(self) -> None:
        n = self.buffered_rows
        f = self.f
        if n:
            start = self.rows_written
            feats = np.concatenate(self._buf["features"]).astype(f[schema.FEATURES].dtype, copy=False)
            for name, values in (
                (schema.FEATURES, feats),
                (schema.LABELS, np.asarray(self._buf["labels"], dtype=np.int32)),
                (schema.PATHS, np.array(self._buf["paths"], dtype=object)),
                (schema.SPLIT, np.asarray(self._buf["split"], dtype=np.uint8)),
            ):
                ds = f[name]
                ds.resize(start + n, axis=0)
                ds[start : start + n] = values
            self.rows_written += n
            self._buf = {"features": [], "labels": [], "paths": [], "split": []}
        if self._skipped:
            ds = f[schema.SKIPPED]
            start = ds.shape[0]
            ds.resize(start + len(self._skipped), axis=0)
            ds[start:] = np.array(self._skipped, dtype=object)
            self._skipped = []
        f.flush()

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self, complete: bool = True) -> None:
        if not self.f.id.valid:
            return
        try:
            self.flush()
            if complete:
                checksums.write_checksums(self.f)  # read back and summed, so --verify can tell damage
                self.f.attrs["complete"] = True
                self.f.attrs["completed"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        finally:
            self.f.close()

    def __enter__(self) -> "FeatureWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Whatever happened, keep the rows already computed; only a clean exit marks the file complete.
        self.close(complete=exc_type is None)
