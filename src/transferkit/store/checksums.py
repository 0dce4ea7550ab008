"""Checksums of a finished feature file's data, so ``inspect --verify`` can tell damaged rows.

HDF5 checks its own metadata only loosely and the data not at all: a zeroed 4 KB block inside
``features`` reads back as different numbers without any error. When a file is finished, every dataset
(``features``, ``labels``, ``paths``, ``split``, ``label_names``, ``skipped``, ``layers/*``; a hard link
is summed once) is read back block by block and a CRC-32 of each block is stored:

  checksums/<name>   uint32, one CRC-32 per block of ``block_rows`` rows of dataset ``<name>``
                     (``/`` in the name written as ``|``), attributes ``dataset`` (its path),
                     ``block_rows``, ``rows`` and ``algorithm`` = "crc32"

A block's bytes are the rows as NumPy stores them in memory (C order, the dataset's dtype); variable-
length strings are their UTF-8 bytes, each followed by a NUL. CRC-32 finds accidental damage (a bad
disk, an interrupted copy, flipped bytes), not a deliberate forgery. Files written before checksums
existed have no ``checksums`` group and still read; ``--verify`` then says the checksums are absent.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import h5py
import numpy as np

GROUP = "checksums"
BLOCK_BYTES = 4 << 20  # about this many bytes per checksummed block


@dataclass
class ChecksumResult:
    present: bool
    checked: int = 0  # blocks checked
    bad: list[str] | None = None  # "features rows 4096-8191", ...


def _datasets(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found: list[tuple[str, h5py.Dataset]] = []
    ids = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith(GROUP + "/") and obj.id not in ids:
            ids.append(obj.id)
            found.append((name, obj))

    f.visititems(visit)
    return found


def _block_rows(ds: h5py.Dataset) -> int:
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * (ds.dtype.itemsize if ds.dtype.kind != "O" else 64))
    rows = max(1, BLOCK_BYTES // row_bytes)
    chunk = ds.chunks[0] if ds.chunks else 1
    return max(chunk, rows // chunk * chunk)


def _crc(values: np.ndarray) -> int:
    if values.dtype.kind == "O":
        crc = 0
        for v in values.reshape(-1):
            b = v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape")
            crc = zlib.crc32(b + b"\0", crc)
        return crc
    return zlib.crc32(np.ascontiguousarray(values).tobytes())


def _blocks(ds: h5py.Dataset, block_rows: int):
    n = ds.shape[0] if ds.ndim else 1
    if ds.ndim == 0:
        yield 0, 1, np.asarray(ds[()])
        return
    for lo in range(0, n, block_rows):
        hi = min(n, lo + block_rows)
        yield lo, hi, ds[lo:hi]


def write_checksums(f: h5py.File) -> None:
    """Compute and store the checksums of every dataset of the open, writable, finished file ``f``."""
    if GROUP in f:
        del f[GROUP]
    group = f.create_group(GROUP)
    for name, ds in _datasets(f):
        block_rows = _block_rows(ds)
        sums = np.array([_crc(values) for _, _, values in _blocks(ds, block_rows)], dtype=np.uint32)
        out = group.create_dataset(name.replace("/", "|"), data=sums, dtype="uint32")
        out.attrs["dataset"] = name
        out.attrs["block_rows"] = block_rows
        out.attrs["rows"] = ds.shape[0] if ds.ndim else 1
        out.attrs["algorithm"] = "crc32"


def check_checksums(f: h5py.File) -> ChecksumResult:
    """Recompute the stored checksums (raises OSError/KeyError/ValueError on an unreadable file)."""
    if GROUP not in f:
        return ChecksumResult(present=False)
    result = ChecksumResult(present=True, bad=[])
    stored = {}
    for key, sums in f[GROUP].items():
        stored[str(_text(sums.attrs.get("dataset", key.replace("|", "/"))))] = sums
    for name, ds in _datasets(f):
        sums = stored.pop(name, None)
        if sums is None:
            result.bad.append(f"{name}: no checksum stored")
            continue
        block_rows = int(sums.attrs["block_rows"])
        expected = sums[()]
        rows = ds.shape[0] if ds.ndim else 1
        if int(sums.attrs.get("rows", rows)) != rows or block_rows < 1:
            result.bad.append(f"{name}: {rows} rows, checksums were taken over {int(sums.attrs.get('rows', -1))}")
            continue
        for i, (lo, hi, values) in enumerate(_blocks(ds, block_rows)):
            result.checked += 1
            if i >= len(expected) or _crc(values) != int(expected[i]):
                result.bad.append(f"{name} rows {lo}-{hi - 1}")
    result.bad.extend(f"{name}: dataset missing" for name in stored)
    return result


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
