"""A feature file out to the formats other tools read: NumPy ``.npy`` / ``.npz``, Parquet, CSV.

The format is chosen by the extension of the output:

* ``.npy`` — the feature matrix (N x D, the file's stored dtype: float32, or float16 for a
  ``--dtype float16`` file), with ``OUT.labels.npy`` (N int32, index into the class names) and
  ``OUT.split.npy`` (N uint8, 0 train, 1 test, 2 val) beside it, and ``OUT.json`` holding the class
  names, split names, the N image paths (relative to the dataset root) and the file's provenance.
* ``.npz`` — one archive (uncompressed zip) with arrays ``features``, ``labels``, ``split``,
  ``paths``, ``class_names``, ``split_names`` and ``provenance`` (a JSON string); readable with
  ``np.load(OUT)`` (no pickle: the strings are fixed-width unicode arrays).
* ``.parquet`` — one row per image: ``path``, ``label`` (int32), ``label_name``, ``split`` (its name)
  and ``features`` (a fixed-size list of float32); the provenance is in the schema metadata under
  ``transferkit``. Needs pyarrow (``pip install transferkit[parquet]``).
* ``.csv`` — ``path,label,label_name,split,f0..f{D-1}``, floats written with 9 significant digits
  (they read back to the same float32). For small files: text is about three times the size.

Every format is written in chunks of rows sized from ``max_memory``, so a file larger than memory
exports in bounded memory; the outputs are written under temporary names and renamed into place
only once complete, and existing outputs are refused unless ``overwrite``.
"""

from __future__ import annotations

import csv
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..data.split import SPLIT_NAMES
from ..errors import AdvisedError, TransferkitError
from . import fsio, schema
from .budget import parse_size, rows_for_budget
from .reader import FeatureFile, _decode_str

FORMATS = (".npy", ".npz", ".parquet", ".csv")
EXPORT_FORMAT = "transferkit-features-export"
# Buffers per chunk of rows each format holds at once, in units of the chunk's feature bytes: the
# read window and its copy, plus the Arrow arrays for Parquet, or the floats as text (two copies, ~15x the bytes
# each) for CSV.
_COPIES = {".npy": 3, ".npz": 3, ".parquet": 5, ".csv": 32}


@dataclass
class FeatureExportResult:
    path: Path
    format: str
    n_rows: int
    n_features: int
    dtype: str
    files: list[Path]  # everything written: the output and its sidecars
    seconds: float
    chunk_rows: int

    @property
    def n_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def outputs_for(output: Path) -> list[Path]:
    """The files an export to ``output`` writes (``.npy``: the matrix and its three sidecars)."""
    if output.suffix.lower() == ".npy":
        stem = output.with_suffix("")
        return [output, Path(f"{stem}.labels.npy"), Path(f"{stem}.split.npy"), Path(f"{stem}.json")]
    return [output]


def export_features(
    features: str | Path, output: str | Path, *, layer=None, overwrite: bool = False, max_memory: str | int = "256MB"
) -> FeatureExportResult:
    """Write the rows of ``features`` to ``output`` in the format its extension names (see the module docstring).

    ``layer``: which layer(s) of the file (None: its first; several names are concatenated in that order).
    """
    output = Path(output)
    fmt = output.suffix.lower()
    if fmt not in FORMATS:
        raise TransferkitError(
            f"{output}: unknown export format {output.suffix or '(no extension)'!r}; "
            f"name the output {', '.join('*' + f for f in FORMATS)}"
        )
    if output.is_dir():
        raise TransferkitError(f"{output}: is a folder; -o names the file to write")
    if output.parent and not output.parent.exists():
        raise TransferkitError(f"{output.parent}: output folder does not exist")
    targets = outputs_for(output)
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise AdvisedError(
            "{path}: already exists; pass {o[overwrite!]} to replace it, or choose another {o[output]}",
            path=existing[0],
        )
    if fmt == ".parquet":
        _pyarrow()  # fail before any work when it is missing
    start = time.perf_counter()
    temps = [p.with_name(p.name + ".part") for p in targets]
    with FeatureFile(features) as ff:
        ff.require_complete("export")
        source = _Rows(ff, layer, parse_size(max_memory), _COPIES[fmt])
        try:
            {".npy": _write_npy, ".npz": _write_npz, ".parquet": _write_parquet, ".csv": _write_csv}[fmt](source, temps)
        except BaseException as exc:
            for tmp in temps:
                fsio.remove_quietly(tmp)
            code = fsio.space_errno(exc)
            if code is not None:
                why = fsio.describe_space_problem(code, output.parent if str(output.parent) else Path("."))
                raise fsio.OutOfSpaceError(f"{output}: cannot export: {why}; nothing was written") from None
            raise
    for tmp, target in zip(temps, targets):
        fsio.replace(tmp, target)
    return FeatureExportResult(
        path=output,
        format=fmt[1:],
        n_rows=source.n,
        n_features=source.dim,
        dtype=str(source.dtype),
        files=targets,
        seconds=time.perf_counter() - start,
        chunk_rows=source.chunk_rows,
    )


