"""Finishing a feature file: the working file (every input done) is rewritten in the ordinary layout
of :mod:`.schema` — exact row count, chunked for row streaming, optionally compressed, ``complete``
set — under a temporary name (by a child process, see :mod:`.isolate`), fsynced, and renamed over
it. A crash before the rename leaves the working file as it was (all rows committed), and
``--resume`` simply finishes it again.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import fsio, isolate, schema, working
from ._testhook import checkpoint
from .layers import LayeredFeatureWriter
from .reader import FeatureFile, _decode_str
from .writer import FeatureWriter

WINDOW_BYTES = 64 << 20  # rows are copied in windows of about this size


def temp_path(path: Path) -> Path:
    """Where new versions of ``path`` are written before they are renamed into place."""
    return path.with_name(path.name + ".tmp")


def finalize(path: Path, compression: str | None = None, attrs: dict | None = None) -> None:
    """Rewrite the finished working file at ``path`` as a complete feature file, atomically, with
    ``compression`` (None: the one chosen when the extraction started) and ``attrs`` added to its own
    (what only the session that finishes the file knows, e.g. how a Ray run went)."""
    tmp = temp_path(path)
    fsio.remove_quietly(tmp)
    try:
        isolate.run(write_finished, path, tmp, compression, attrs)
    except BaseException:
        fsio.remove_quietly(tmp)
        raise
    checkpoint("finalize")
    fsio.replace(tmp, path)


def write_finished(path: Path, tmp: Path, compression: str | None = None, extra_attrs: dict | None = None) -> None:
    """Write the finished form of the working file ``path`` to ``tmp`` and fsync it (in a child:
    this writes HDF5 metadata, see :mod:`.isolate`)."""
    with FeatureFile(path) as src:
        progress = src.progress
        if progress is None:
            raise ValueError(f"{path}: already finished")
        if progress["inputs_done"] != progress["inputs_total"]:
            raise ValueError(f"{path}: {progress['inputs_total'] - progress['inputs_done']} inputs are not done yet")
        attrs = {k: v for k, v in src.h5.attrs.items() if k not in ("complete", "layers")}
        layers = src.h5.attrs.get("layers")
        layers = json.loads(layers) if layers is not None else None
        attrs["resumes"] = max(0, progress["sessions"] - 1)
        attrs.update(extra_attrs or {})
        if compression is None:
            compression = src.h5[working.GROUP].attrs.get("compression", "none")
            if isinstance(compression, bytes):
                compression = compression.decode()
        n, dim = src.n_rows, src.feature_dim
        window = max(1, WINDOW_BYTES // max(1, dim * src.dtype.itemsize))
        try:
            options = dict(label_names=src.label_names, attrs=attrs, buffer_rows=window, dtype=str(src.dtype),
                           compression=compression, expected_rows=n)
            # rows hold the layers side by side; the finished file stores one dataset per layer
            writer = (LayeredFeatureWriter(tmp, layers=layers, feature_dim=dim, **options) if layers
                      else FeatureWriter(tmp, feature_dim=dim, **options))
            for lo in range(0, n, window):
                hi = min(n, lo + window)
                writer.add(src._read(schema.FEATURES, slice(lo, hi)), src._read(schema.LABELS, slice(lo, hi)),
                           _decode_str(src._read(schema.PATHS, slice(lo, hi))), src._read(schema.SPLIT, slice(lo, hi)))
            for p, reason in src.skipped:
                writer.add_skipped(p, reason)
            writer.close(complete=True)
        except BaseException as exc:
            isolate.fail_fast(exc)  # in a child: report and exit before h5py cleans up the failed file
            raise
    fsio.fsync_path(tmp)
