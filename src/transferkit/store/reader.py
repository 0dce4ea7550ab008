"""Read-only access to a feature file: provenance, labels, the stored split, and features by split.

Works on finished files and on files whose extraction is still running or was interrupted (the
working layout of :mod:`.working`): then only the committed rows are served and :attr:`complete` is
False. Reading never needs all features in memory: :meth:`FeatureFile.iter_chunks` serves a split in
file order, in chunks sized from a row count or a memory budget (``max_memory="2GB"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..data.split import SPLITS, VALID_SPLITS  # name -> value; the values a file may hold
from ..errors import IncompleteFileError, TransferkitError, first_line
from ..filekind import not_a_regular_file
from . import layers as _layers
from . import schema, working
from .budget import parse_size, rows_for_budget
from .working import DamagedFileError


def _decode_str(values, origin=None) -> list[str]:
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    except UnicodeDecodeError:
        raise DamagedFileError(f"{origin or 'feature file'}: damaged feature file: stored text is not UTF-8") from None


class FeatureFile:
    """A transferkit feature file opened read-only. Use as a context manager or call :meth:`close`.

    Any HDF5 error while reading (a damaged or truncated file) becomes a one-line
    :class:`~transferkit.errors.TransferkitError` naming the file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._n_classes = None
        if not self.path.exists():
            raise TransferkitError(f"{self.path}: no such file")
        what = not_a_regular_file(self.path)
        if what:  # never open a FIFO: it would block
            raise TransferkitError(f"{self.path}: is {what}, not a feature file")
        try:
            # HDF5's default (shared) lock: the extraction writing a working file takes none (it
            # relies on its own lock, see .lock), so its committed rows can be read meanwhile.
            self.h5 = h5py.File(self.path, "r")
        except (OSError, RuntimeError) as exc:
            raise TransferkitError(f"{self.path}: {_why_unreadable(self.path, exc)}") from None
        try:
            fmt = self.h5.attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode("utf-8", "replace")
            if fmt != schema.FORMAT:
                raise TransferkitError(
                    f"{self.path}: not a transferkit feature file (no format='{schema.FORMAT}' attribute)"
                )
            self._progress = working.read_progress(self.h5) if working.is_working(self.h5) else None
            required = (schema.FEATURES, schema.LABELS, schema.PATHS, schema.SPLIT, schema.LABEL_NAMES)
            missing = [n for n in required if n not in self.h5]
            if missing:
                raise DamagedFileError(f"{self.path}: damaged feature file: missing dataset(s) {', '.join(missing)}")
            self.attrs  # noqa: B018 (read once, so damaged attributes fail here, in one line)
            for name in required:  # open each once, so a damaged header fails here, in one line
                try:
                    self.h5[name].shape  # noqa: B018 (the read is the check)
                except (OSError, RuntimeError, KeyError, ValueError) as exc:
                    raise DamagedFileError(
                        f"{self.path}: damaged feature file: cannot open {name!r} ({first_line(exc)})"
                    ) from None
        except TransferkitError:
            self.h5.close()
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:  # a damaged header
            self.h5.close()
            raise DamagedFileError(f"{self.path}: damaged feature file ({first_line(exc)})") from None

    def _read(self, name: str, sel=slice(None)):
        """``dataset[sel]`` with HDF5 errors turned into a one-line error naming the file."""
        try:
            return self.h5[name][sel]
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise DamagedFileError(
                f"{self.path}: damaged feature file: cannot read {name!r} ({first_line(exc)})"
            ) from None

    # -- provenance ------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        try:
            items = list(self.h5.attrs.items())
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise DamagedFileError(
                f"{self.path}: damaged feature file: cannot read its attributes ({first_line(exc)})"
            ) from None
        out = {}
        for key, value in items:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, np.generic):
                value = value.item()
            if key in ("preprocess", "versions") and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            elif key in ("layer", "pool") and isinstance(value, str) and value.startswith("["):
                try:
                    value = json.loads(value)  # several layers: one name / pool each
                except ValueError:
                    raise DamagedFileError(
                        f"{self.path}: damaged feature file: attribute {key!r} is not JSON"
                    ) from None
            out[key] = value
        return out

    @property
    def complete(self) -> bool:
        return self._progress is None and bool(self.h5.attrs.get("complete", False))

    @property
    def progress(self) -> dict | None:
        """For a file whose extraction has not finished: rows committed, inputs done and planned,
        and how many runs wrote it. None for a finished file."""
        p = self._progress
        if p is None:
            return None
        return {
            "rows": p.rows,
            "skipped": p.skipped,
            "inputs_done": p.next_input,
            "inputs_total": int(self.h5[working.GROUP][working.PLAN_LABELS].shape[0]),
            "sessions": p.sessions,
        }

    def extraction_request(self) -> tuple[str, dict]:
        """The dataset and the settings (by Python argument name) the extraction was started with: what
        it takes to resume it (the CLI words them as a ``transferkit extract`` command line)."""
        a = self.attrs
        try:
            request = json.loads(a.get("request") or "{}")
        except (TypeError, ValueError):
            request = {}
        return str(a.get("data") or a.get("dataset_root") or "DATA"), request

    def require_complete(self, action: str = "use") -> None:
        if not self.complete:
            p = self.progress
            done = f"{p['inputs_done']} of {p['inputs_total']} images done" if p else f"{self.n_rows} rows written"
            raise IncompleteFileError(self.path, done, action, *self.extraction_request())

    def require_intact(self, action: str = "use") -> None:
        """Recompute the data checksums stored when the file was finished and refuse damaged data (HDF5
        reads a zeroed or flipped block of ``features`` back as other numbers without an error). Files
        from before checksums existed pass. Costs one extra read of the file (~0.2 s per 100 MB)."""
        from .checksums import check_checksums

        try:
            result = check_checksums(self.h5)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise DamagedFileError(
                f"{self.path}: damaged feature file: its data cannot be read ({first_line(exc)})"
            ) from None
        if result.bad:
            raise DamagedFileError(
                f"{self.path}: damaged feature file: {len(result.bad)} block(s) differ from the checksums taken when "
                f"it was finished ({'; '.join(result.bad[:3])}); extract it again before you {action} it"
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
        if self._progress is not None:
            return self._progress.rows
        return int(self.h5[schema.FEATURES].shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.h5[schema.FEATURES].shape[1])

    @property
    def dtype(self) -> np.dtype:
        """The stored dtype of the features (float32 or float16); they are served as float32."""
        return self.h5[schema.FEATURES].dtype

    def _column(self, name: str) -> np.ndarray:
        return self._read(name, slice(0, self.n_rows))

    @property
    def label_names(self) -> list[str]:
        return _decode_str(self._read(schema.LABEL_NAMES, ()), self.path)

    @property
    def labels(self) -> np.ndarray:
        return self._checked_labels(self._column(schema.LABELS).astype(np.int64))

    @property
    def paths(self) -> list[str]:
        return _decode_str(self._column(schema.PATHS), self.path)

    @property
    def split(self) -> np.ndarray:
        return self._checked_split(self._column(schema.SPLIT))

    def _checked_labels(self, labels: np.ndarray, first_row: int = 0) -> np.ndarray:
        """``labels`` if every one indexes ``label_names``; a damaged file otherwise (-1 must not
        silently read as the last class)."""
        if self._n_classes is None:
            self._n_classes = int(self.h5[schema.LABEL_NAMES].shape[0])
        bad = np.flatnonzero((labels < 0) | (labels >= self._n_classes))
        if len(bad):
            raise DamagedFileError(
                f"{self.path}: damaged feature file: row {first_row + int(bad[0])} has label "
                f"{int(labels[bad[0]])}, outside 0..{self._n_classes - 1} ({len(bad)} such rows here)"
            )
        return labels

    def _checked_split(self, split: np.ndarray, first_row: int = 0) -> np.ndarray:
        bad = np.flatnonzero(~np.isin(split, VALID_SPLITS))
        if len(bad):
            raise DamagedFileError(
                f"{self.path}: damaged feature file: row {first_row + int(bad[0])} has split value "
                f"{int(split[bad[0]])}, not one of {', '.join(map(str, VALID_SPLITS))}"
            )
        return split

    @property
    def skipped(self) -> list[tuple[str, str]]:
        if self._progress is None:
            return [tuple(_decode_str(row, self.path)) for row in self._read(schema.SKIPPED, ())]
        k = self._progress.skipped
        g = working.GROUP
        inputs = self._read(f"{g}/{working.SKIPPED_INPUT}", slice(0, k))
        reasons = self._read(f"{g}/{working.SKIPPED_REASON}", slice(0, k))
        plan = self._read(f"{g}/{working.PLAN_PATHS}", ())
        return [(p, r) for p, r in zip(_decode_str(plan[inputs], self.path), _decode_str(reasons, self.path))]

    def rows(self, split: str | None = None) -> np.ndarray:
        """Row indices of ``split`` ("train", "test", "val" or None for all), in file order."""
        code = _split_code(split)
        if code is None:
            return np.arange(self.n_rows)
        return np.flatnonzero(self.split == code)

    def count(self, split: str | None = None) -> int:
        """Number of rows in ``split`` (None: all rows)."""
        return self.n_rows if split is None else len(self.rows(split))

    def nbytes(self, split: str | None = None) -> int:
        """Bytes the features of ``split`` take in memory as float32 (what :meth:`load` allocates)."""
        return self.count(split) * self.feature_dim * 4

    def chunk_rows_for(self, max_memory: str | int | float, layers=None) -> int:
        """Rows per chunk that keep :meth:`iter_chunks` within ``max_memory`` ("2GB", "512MiB", bytes)
        when it serves ``layers`` (as in :meth:`load`)."""
        dim = self.feature_dim if layers is None else self._feature_source(layers)[0]
        return rows_for_budget(parse_size(max_memory), dim * 4, copies=4)

    def _feature_source(self, layers=None):
        """(dim, read(lo, hi)) for ``layers`` (see :meth:`select_layers`): None reads ``features``;
        several layers are read one dataset each and concatenated in the order given."""
        if layers is None:
            names, dim = [schema.FEATURES], self.feature_dim
        else:
            chosen = self.select_layers(layers)
            names = [f"{_layers.GROUP}/{c['name']}" if _layers.GROUP in self.h5 else schema.FEATURES for c in chosen]
            dim = sum(int(c["dim"]) for c in chosen)

        def read(lo: int, hi: int) -> np.ndarray:
            parts = [self._read(name, slice(lo, hi)) for name in names]
            return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

        return dim, read

    def read_rows(self, positions, layers=None) -> np.ndarray:
        """Features (float32, ``len(positions)`` x the layers' dims) of the file rows ``positions``
        (ascending), of ``layers`` as in :meth:`load`. Rows close together are read with one slice
        covering them (h5py reads only that slice); a gap of more than 32 rows starts a new read."""
        rows = np.asarray(positions, np.int64)
        dim, read = self._feature_source(layers)
        out = np.empty((len(rows), dim), np.float32)
        start = 0
        for run in np.split(rows, np.flatnonzero(np.diff(rows) > 32) + 1) if len(rows) else []:
            lo, hi = int(run[0]), int(run[-1]) + 1
            out[start : start + len(run)] = read(lo, hi)[run - lo]
            start += len(run)
        return out

    def load(self, split: str | None = None, layers=None) -> tuple[np.ndarray, np.ndarray]:
        """Features (float32) and labels of ``split``, in memory; ``layers`` as in :meth:`select_layers`
        (several layers are concatenated in the order given)."""
        code = _split_code(split)
        dim, read = self._feature_source(layers)
        if code is None:
            return read(0, self.n_rows).astype(np.float32, copy=False), self.labels
        X = np.empty((self.count(split), dim), np.float32)  # filled in place: no second copy
        y = np.empty(len(X), np.int64)
        pos = 0
        for f, labels in self.iter_chunks(split, max_memory=32 << 20, layers=layers):
            X[pos : pos + len(f)], y[pos : pos + len(f)] = f, labels
            pos += len(f)
        return X, y

    def iter_chunks(
        self,
        split: str | None = None,
        chunk_rows: int | None = None,
        *,
        max_memory: str | int | float | None = None,
        layers=None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (features float32, labels int64) of ``split`` in file order, ``chunk_rows`` rows at a
        time (the last chunk may be shorter).

        ``max_memory`` ("2GB", "512MiB" or bytes) sizes the chunks from a budget instead, for the
        buffers this method holds (see :meth:`chunk_rows_for`); given both, the smaller wins. The file
        is read in windows of about ``chunk_rows`` rows, so memory stays bounded whatever the file size.
        ``layers``: as in :meth:`load`.
        """
        dim, read = self._feature_source(layers)
        if chunk_rows is None and max_memory is None:
            chunk_rows = 4096
        if max_memory is not None:
            budget_rows = self.chunk_rows_for(max_memory, layers)
            chunk_rows = budget_rows if chunk_rows is None else min(chunk_rows, budget_rows)
        chunk_rows = max(1, int(chunk_rows))
        code = _split_code(split)
        n = self.n_rows
        # Memory: the chunk being filled, the caller's previous chunk, and a read window of half a
        # chunk (plus its float32 copy) -- three chunks' worth; chunk_rows_for() budgets four.
        window = _aligned_window(self.h5[schema.FEATURES], max(1, chunk_rows // 2))
        out_f, out_y, filled = None, None, 0
        for lo in range(0, n, window):
            hi = min(n, lo + window)
            labels = self._checked_labels(self._read(schema.LABELS, slice(lo, hi)), lo)
            if code is None:
                feats = read(lo, hi)
            else:
                sel = np.flatnonzero(self._checked_split(self._read(schema.SPLIT, slice(lo, hi)), lo) == code)
                if not len(sel):
                    continue
                feats = read(lo, hi)[sel]  # one contiguous read, then pick
                labels = labels[sel]
            pos = 0
            while pos < len(labels):
                if out_f is None:
                    out_f, out_y = np.empty((chunk_rows, dim), np.float32), np.empty(chunk_rows, np.int64)
                take = min(chunk_rows - filled, len(labels) - pos)
                out_f[filled : filled + take] = feats[pos : pos + take]  # converts float16 on the way
                out_y[filled : filled + take] = labels[pos : pos + take]
                filled += take
                pos += take
                if filled == chunk_rows:
                    yield out_f, out_y
                    out_f, out_y, filled = None, None, 0
            del feats, labels
        if filled:
            yield out_f[:filled], out_y[:filled]

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



def _split_code(split: str | None) -> int | None:
    if split is None:
        return None
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))} or None, got {split!r}")
    return SPLITS[split]


def _aligned_window(ds: h5py.Dataset, rows: int) -> int:
    """``rows`` rounded down to whole HDF5 chunks (at least one), so no chunk is read twice."""
    chunk = ds.chunks[0] if ds.chunks else 1
    return max(chunk, rows // chunk * chunk)


def _why_unreadable(path: Path, exc: BaseException) -> str:
    text = str(exc)
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes), not a feature file"
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != b"\x89HDF\r\n\x1a\n":
        return "not an HDF5 file, so not a transferkit feature file"
    if "truncated file" in text:
        return (
            f"truncated HDF5 file ({size} bytes; its header expects more): it was cut short, e.g. by an "
            "interrupted copy; copy it again, or extract it again"
        )
    return f"damaged HDF5 file, cannot be opened ({first_line(exc)})"