# -- reading ------------------------------------------------------------------------------------------
class _Rows:
    """The file's rows in chunks: features in their stored dtype, labels, split, paths."""

    def __init__(self, ff: FeatureFile, layer, budget: int, copies: int):
        self.ff = ff
        self.dim, self._read = ff._feature_source(layer)
        self.layers = [c["name"] for c in ff.select_layers(layer)]
        self.dtype = np.dtype(ff.dtype)
        self.n = ff.n_rows
        self.chunk_rows = rows_for_budget(budget, self.dim * self.dtype.itemsize, copies=copies, minimum=16)
        self.class_names = ff.label_names
        self.provenance = {k: v for k, v in ff.attrs.items()}
        self.provenance["exported_layers"] = self.layers

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]]:
        for lo in range(0, self.n, self.chunk_rows):
            hi = min(self.n, lo + self.chunk_rows)
            yield (
                self._read(lo, hi),
                self.ff._read(schema.LABELS, slice(lo, hi)).astype(np.int32),
                self.ff._read(schema.SPLIT, slice(lo, hi)).astype(np.uint8),
                self.paths(lo, hi),
            )

    def paths(self, lo: int, hi: int) -> list[str]:
        return _decode_str(self.ff._read(schema.PATHS, slice(lo, hi)))

    def column(self, name: str, dtype) -> Iterator[np.ndarray]:
        for lo in range(0, self.n, self.chunk_rows):
            yield self.ff._read(name, slice(lo, min(self.n, lo + self.chunk_rows))).astype(dtype)

    def describe(self) -> dict:
        return {
            "format": EXPORT_FORMAT,
            "rows": self.n,
            "features": self.dim,
            "dtype": str(self.dtype),
            "layers": self.layers,
            "class_names": self.class_names,
            "split_names": list(SPLIT_NAMES),
            "provenance": self.provenance,
        }


# -- NumPy ----------------------------------------------------------------------------------------------
def _npy_header(fh, dtype, shape) -> None:
    np.lib.format.write_array_header_1_0(
        fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    )


def _stream_npy(fh, dtype, shape, parts: Iterator[np.ndarray]) -> None:
    """A .npy written piece by piece: the header for the whole array, then each piece's bytes."""
    _npy_header(fh, dtype, shape)
    for part in parts:
        fh.write(np.ascontiguousarray(part, dtype=dtype).tobytes())


def _write_npy(rows: _Rows, temps: list[Path]) -> None:
    feats, labels, split, meta = temps
    with open(feats, "wb") as fh:
        _stream_npy(fh, rows.dtype, (rows.n, rows.dim), (f for f, _, _, _ in rows.chunks()))
    with open(labels, "wb") as fh:
        _stream_npy(fh, np.int32, (rows.n,), rows.column(schema.LABELS, np.int32))
    with open(split, "wb") as fh:
        _stream_npy(fh, np.uint8, (rows.n,), rows.column(schema.SPLIT, np.uint8))
    info = rows.describe()
    stem = temps[0].name.removesuffix(".npy.part")
    info.update(features_file=f"{stem}.npy", labels_file=f"{stem}.labels.npy", split_file=f"{stem}.split.npy")
    head = json.dumps(info, ensure_ascii=False, indent=1, default=str)
    with open(meta, "w", encoding="utf-8") as fh:  # the paths streamed into the JSON, chunk by chunk
        fh.write(head[:-2] + ',\n "paths": [')
        first = True
        for lo in range(0, rows.n, rows.chunk_rows):
            for p in rows.paths(lo, min(rows.n, lo + rows.chunk_rows)):
                fh.write(("" if first else ",") + "\n  " + json.dumps(p, ensure_ascii=False))
                first = False
        fh.write("\n ]\n}\n")


