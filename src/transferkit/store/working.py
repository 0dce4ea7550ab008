"""The working file: the crash-safe form a feature file has while its extraction runs.

HDF5 keeps metadata (object headers, chunk indexes, the end-of-file address) in a cache and writes it
in several pieces; a process killed in the middle of such a write can leave a file that no longer
opens. So the working file never changes its metadata after it is created:

* It is written completely under a temporary name, fsynced, and renamed into place: every dataset is
  sized for the whole plan (one row per input image) and its storage is allocated up front
  (contiguous layout, early allocation, no fill: a sparse file, so unwritten rows take no disk).
* While rows are extracted, only raw bytes inside those datasets are written (``pwrite`` at their
  offsets; HDF5 writes nothing): the rows, then — after an fsync — a small progress record (rows, skipped files,
  next input) in one of two slots with a sequence number and a checksum. A torn write spoils only the slot being
  written; readers take the valid slot with the highest sequence number. Rows past the committed count are ignored.

SIGKILL at any moment therefore leaves a file that opens, says how far it got, and is marked
incomplete; ``--resume`` continues from the last committed input. The finished file (see
:mod:`.finalize`) is written anew, in the ordinary layout of :mod:`.schema`, and renamed over it.

Layout (N = inputs planned, W = longest path in UTF-8 bytes):
  features N x D, labels N int32, paths N bytes(W) UTF-8, split N uint8   rows 0..rows-1 are valid
  label_names                                                           as in the finished file
  _resume/plan_paths N bytes(W), plan_labels N int32, plan_split N uint8  what each input is
  _resume/skipped_input N int32, skipped_reason N bytes(512)             0..skipped-1 are valid
  _resume/progress 2 x 6 int64: [seq, rows, skipped, next_input, sessions, crc32]
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..data.split import SPLIT_NAMES
from ..errors import TransferkitError, first_line
from . import fsio, isolate, schema
from ._testhook import checkpoint
from .advice import AdvisedError

GROUP = "_resume"
PLAN_PATHS, PLAN_LABELS, PLAN_SPLIT = "plan_paths", "plan_labels", "plan_split"
SKIPPED_INPUT, SKIPPED_REASON, PROGRESS = "skipped_input", "skipped_reason", "progress"
REASON_BYTES = 512
_MAGIC = b"transferkit-progress-v1"
_STR = h5py.string_dtype("utf-8")


class DamagedFileError(TransferkitError):
    """A feature file that cannot be read as what it claims to be."""


class NoProgressRecordError(DamagedFileError, AdvisedError):
    """A working file whose progress records are all torn or missing."""


class FeatureRangeError(AdvisedError):
    """Features too large for the file's dtype (float16)."""


@dataclass(frozen=True)
class Progress:
    """What a working file has committed: ``rows`` feature rows and ``skipped`` unreadable inputs,
    covering inputs ``0 .. next_input - 1`` of the plan, over ``sessions`` runs."""

    rows: int = 0
    skipped: int = 0
    next_input: int = 0
    sessions: int = 0
    seq: int = 1

    def encode(self) -> np.ndarray:
        values = np.array([self.seq, self.rows, self.skipped, self.next_input, self.sessions], dtype="<i8")
        return np.append(values, np.int64(zlib.crc32(_MAGIC + values.tobytes()))).astype("<i8")

    @classmethod
    def decode(cls, row: np.ndarray) -> "Progress | None":
        values = np.asarray(row[:5], dtype="<i8")
        if values[0] <= 0 or zlib.crc32(_MAGIC + values.tobytes()) != int(row[5]):
            return None
        seq, rows, skipped, next_input, sessions = (int(v) for v in values)
        return cls(rows=rows, skipped=skipped, next_input=next_input, sessions=sessions, seq=seq)


def is_working(h5: h5py.File) -> bool:
    return GROUP in h5


def read_progress(h5: h5py.File) -> Progress:
    """The newest valid progress record of a working file (raises DamagedFileError if none is)."""
    where = h5.filename
    try:
        slots = h5[GROUP][PROGRESS][()]
        capacity = h5[GROUP][PLAN_LABELS].shape[0]
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise DamagedFileError(
            f"{where}: damaged feature file: its progress record cannot be read ({first_line(exc)})"
        ) from None
    valid = [p for p in (Progress.decode(row) for row in slots) if p is not None]
    valid = [p for p in valid if 0 <= p.rows and 0 <= p.skipped and p.rows + p.skipped <= p.next_input <= capacity]
    if not valid:
        raise NoProgressRecordError(
            "{path}: damaged feature file: no valid progress record; start again with {o[overwrite!]}", path=where
        )
    return max(valid, key=lambda p: p.seq)


@dataclass
class Plan:
    """Every input a run will extract, in order, with its label and split."""

    paths: list[str]  # relative to the dataset root
    labels: np.ndarray  # int32, index into class_names
    split: np.ndarray  # uint8, 0 = train, 1 = test
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.paths)


