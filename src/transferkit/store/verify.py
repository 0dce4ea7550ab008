"""``inspect --verify``: is a feature file internally consistent?

Checks shapes, counts, label and split ranges, NaN/Inf in the features (streamed, never all in
memory), duplicate paths, and that the provenance attributes are there. A file that is not a
transferkit feature file, or cannot be read, fails with a one-line error instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.split import SPLIT_NAMES, STRATIFIED, VALID_SPLITS
from ..errors import first_line
from . import checksums, schema, working
from .reader import FeatureFile
from .working import DamagedFileError

PROVENANCE = ("format_version", "model", "weights_sha256", "layer", "pool", "preprocess", "versions", "created",
              "dataset_root", "test_size", "seed", "n_images")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Verification:
    path: Path
    complete: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(ok), detail))


def verify_features(path: str | Path, max_memory: str | int = "256MB") -> Verification:
    with FeatureFile(path) as ff:
        v = Verification(Path(path), ff.complete)
        attrs = ff.attrs
        stratified = (attrs.get("split_source") or STRATIFIED) == STRATIFIED  # else the dataset brought the split
        missing = [k for k in PROVENANCE if k not in attrs and (stratified or k not in ("test_size", "seed"))]
        v.add(
            "provenance attributes",
            not missing,
            f"missing: {', '.join(missing)}" if missing else f"{len(PROVENANCE)} present",
        )
        version = attrs.get("format_version")
        v.add(
            "format version",
            isinstance(version, int) and 1 <= version <= schema.FORMAT_VERSION,
            f"{version} (this transferkit reads up to {schema.FORMAT_VERSION})",
        )

        h5 = ff.h5
        n = ff.n_rows
        feats = h5[schema.FEATURES]
        shape_ok = feats.ndim == 2 and feats.shape[1] > 0
        expect = feats.shape[0]
        lengths = {name: h5[name].shape for name in (schema.LABELS, schema.PATHS, schema.SPLIT)}
        same = all(len(s) == 1 and s[0] == expect for s in lengths.values())
        if working.is_working(h5):
            same = same and n <= expect
        v.add(
            "shapes", shape_ok and same, f"features {feats.shape}, " + ", ".join(f"{k} {s}" for k, s in lengths.items())
        )
        v.add("feature dtype", feats.dtype in (np.float16, np.float32, np.float64), str(feats.dtype))

        names = ff.label_names
        v.add("label names", len(names) >= 1 and len(set(names)) == len(names), f"{len(names)} classes")
        labels = ff._read(schema.LABELS, slice(0, n)).astype(np.int64)  # raw, as ff.labels refuses bad ones
        bad = int(((labels < 0) | (labels >= len(names))).sum())
        v.add(
            "label range",
            bad == 0,
            f"{bad} labels outside 0..{len(names) - 1}" if bad else f"all in 0..{len(names) - 1}",
        )
        split = ff._read(schema.SPLIT, slice(0, n))  # raw: ff.split refuses values out of range
        bad = int((~np.isin(split, VALID_SPLITS)).sum())
        names_of = [f"{code} ({name})" for code, name in zip(VALID_SPLITS, SPLIT_NAMES)]
        v.add(
            "split values",
            bad == 0,
            f"{bad} rows not {', '.join(names_of[:-1])} or {names_of[-1]}"
            if bad
            else ", ".join(f"{int((split == code).sum())} {name}" for code, name in zip(VALID_SPLITS, SPLIT_NAMES)),
        )
        try:
            paths = ff.paths
        except DamagedFileError as exc:
            paths = None
            v.add("paths", False, str(exc).split(": ", 1)[-1])
        if paths is not None:
            dupes = len(paths) - len(set(paths))
            empty = sum(1 for p in paths if not p)
            v.add(
                "paths",
                dupes == 0 and empty == 0,
                f"{dupes} duplicated, {empty} empty" if dupes or empty else f"{len(paths)} unique",
            )

        skipped = ff.skipped
        if ff.complete and "n_images" in attrs:
            total = n + len(skipped)
            v.add(
                "counts",
                total == attrs["n_images"],
                f"{n} rows + {len(skipped)} skipped = {total}, n_images = {attrs['n_images']}",
            )
        elif ff.progress is not None:
            p = ff.progress
            v.add(
                "counts",
                p["rows"] + p["skipped"] <= p["inputs_done"] <= p["inputs_total"],
                f"{p['rows']} rows + {p['skipped']} skipped of {p['inputs_done']} inputs done, {p['inputs_total']} "
                "planned",
            )

        nonfinite, first = 0, None
        offset = 0
        window = ff.chunk_rows_for(max_memory)
        for lo in range(0, n, window):  # raw rows: iter_chunks would refuse bad labels, checked above
            chunk = ff._read(schema.FEATURES, slice(lo, min(n, lo + window)))
            bad_rows = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
            if len(bad_rows) and first is None:
                first = int(offset + bad_rows[0])
            nonfinite += len(bad_rows)
            offset += len(chunk)
        if ff.complete:
            try:
                sums = checksums.check_checksums(ff.h5)
            except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
                sums = checksums.ChecksumResult(present=True, bad=[f"unreadable ({first_line(exc, 120)})"])
            if not sums.present:
                v.add("checksums", True, "absent (the file was written before transferkit stored checksums)")
            else:
                v.add(
                    "checksums",
                    not sums.bad,
                    f"{len(sums.bad)} damaged block(s): {'; '.join(sums.bad[:5])}"
                    if sums.bad
                    else f"{sums.checked} blocks match",
                )
        v.add(
            "finite features",
            nonfinite == 0,
            f"{nonfinite} rows with NaN or Inf (first: row {first}, {paths[first] if paths else '?'!r})"
            if nonfinite
            else f"{n} rows, no NaN/Inf",
        )
        return v