def _write_npz(rows: _Rows, temps: list[Path]) -> None:
    width = max(
        [1]
        + [
            len(p)
            for lo in range(0, rows.n, rows.chunk_rows)
            for p in rows.paths(lo, min(rows.n, lo + rows.chunk_rows))
        ]
    )
    info = rows.describe()
    small = {
        "class_names": np.array(rows.class_names, dtype=str),
        "split_names": np.array(SPLIT_NAMES, dtype=str),
        "provenance": np.array(json.dumps(info["provenance"], ensure_ascii=False, default=str)),
    }
    with zipfile.ZipFile(temps[0], "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("features.npy", "w", force_zip64=True) as fh:
            _stream_npy(fh, rows.dtype, (rows.n, rows.dim), (f for f, _, _, _ in rows.chunks()))
        with zf.open("labels.npy", "w", force_zip64=True) as fh:
            _stream_npy(fh, np.int32, (rows.n,), rows.column(schema.LABELS, np.int32))
        with zf.open("split.npy", "w", force_zip64=True) as fh:
            _stream_npy(fh, np.uint8, (rows.n,), rows.column(schema.SPLIT, np.uint8))
        with zf.open("paths.npy", "w", force_zip64=True) as fh:
            _stream_npy(
                fh,
                f"<U{width}",
                (rows.n,),
                (
                    np.array(rows.paths(lo, min(rows.n, lo + rows.chunk_rows)), dtype=f"<U{width}")
                    for lo in range(0, rows.n, rows.chunk_rows)
                ),
            )
        for name, arr in small.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)


# -- Parquet ---------------------------------------------------------------------------------------------
def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise TransferkitError(
            "writing .parquet needs pyarrow: pip install 'transferkit[parquet]' (or pip install pyarrow)"
        ) from None
    return pyarrow


def _write_parquet(rows: _Rows, temps: list[Path]) -> None:
    pa = _pyarrow()
    import pyarrow.parquet as pq

    names = np.array(rows.class_names, dtype=object)
    split_names = np.array(SPLIT_NAMES, dtype=object)
    schema_ = pa.schema(
        [
            ("path", pa.string()),
            ("label", pa.int32()),
            ("label_name", pa.string()),
            ("split", pa.string()),
            ("features", pa.list_(pa.float32(), rows.dim)),
        ],
        metadata={"transferkit": json.dumps(rows.describe(), ensure_ascii=False, default=str)},
    )
    # dictionary pages only where values repeat: on the float vectors they are wasted work and memory
    with pq.ParquetWriter(temps[0], schema_, use_dictionary=["label_name", "split"]) as writer:
        for feats, labels, split, paths in rows.chunks():
            flat = pa.array(np.ascontiguousarray(feats, dtype=np.float32).reshape(-1))
            table = pa.Table.from_arrays(
                [
                    pa.array(paths, pa.string()),
                    pa.array(labels, pa.int32()),
                    pa.array(names[labels], pa.string()),
                    pa.array(split_names[split], pa.string()),
                    pa.FixedSizeListArray.from_arrays(flat, rows.dim),
                ],
                schema=schema_,
            )
            writer.write_table(table)  # one row group per chunk
            del flat, table


# -- CSV ---------------------------------------------------------------------------------------------------
def _write_csv(rows: _Rows, temps: list[Path]) -> None:
    names = rows.class_names
    fmt = "%.9g"  # 9 significant digits: every float32 reads back to itself
    with open(temps[0], "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "label", "label_name", "split", *(f"f{i}" for i in range(rows.dim))])
        for feats, labels, split, paths in rows.chunks():
            text = np.char.mod(fmt, feats.astype(np.float32))
            out.writerows(
                [p, int(lab), names[lab], SPLIT_NAMES[s], *t]
                for p, lab, s, t in zip(paths, labels, split, text.tolist())
            )
            del text