def _encode_paths(paths: list[str]) -> np.ndarray:
    raw = [p.encode("utf-8") for p in paths]
    width = max([1, *map(len, raw)])
    return np.array(raw, dtype=f"S{width}")


def _reason_bytes(reason: str) -> bytes:
    raw = reason.encode("utf-8")
    if len(raw) <= REASON_BYTES:
        return raw
    return raw[: REASON_BYTES - 3].decode("utf-8", "ignore").encode("utf-8") + "…".encode("utf-8")


def _allocated(f: h5py.Group, name: str, shape: tuple, dtype) -> h5py.Dataset:
    """A contiguous dataset whose storage is allocated now (never written with fill values)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return f.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl, track_times=False)


def create_working_file(
    path: Path, plan: Plan, *, feature_dim: int, dtype: str, attrs: dict, compression: str | None = None
) -> None:
    """Write a complete working file for ``plan`` at ``path`` (a temporary name) and fsync it.

    This writes HDF5 metadata; run it through :func:`.isolate.run` so that a failure cannot leave the
    calling process with a half-closed HDF5 file."""
    n = len(plan)
    paths = _encode_paths(plan.paths)
    f = h5py.File(path, "w", locking=False)
    try:
        _allocated(f, schema.FEATURES, (n, feature_dim), np.dtype(dtype))
        _allocated(f, schema.LABELS, (n,), np.int32)
        _allocated(f, schema.PATHS, (n,), paths.dtype)
        _allocated(f, schema.SPLIT, (n,), np.uint8).attrs["names"] = json.dumps(SPLIT_NAMES)
        f.create_dataset(schema.LABEL_NAMES, data=np.array(plan.class_names, dtype=object), dtype=_STR)
        g = f.create_group(GROUP)
        g.attrs["compression"] = compression or "none"
        g.create_dataset(PLAN_PATHS, data=paths, track_times=False)
        g.create_dataset(PLAN_LABELS, data=np.asarray(plan.labels, dtype=np.int32), track_times=False)
        g.create_dataset(PLAN_SPLIT, data=np.asarray(plan.split, dtype=np.uint8), track_times=False)
        _allocated(g, SKIPPED_INPUT, (n,), np.int32)
        _allocated(g, SKIPPED_REASON, (n,), f"S{REASON_BYTES}")
        # Both slots are written now, so a later commit only ever rewrites bytes that already exist.
        g.create_dataset(PROGRESS, data=np.stack([Progress().encode(), np.zeros(6, "<i8")]), track_times=False)
        schema.write_root_attrs(f, attrs)
        f.close()
    except BaseException as exc:
        fsio.remove_quietly(path)
        isolate.fail_fast(exc)  # in a child (see .isolate): report and exit before h5py cleans up
        raise
    fsio.fsync_path(path)


class WorkingFile:
    """A working file opened for appending rows. Rows are buffered and committed in blocks.

    Rows go straight into the datasets' preallocated storage with ``pwrite`` at offsets read from
    the file once, when it is opened: HDF5 itself writes nothing after creation, so a failed write
    (a full disk) is a plain ``OSError`` and nothing is left half-flushed in a library's caches.
    Readers can open the file meanwhile (transferkit's own lock, :mod:`.lock`, keeps other writers
    out); what they see is the last committed state.
    """

    _COLUMNS = {  # what is written, dataset path
        "features": schema.FEATURES,
        "labels": schema.LABELS,
        "paths": schema.PATHS,
        "split": schema.SPLIT,
        "skipped_input": f"{GROUP}/{SKIPPED_INPUT}",
        "skipped_reason": f"{GROUP}/{SKIPPED_REASON}",
        "progress": f"{GROUP}/{PROGRESS}",
    }

    def __init__(self, path: str | Path, *, buffer_rows: int = 1000, _durable: bool = True):
        self.path = Path(path)
        self.buffer_rows = max(1, int(buffer_rows))
        self._durable = _durable  # False only in tests: skip the fsync of each commit
        try:
            with h5py.File(self.path, "r") as h5:
                g = h5[GROUP]
                self.plan_paths = g[PLAN_PATHS][()]
                self.plan_labels = g[PLAN_LABELS][()]
                self.plan_split = g[PLAN_SPLIT][()]
                self.dtype = h5[schema.FEATURES].dtype
                self.feature_dim = int(h5[schema.FEATURES].shape[1])
                self.progress = read_progress(h5)
                self._where = {}
                for key, name in self._COLUMNS.items():
                    ds = h5[name]
                    offset = ds.id.get_offset()
                    if offset is None or ds.chunks is not None or ds.compression:
                        raise DamagedFileError(
                            f"{self.path}: damaged feature file: {name!r} has no preallocated storage"
                        )
                    self._where[key] = (int(offset), ds.dtype, ds.shape)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise DamagedFileError(
                f"{self.path}: cannot open the feature file to resume it ({first_line(exc)})"
            ) from None
        self.capacity = len(self.plan_labels)
        self.sessions = self.progress.sessions + 1
        self.next_input = self.progress.next_input
        self.broken = False
        self._features: list[np.ndarray] = []
        self._inputs: list[int] = []
        self._skips: list[tuple[int, str]] = []
        self._fd = os.open(self.path, os.O_RDWR | getattr(os, "O_BINARY", 0))

    @classmethod
    def open(cls, path: str | Path, **kwargs) -> "WorkingFile":
        return cls(path, **kwargs)

    # -- rows ------------------------------------------------------------------------------------
    @property
    def buffered_rows(self) -> int:
        return len(self._inputs)

    @property
    def rows(self) -> int:
        """Rows committed plus rows buffered."""
        return self.progress.rows + self.buffered_rows

    def add(self, inputs, features, failures=(), next_input: int | None = None) -> None:
        """Buffer the rows of plan inputs ``inputs`` and the unreadable inputs ``failures`` (input,
        reason); ``next_input`` is the first input not covered yet. Commits when the buffer is full."""
        inputs = [int(i) for i in inputs]
        if inputs:
            features = np.asarray(features)
            if features.shape != (len(inputs), self.feature_dim):
                raise ValueError(
                    f"expected features of shape ({len(inputs)}, {self.feature_dim}), got {features.shape}"
                )
            self._features.append(features)
            self._inputs.extend(inputs)
        self._skips.extend((int(i), str(r)) for i, r in failures)
        covered = max([*inputs, *(int(i) for i, _ in failures), self.next_input - 1]) + 1
        self.next_input = covered if next_input is None else int(next_input)
        checkpoint("batch")
        if self.buffered_rows >= self.buffer_rows:
            self.commit()

    def commit(self) -> None:
        """Write the buffered rows, fsync, then record them in the progress record and fsync again."""
        if self.broken:
            raise TransferkitError(f"{self.path}: an earlier write failed; resume to continue")
        old = self.progress
        n, k = self.buffered_rows, len(self._skips)
        if not n and not k and self.next_input == old.next_input:
            return
        if old.rows + n > self.capacity or old.skipped + k > self.capacity or self.next_input > self.capacity:
            raise ValueError("more rows than the plan has inputs")
        try:
            if n:
                idx = np.asarray(self._inputs)
                feats = np.concatenate(self._features)
                with np.errstate(over="ignore"):
                    stored = feats.astype(self.dtype, copy=False)
                if stored.dtype != feats.dtype and not np.isfinite(stored).all() and np.isfinite(feats).all():
                    raise FeatureRangeError(
                        "{path}: features exceed the range of {dtype} (largest {largest:.4g}); extract with "
                        "{o[dtype=float32]}", path=self.path, dtype=str(self.dtype), largest=float(np.abs(feats).max())
                    )
                self._write("features", old.rows, stored)
                self._write("labels", old.rows, self.plan_labels[idx])
                self._write("paths", old.rows, self.plan_paths[idx])
                self._write("split", old.rows, self.plan_split[idx])
            if k:
                self._write("skipped_input", old.skipped, np.array([i for i, _ in self._skips]))
                self._write("skipped_reason", old.skipped, np.array([_reason_bytes(r) for _, r in self._skips]))
            self._sync()
            checkpoint("data")
            new = Progress(
                rows=old.rows + n,
                skipped=old.skipped + k,
                next_input=self.next_input,
                sessions=self.sessions,
                seq=old.seq + 1,
            )
            self._write("progress", new.seq % 2, new.encode()[None, :])
            self._sync()
        except BaseException:
            self.broken = True
            raise
        self.progress = new
        self._features, self._inputs, self._skips = [], [], []
        checkpoint("commit")

    def _write(self, column: str, start: int, values: np.ndarray) -> None:
        """``dataset[start : start + len(values)] = values``, as raw bytes at the dataset's offset."""
        offset, dtype, shape = self._where[column]
        values = np.ascontiguousarray(values, dtype=dtype)
        row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        if values.shape[1:] != shape[1:] or start + len(values) > shape[0]:
            raise ValueError(f"{column}: rows {start}..{start + len(values)} do not fit {shape}")
        data = memoryview(values.tobytes())
        position = offset + start * row_bytes
        while data:
            written = _pwrite(self._fd, data, position)
            data, position = data[written:], position + written

    def _sync(self) -> None:
        if self._durable:
            os.fsync(self._fd)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close without committing what is buffered (call :meth:`commit` first to keep it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pwrite(fd: int, data, position: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, position)
    os.lseek(fd, position, os.SEEK_SET)  # pragma: no cover - Windows
    return os.write(fd, data)



